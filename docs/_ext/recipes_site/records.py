"""Files that carry facts about recipes between processes and builds.

* The *manifest* (``<gallery>/.recipes-manifest.json``) is written by the
  planner before anything executes: every recipe, by its id (its path below
  ``recipes/`` without ``.py``: ``compile/graph_breaks``), with its fate in
  this build, its staleness key and what it declares.
* The *build file* (``<gallery>/.recipes-build.json``) holds this build's id.
  Every record written by this build carries it, so "ran in this build" is a
  fact, not a guess from file times.
* A *record* (``<gallery>/<section>/<stem>.record.json``) says how the recipe
  last ran (or why it did not). It sits next to the generated page, so it is
  stored, restored and merged with it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from . import layout

MANIFEST = ".recipes-manifest.json"
BUILD_INFO = ".recipes-build.json"
RECORD_SUFFIX = layout.RECORD

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
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


CARDS = ".recipes-cards.json"
CARD_FIELDS = ("rel", "docname", "title", "summary", "tags")


def write_manifest(root: Path, manifest: dict, build: str) -> None:
    """Write the manifest only when it changes, this build's id on its own, and, for
    the pages that list recipes (they depend on it: Sphinx re-reads them when it is
    touched), only what a card shows, so that a prose edit below a recipe's summary
    rewrites no landing page."""
    _write_if_changed(root / MANIFEST, manifest)
    cards = [
        {k: e.get(k) for k in CARD_FIELDS}
        for e in manifest["recipes"].values()
        if e.get("fate") != "invalid"
    ]
    _write_if_changed(root / CARDS, cards)
    write_json(root / BUILD_INFO, {"build": build})


def _write_if_changed(path: Path, data) -> None:
    if read_json(path) != json.loads(json.dumps(data)):
        write_json(path, data)


def build_id(root: Path) -> str:
    return (read_json(root / BUILD_INFO) or {}).get("build", "")


def read_manifest(root: Path) -> dict:
    path = root / MANIFEST
    mtime = path.stat().st_mtime
    cached = _manifest_cache.get(str(path))
    if cached and cached[0] == mtime:
        return cached[1]
    data = read_json(path)
    _manifest_cache[str(path)] = (mtime, data)
    return data


def new_record(recipe: str, src: str, status: str, key: str, source_md5: str, **fields) -> dict:
    """A recipe's record with every field present; ``fields`` override the defaults."""
    record = {
        "recipe": recipe,
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
        "traceback": "",
        "warnings": [],
        "notes": [],
        "files_written": [],
        "key": key,
        "source_md5": source_md5,
        "build": "",
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


def thumbnail(entry: dict) -> Path | None:
    """The card thumbnail sphinx-gallery wrote for a recipe, if any."""
    return layout.thumbnail(entry["target_dir"], entry["stem"])


def record_path(entry: dict) -> Path:
    return layout.record(entry["target_dir"], entry["stem"])


def write(entry: dict, record: dict) -> None:
    write_json(record_path(entry), record)


def read(entry: dict) -> dict | None:
    return read_json(record_path(entry))
