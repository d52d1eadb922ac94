"""The distributed build's steps that need no Sphinx: plan, merge and the store's id.

A distributed build is one plan, N shards and one merge, sharing the recipe
output store (:mod:`.store`):

``plan``      computes every recipe's key for the target device kind, finds
              the recipes whose key the store does not hold, and splits them
              across N shards by their recorded run times. Every stale recipe
              goes to exactly one shard; shards read their list from the plan
              (``make shard SHARD=i/N``) and compute nothing themselves.
``merge``     adds the shards' fresh store entries to the store (fresh over
              cached), refuses entries whose key matches no current recipe,
              and prunes the store to the current keys, so that the next run
              starts from exactly what this one published. ``make merge`` then
              renders the site from the store without executing anything.
``store-id``  prints a hash of the store's content, for a cache key that
              changes only when the content does.

Usage: ``python -m recipes_site.pipeline plan|merge|store-id [options]``.
"""

from __future__ import annotations

import argparse
import json
import runpy
import sys
from pathlib import Path

from . import meta, plan, select, store


def site_settings(project: Path) -> dict:
    """sphinx-gallery's settings from the project's ``conf.py``, with its defaults."""
    from sphinx_gallery.gen_gallery import DEFAULT_GALLERY_CONF

    conf = runpy.run_path(str(project / "conf.py"))
    return {**DEFAULT_GALLERY_CONF, **conf.get("sphinx_gallery_conf", {})}


def current(project: Path, source: Path, device: str) -> dict[str, tuple[str, str]]:
    """Every valid recipe's id -> (its key for ``device``, its lines key)."""
    gconf = site_settings(project)
    examples = (project / source / gconf["examples_dirs"]).resolve()
    recipes, _ = plan.read_recipes(examples)
    settings = plan.notebook_settings(gconf)
    torch = select.torch_release()
    return {
        rid: (plan.recipe_key(examples, m, torch, device, settings), m.lines_key)
        for rid, m in recipes.items()
    }


def covered(store_root: Path, key: str, lines: str = "", planning: bool = False) -> bool:
    """Whether the store holds an output that stands for this recipe (:func:`store.covers`).

    To the plan, a stored skip is no output: the machine that plans cannot tell whether
    the runner has what the recipe declares (a GPU's compute capability, two GPUs), so
    the runner is asked every time; a skip costs it nothing."""
    entry = store.get(store_root, key)
    if planning and entry is not None and entry.get("status") == "skipped":
        return False
    return store.covers(entry, lines)


def make_plan(keys: dict[str, tuple[str, str]], store_root: Path, shards: int) -> dict:
    """The split of the recipes whose output the store does not hold.

    ``keys``: id -> (key, lines key), from :func:`current`."""
    stale = {rid: k for rid, k in keys.items() if not covered(store_root, *k, planning=True)}
    known = plan.recorded_durations(store_root)
    split = select.assign_shards({rid: known.get(rid) for rid in stale}, shards)
    keys = {rid: key for rid, (key, _) in keys.items()}
    return {"shards": split, "keys": keys, "stale": sorted(stale)}


def merge(keys: dict[str, tuple[str, str]], sources: list[Path], store_root: Path) -> tuple:
    """Ingest the shards' entries; return (refused entries, recipes without output).

    ``keys``: id -> (key, lines key)."""
    store.sweep(store_root)
    added = store.ingest(sources, store_root)
    wanted = {key for key, _ in keys.values()}
    refused = [key for key in added if key not in wanted]
    store.prune(store_root, wanted)
    missing = [rid for rid, k in sorted(keys.items()) if not covered(store_root, *k)]
    return refused, missing


def _args(argv):
    parser = argparse.ArgumentParser(prog="python -m recipes_site.pipeline")
    parser.add_argument("step", choices=["plan", "merge", "store-id"])
    parser.add_argument("--project", type=Path, default=Path("."), help="the folder of conf.py")
    parser.add_argument("--source", type=Path, default=Path("docs"), help="Sphinx's source")
    parser.add_argument("--store", type=Path, default=None)
    parser.add_argument("--device", default="", help="cpu or cuda (default: this machine's)")
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("_build/plan/plan.json"))
    parser.add_argument("--from", dest="sources", type=Path, nargs="*", default=[])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    store_root = args.store or store.default_root(args.project)
    if args.step == "store-id":
        print(store.content_id(store_root))
        return 0
    device = args.device or meta.Host.detect().kind
    keys = current(args.project, args.source, device)
    if args.step == "plan":
        if args.shards < 1:
            print("plan: SHARDS must be 1 or more", file=sys.stderr)
            return 2
        result = make_plan(keys, store_root, args.shards)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({**result, "device": device}, indent=1) + "\n")
        sizes = ", ".join(str(len(s)) for s in result["shards"])
        print(f"plan: {len(result['stale'])} of {len(keys)} recipes to execute on {device}, "
              f"split {sizes} across {args.shards} shards -> {args.out}")  # fmt: skip
        return 0
    refused, missing = merge(keys, args.sources, store_root)
    for key in refused:
        print(f"merge: refused output {key}: no current recipe has that key", file=sys.stderr)
    for rid in missing:
        print(f"merge: {rid}: no output for its current source on {device}", file=sys.stderr)
    print(f"merge: the store holds {len(keys) - len(missing)} of {len(keys)} recipes")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
