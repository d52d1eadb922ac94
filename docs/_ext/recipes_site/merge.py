"""Combine the generated recipe pages of N shard builds into one gallery folder.

Each shard of ``make html SHARD=i/N`` executes some recipes and renders the
others as code only. Its ``docs/recipes`` folder holds, per recipe, the page,
downloads, images, md5 and record. This module copies, from each shard, the
files of the recipes that shard executed (or declared skipped), so that a
following ``make html-noplot`` renders every page from executed output.

Usage: ``python -m recipes_site.merge SHARDS_DIR DEST`` (``make merge`` does it).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from . import records


class MergeError(Exception):
    pass


def recipe_files(section: Path, name: str) -> list[Path]:
    files = [p for p in section.glob(f"{name}.*") if p.is_file()]
    files += list((section / "images").glob(f"sphx_glr_{name}_[0-9]*"))
    files += list((section / "images" / "thumb").glob(f"sphx_glr_{name}_thumb.*"))
    return files


def merge(shard_dirs: list[Path], dest: Path) -> dict[str, str]:
    """Copy each recipe's output from the shard that executed it; return name -> shard."""
    chosen: dict[str, tuple[Path, dict, str]] = {}
    for shard in shard_dirs:
        manifest = records.read_json(shard / records.MANIFEST)
        if manifest is None:
            raise MergeError(f"{shard}: no {records.MANIFEST}; is this a shard's docs/recipes?")
        for name, entry in manifest["recipes"].items():
            section = Path(entry["rel"]).parent
            record = records.read_json(records.record_path(shard / section, name)) or {}
            status = record.get("status")
            if status == "executed" and entry.get("fate") in ("execute", "cached"):
                if name in chosen and chosen[name][2] == "executed":
                    continue  # several shards may hold cached output: keep the first
                chosen[name] = (shard, entry, "executed")
            elif status == "skipped" and name not in chosen:
                chosen[name] = (shard, entry, "skipped")
            elif status in ("failed", "timed-out", "needs-cuda") and entry.get("fate") == "execute":
                raise MergeError(f"{entry['rel']} {status} in shard {shard}")
    for name, (shard, entry, _status) in sorted(chosen.items()):
        section = Path(entry["rel"]).parent
        target = dest / section
        (target / "images" / "thumb").mkdir(parents=True, exist_ok=True)
        for src in recipe_files(shard / section, name):
            rel = src.relative_to(shard / section)
            (target / rel).unlink(missing_ok=True)  # generated pages are read-only
            # A fresh modification time, so that Sphinx reads the merged page again.
            shutil.copy(src, target / rel)
    return {name: str(shard) for name, (shard, _, _) in chosen.items()}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    shards_dir, dest = Path(argv[0]), Path(argv[1])
    shard_dirs = sorted(p.parent for p in shards_dir.glob(f"*/{records.MANIFEST}"))
    if not shard_dirs:
        print(f"merge: no shard outputs under {shards_dir}", file=sys.stderr)
        return 1
    try:
        merged = merge(shard_dirs, dest)
    except MergeError as exc:
        print(f"merge: {exc}", file=sys.stderr)
        return 1
    print(f"merge: {len(merged)} recipes from {len(shard_dirs)} shards into {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
