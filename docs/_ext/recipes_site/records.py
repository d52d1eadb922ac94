"""Files that carry facts about recipes between processes and builds.

* The *manifest* (``<gallery>/.recipes-manifest.json``) is written by the Sphinx
  main process before the gallery runs; worker processes read it to learn each
  recipe's time limit, expected warnings and staleness key.
* A *record* (``<gallery>/<section>/<name>.record.json``) is written after a
  recipe runs, or by the planner when it decides not to run it. It sits next to
  the generated page, so it is cached, sharded and merged with it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

MANIFEST = ".recipes-manifest.json"
BUILD_INFO = ".recipes-build.json"
RECORD_SUFFIX = ".record.json"

_manifest_cache: dict[str, tuple[float, dict]] = {}


def gallery_root(gallery_conf) -> Path:
    dirs = gallery_conf["gallery_dirs"]
    if isinstance(dirs, (list, tuple)):
        (dirs,) = dirs
    return Path(gallery_conf["src_dir"], dirs)


def write_json(path: Path, data) -> None:
    """Write atomically, so that a killed build never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_manifest(root: Path, manifest: dict, started: float) -> None:
    """Write the manifest only when it changes (pages that list recipes depend
    on it, and Sphinx re-reads them when it is touched), and the build's start
    time on its own."""
    path = root / MANIFEST
    if read_json(path) != json.loads(json.dumps(manifest)):
        write_json(path, manifest)
    write_json(root / BUILD_INFO, {"started": started})


def build_started(root: Path) -> float:
    return (read_json(root / BUILD_INFO) or {}).get("started", 0.0)


def read_manifest(root: Path) -> dict:
    path = root / MANIFEST
    mtime = path.stat().st_mtime
    cached = _manifest_cache.get(str(path))
    if cached and cached[0] == mtime:
        return cached[1]
    data = read_json(path)
    _manifest_cache[str(path)] = (mtime, data)
    return data


def new_record(name: str, src: str, status: str, key: str, source_md5: str, **fields) -> dict:
    """A recipe's record with every field present; ``fields`` override the defaults."""
    import datetime as dt

    record = {
        "recipe": name,
        "src": src,
        "status": status,
        "reason": "",
        "seconds": 0.0,
        "peak_rss_mb": 0.0,
        "peak_cuda_mb": 0.0,
        "device": "",
        "torch": "",
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"),
        "error": None,
        "warnings": [],
        "leaks": [],
        "key": key,
        "source_md5": source_md5,
    }
    record.update(fields)
    return record


def recipe_entry(gallery_conf, docname: str) -> dict | None:
    """The manifest entry of the recipe page ``docname``; None for any other page
    and for recipes that could not be parsed."""
    if not docname.startswith(f"{gallery_conf['gallery_dirs']}/"):
        return None
    try:
        manifest = read_manifest(gallery_root(gallery_conf))
    except OSError:
        return None
    for entry in manifest["recipes"].values():
        if entry["docname"] == docname and entry.get("fate") != "invalid":
            return entry
    return None


def thumbnail(entry: dict) -> Path:
    """Where sphinx-gallery puts the card thumbnail of a recipe."""
    return Path(entry["target_dir"]) / "images" / "thumb" / f"sphx_glr_{entry['name']}_thumb.png"


def record_path(target_dir: Path | str, name: str) -> Path:
    return Path(target_dir) / f"{name}{RECORD_SUFFIX}"


def write(target_dir: Path | str, name: str, record: dict) -> None:
    write_json(record_path(target_dir, name), record)


def read(target_dir: Path | str, name: str) -> dict | None:
    return read_json(record_path(target_dir, name))
