"""Which files in the project a recipe created, changed or removed.

A recipe that writes into the source tree (``recipes/out.csv``, a trace at the
repository root) leaves ``git status`` dirty for whoever builds the site. The
executor takes a :func:`snapshot` of the project before and after each recipe
process and reports the :func:`difference`. Generated and cached folders are
left out: the build itself writes there.
"""

from __future__ import annotations

import os
from pathlib import Path

# Folder names that never hold sources, wherever they are.
SKIPPED_NAMES = frozenset(
    {
        ".git",
        ".hg",
        ".venv",
        "venv",
        ".cache",
        "_build",
        "__pycache__",
        ".pytest_cache",
        ".ruff_cache",
        "node_modules",
        ".ipynb_checkpoints",
    }
)


def snapshot(root: Path | str, skipped: list[Path | str] = ()) -> dict[str, tuple[int, int]]:
    """``{path relative to root: (size, mtime_ns)}`` for every file below ``root``."""
    root = Path(root)
    skip = {os.path.abspath(p) for p in skipped}
    found = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [
            d
            for d in dirs
            if d not in SKIPPED_NAMES
            and not d.endswith(".egg-info")
            and os.path.join(folder, d) not in skip
        ]
        for name in files:
            path = os.path.join(folder, name)
            if path in skip:
                continue
            try:
                st = os.stat(path)
            except OSError:
                continue
            found[os.path.relpath(path, root)] = (st.st_size, st.st_mtime_ns)
    return found


def difference(before: dict, after: dict) -> list[str]:
    """Paths created, changed or removed between two snapshots, sorted."""
    changed = {p for p in after if before.get(p) != after[p]}
    removed = set(before) - set(after)
    return sorted(changed | removed)
