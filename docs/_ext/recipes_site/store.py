"""The recipe output store: what a recipe produced, kept under its staleness key.

``<store>/<key>/entry.json`` says which recipe the entry belongs to and holds
its record; ``<store>/<key>/files/`` holds the recipe's generated files
(page, downloads, notebook, figures, thumbnail), laid out as in its section
folder. Because the key is made from what the output depends on (code,
torch release, device kind, requirements, site settings) and nothing else,
any build can reuse any entry whose key matches: another shard's, an earlier
branch's, last week's CI run's. Entries are only ever added whole (written
aside, then renamed) and removed whole (renamed aside, then deleted), so a
killed build never leaves half of one; an entry that misses a file it lists
counts as absent, and what killed builds left aside is swept by the next.

Only outputs worth reusing are stored: recipes that ran to the end, and skips
(a host without CUDA). Failures never are.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from . import layout, records, warmserver

ENTRY = "entry.json"
KEEP_PER_RECIPE = 3  # a local store keeps this many outputs of each recipe
STORED = ("executed", "skipped")


def default_root(project: Path | str) -> Path:
    return Path(project) / ".cache" / "recipes" / "store"


def get(root: Path | str, key: str) -> dict | None:
    """The entry stored under ``key`` (its ``entry.json``), or None, also when a
    file it lists is missing (then it is no entry at all)."""
    if not key:
        return None
    folder = Path(root) / key
    entry = records.read_json(folder / ENTRY)
    if not entry or entry.get("key") != key:
        return None
    if not all((folder / "files" / name).is_file() for name in entry.get("files", [])):
        return None
    return entry


def covers(entry: dict | None, lines_key: str) -> bool:
    """Whether ``entry`` stands for a recipe whose code cells sit as ``lines_key`` says
    (:func:`sourcekey.lines_key`).

    The key leaves prose out, so an entry made from other prose still serves,
    unless its outputs quote where the code sits (:func:`rerender.quotes_source`):
    then it serves only while every code line is where it was when it ran.
    """
    if entry is None:
        return False
    record = entry.get("record") or {}
    if entry.get("status") != "executed" or not record.get("quotes_lines", True):
        return True
    return record.get("run_lines") == lines_key


def entries(root: Path | str) -> list[dict]:
    root = Path(root)
    if not root.is_dir():
        return []
    found = [records.read_json(p / ENTRY) for p in _folders(root)]
    return [e for e in found if e and e.get("key")]


def _folders(root: Path) -> list[Path]:
    """Entry folders, without those still being written or removed (dot names)."""
    return sorted(p for p in root.iterdir() if not p.name.startswith(".") and (p / ENTRY).is_file())


def put(root: Path | str, key: str, recipe: str, section: Path, stem: str, record: dict) -> None:
    """Store the recipe's current files from ``section`` under ``key``."""
    if record.get("status") not in STORED:
        raise ValueError(f"{recipe}: a {record.get('status')!r} run is not stored")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{key}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    names = []
    if record["status"] == "executed":
        for path in layout.files(section, stem, with_record=False):
            rel = path.relative_to(section)
            (tmp / "files" / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, tmp / "files" / rel)
            names.append(rel.as_posix())
    tmp.mkdir(parents=True, exist_ok=True)
    entry = {"key": key, "recipe": recipe, "status": record["status"], "files": sorted(names)}
    entry["record"] = record
    records.write_json(tmp / ENTRY, entry)
    _replace(tmp, root / key)
    _forget_old(root, recipe, keep=KEEP_PER_RECIPE)


def _replace(tmp: Path, final: Path) -> None:
    if final.exists():
        old = final.with_name(f".old-{final.name}-{os.getpid()}")
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


def _forget_old(root: Path, recipe: str, keep: int) -> None:
    mine = [
        p for p in _folders(root) if (records.read_json(p / ENTRY) or {}).get("recipe") == recipe
    ]
    mine.sort(key=lambda p: (p / ENTRY).stat().st_mtime, reverse=True)
    for path in mine[keep:]:
        _remove(path)


def _remove(folder: Path) -> None:
    """Rename the entry aside, then delete it: a build killed meanwhile leaves a
    hidden folder (swept later), never an entry with files missing."""
    aside = folder.with_name(f".old-{folder.name}-{os.getpid()}")
    try:
        os.replace(folder, aside)
    except OSError:
        return
    shutil.rmtree(aside, ignore_errors=True)


def sweep(root: Path | str) -> list[str]:
    """Remove what killed builds left: entries being written or removed (hidden
    folders) whose process is gone."""
    root = Path(root)
    removed = []
    for path in sorted(root.glob(".*-*")) if root.is_dir() else ():
        pid = path.name.rsplit("-", 1)[-1]
        left = path.name.startswith((".tmp-", ".old-")) and pid.isdigit()
        if left and not warmserver.alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    return removed


def restore(root: Path | str, key: str, section: Path, stem: str) -> dict:
    """Copy the entry's files into ``section``; return its record."""
    entry = get(root, key)
    if entry is None:
        raise KeyError(key)
    layout.remove(section, stem)
    files = Path(root) / key / "files"
    for name in entry["files"]:
        target = section / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)  # generated files may be read-only
        shutil.copy2(files / name, target)
    return entry["record"]


def ingest(sources: list[Path], root: Path | str) -> list[str]:
    """Add every entry found below ``sources`` to the store; the newcomer wins a tie.

    Returns the keys added. Used by the merge: shards' fresh outputs replace
    what the store held for the same key.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    added = []
    for source in sources:
        for entry_file in sorted(Path(source).rglob(ENTRY)):
            entry = records.read_json(entry_file)
            folder = entry_file.parent
            hidden = any(part.startswith(".") for part in folder.relative_to(source).parts)
            if not entry or folder.name != entry.get("key") or folder.parent == root or hidden:
                continue
            tmp = root / f".tmp-{folder.name}-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(folder, tmp)
            _replace(tmp, root / folder.name)
            added.append(folder.name)
    return added


def prune(root: Path | str, keep: set[str]) -> list[str]:
    """Remove every entry whose key is not in ``keep``; return the removed keys."""
    removed = []
    for entry in entries(root):
        if entry["key"] not in keep:
            _remove(Path(root) / entry["key"])
            removed.append(entry["key"])
    return removed


def content_id(root: Path | str) -> str:
    """A short hash of what the store holds; it changes only when an entry does
    (a new output, or the same output re-rendered with new prose)."""
    digest = hashlib.sha256()
    for entry in entries(root):
        text = (entry.get("record") or {}).get("source_md5", "")
        digest.update(f"{entry['key']}:{entry['status']}:{text}\n".encode())
    return digest.hexdigest()[:16]
