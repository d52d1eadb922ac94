"""Decide, before sphinx-gallery runs, what this build does with each recipe.

:func:`prepare` is a short sequence of steps: read every recipe, gather the
facts about each one, let :func:`fate.decide` pick its fate, carry the fates
out on disk, and tell sphinx-gallery through its public settings. Recipes
that cannot even be parsed (not UTF-8, a syntax error, no title, a bad
declaration) are kept out of the gallery (``ignore_pattern``); their page
shows the error and the build fails at the end.

Nothing executes in the Sphinx process: ``filename_pattern`` matches no file,
and :mod:`recipes_site.executor` runs the recipes whose fate is ``execute``,
each in a process of its own, before sphinx-gallery renders the gallery.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sphinx.errors import ConfigError
from sphinx.util import logging

from . import fate, layout, meta, records, rerender, select, store, thumbs

logger = logging.getLogger(__name__)


@dataclass
class Context:
    """What every step needs to know about this build."""

    examples: Path  # recipes/
    root: Path  # docs/recipes/
    docs_prefix: str  # "recipes": gallery_dirs, the docnames' prefix
    store: Path
    executing: bool
    host: meta.Host
    device: str  # "cpu" or "cuda": the device kind recipe keys are made for
    torch: str
    settings: str
    select: str
    shard: tuple[int, int] | None
    plan_file: str
    build: str
    gallery_conf: dict = field(default_factory=dict)  # sphinx-gallery's, for pages made again


def context(app) -> Context:
    gconf = app.config.sphinx_gallery_conf
    config = app.config
    try:
        shard = select.parse_shard(config.recipes_shard)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    executing = bool(gconf["plot_gallery"])
    host = meta.Host.detect()
    device = config.recipes_device or host.kind
    if executing and device != host.kind:
        raise ConfigError(
            f"DEVICE={device} was asked for, but this machine runs recipes on {host.kind}"
        )
    return Context(
        examples=(Path(app.srcdir) / gconf["examples_dirs"]).resolve(),
        root=records.gallery_root(gconf),
        docs_prefix=gconf["gallery_dirs"],
        store=Path(app.confdir, config.recipes_store),
        executing=executing,
        host=host,
        device=device,
        torch=select.torch_release(),
        settings=notebook_settings(gconf),
        select=config.recipes_select,
        shard=shard,
        plan_file=config.recipes_plan,
        build=uuid.uuid4().hex,
        gallery_conf=gconf,
    )


def notebook_settings(gallery_conf) -> str:
    """The site settings that every generated page and notebook carries."""
    return repr([gallery_conf.get(k) for k in ("first_notebook_cell", "last_notebook_cell")])


def recipe_id(examples: Path, path: Path) -> str:
    """``compile/graph_breaks`` for ``recipes/compile/graph_breaks.py``."""
    return path.relative_to(examples).with_suffix("").as_posix()


def read_recipes(examples: Path):
    """Every recipe below ``examples``: (id -> RecipeMeta, id -> RecipeError)."""
    valid, invalid = {}, {}
    for path in meta.find_recipes(examples):
        try:
            valid[recipe_id(examples, path)] = meta.read_recipe(path)
        except meta.RecipeError as exc:
            invalid[recipe_id(examples, path)] = exc
    return valid, invalid


def recipe_key(examples: Path, m: meta.RecipeMeta, torch: str, device: str, settings: str) -> str:
    rel = m.path.relative_to(examples).as_posix()
    requires = [r.text for r in m.requires]
    return select.staleness_key(rel, m.code_key, torch, device, requires, settings)


def new_entry(ctx: Context, rid: str, m: meta.RecipeMeta) -> dict:
    rel = m.path.relative_to(ctx.examples)
    requires = [r.text for r in m.requires]
    return {
        "id": rid,
        "stem": m.path.stem,
        "src": str(m.path),
        "rel": rel.as_posix(),
        "docname": f"{ctx.docs_prefix}/{rid}",
        "target_dir": str(ctx.root / rel.parent),
        "timeout": m.timeout,
        "memory_limit": m.memory_limit,
        "parallel": m.parallel,
        "expected_warnings": list(m.expected_warnings),
        "requires": requires,
        "tags": list(m.tags),
        "title": m.title,
        "summary": m.summary,
        "source_md5": m.source_md5,
        "lines_key": m.lines_key,
        "key": recipe_key(ctx.examples, m, ctx.torch, ctx.device, ctx.settings),
    }


def reread(app, entry: dict) -> dict | None:
    """The entry of a recipe its author saved again while it ran, from its new text,
    to execute again; None if it no longer reads as a recipe."""
    ctx = context(app)
    try:
        m = meta.read_recipe(entry["src"])
    except meta.RecipeError:
        return None
    new = new_entry(ctx, entry["id"], m)
    new["fate"] = "execute"
    layout.mark_stale(new["target_dir"], new["stem"])
    layout.remove_images(new["target_dir"], new["stem"])
    return new


def facts(ctx: Context, entry: dict, m: meta.RecipeMeta, selected: bool) -> fate.Facts:
    old = records.read(entry) or {}
    stored = store.get(ctx.store, entry["key"])
    if not store.covers(stored, m.lines_key):
        stored = None
    return fate.Facts(
        key=entry["key"],
        executing=ctx.executing,
        selected=selected,
        unmet=tuple(meta.unmet(m, ctx.host)) if ctx.executing else (),
        old_status=old.get("status"),
        old_key=old.get("key"),
        output_current=layout.is_current(entry["target_dir"], entry["stem"]),
        stored=stored and stored["status"],
        old_same_text=old.get("source_md5") == m.source_md5,
        stored_same_text=bool(stored) and stored["record"].get("source_md5") == m.source_md5,
    )


def selection(ctx: Context, entries: dict, recipes: dict) -> set[str]:
    """The recipes this build may execute: ``RECIPE=``, then the plan or the shard."""
    chosen = {rid for rid, e in entries.items() if select.matches(e["stem"], e["rel"], ctx.select)}
    if ctx.plan_file:
        return chosen & planned(ctx)
    if ctx.shard:
        return set(local_plan(ctx, entries, recipes, chosen)[ctx.shard[0] - 1])
    return chosen


def local_plan(ctx: Context, entries: dict, recipes: dict, chosen: set[str]) -> list[list[str]]:
    """``SHARD=i/N`` without a plan file: the first shard to ask makes the split and
    keeps it under the recipes' keys, so that every shard of the same sources, run
    one after another or side by side, gets the same one."""
    keys = sorted(f"{rid}={entries[rid]['key']}" for rid in chosen)
    digest = hashlib.sha256("\n".join([str(ctx.shard[1]), *keys]).encode()).hexdigest()[:16]
    path = ctx.store.parent / "plans" / f"{digest}.json"
    kept = records.read_json(path)
    if kept is not None:
        return kept["shards"]
    known = recorded_durations(ctx.store, ctx.root)
    stale = {
        rid: known.get(rid)
        for rid in sorted(chosen)
        if fate.decide(facts(ctx, entries[rid], recipes[rid], True)).name == "execute"
    }
    shards = select.assign_shards(stale, ctx.shard[1])
    records.write_json(path, {"shards": shards})
    return shards


def planned(ctx: Context) -> set[str]:
    """This shard's recipes, from the plan file that ``make plan`` wrote."""
    plan = records.read_json(Path(ctx.plan_file))
    if plan is None:
        raise ConfigError(f"PLAN={ctx.plan_file}: no such plan (run `make plan` first)")
    if plan.get("device") and plan["device"] != ctx.device:
        raise ConfigError(f"PLAN={ctx.plan_file} was made for {plan['device']}, not {ctx.device}")
    if not ctx.shard or ctx.shard[1] != len(plan["shards"]):
        raise ConfigError(
            f"PLAN={ctx.plan_file} splits the recipes into {len(plan['shards'])} shards; "
            f"give SHARD=i/{len(plan['shards'])}"
        )
    return set(plan["shards"][ctx.shard[0] - 1])


def recorded_durations(store_root: Path, root: Path | None = None) -> dict[str, float]:
    """Last known run time of each recipe, by id, from the store and the records
    in ``root`` (unknown ones, and times taken beside other recipes, are left out)."""
    found = {}
    stored = [entry.get("record") or {} for entry in store.entries(store_root)]
    files = Path(root).rglob(f"*{records.RECORD_SUFFIX}") if root else ()
    for record in stored + [records.read_json(p) or {} for p in files]:
        solo = not record.get("beside")
        if record.get("status") == "executed" and record.get("seconds") and solo:
            found[record["recipe"]] = record["seconds"]
    return found


def carry_out(ctx: Context, entry: dict, decided: fate.Fate, facts: fate.Facts) -> None:
    """Make the files on disk match the recipe's fate."""
    section, stem = Path(entry["target_dir"]), entry["stem"]
    section.mkdir(parents=True, exist_ok=True)
    if decided.name == "rerender" and not rerendered(ctx, entry):
        # Its stored page cannot take the new text: as if nothing were stored.
        decided = fate.decide(dataclasses.replace(facts, stored=None))
    entry["fate"] = decided.name
    if decided.name == "rerender":
        return
    if decided.name == "execute":
        layout.mark_stale(section, stem)
        layout.remove_images(section, stem)
    elif decided.name == "restore":
        record = store.restore(ctx.store, entry["key"], section, stem)
        records.write(entry, record)
        if record["status"] != "executed":
            layout.mark_stale(section, stem)
    elif decided.name in ("skipped", "not-run"):
        layout.mark_stale(section, stem)
        record = placeholder(ctx, entry, decided.name, decided.reason)
        records.write(entry, record)
        if decided.name == "skipped" and store.get(ctx.store, entry["key"]) is None:
            store.put(ctx.store, entry["key"], entry["id"], section, stem, record)


def rerendered(ctx: Context, entry: dict) -> bool:
    """Restore the stored output of the recipe's code and make its page again from its
    new text (:mod:`.rerender`); store the result under the same key."""
    section, stem = Path(entry["target_dir"]), entry["stem"]
    record = store.restore(ctx.store, entry["key"], section, stem)
    src = Path(entry["src"])
    if not rerender.render(section, stem, src, ctx.gallery_conf, entry["source_md5"]):
        layout.remove(section, stem)
        return False
    record = {**record, "source_md5": entry["source_md5"]}
    records.write(entry, record)
    thumbs.for_entry(entry)  # drawn from the new title, and stored with the rest
    store.put(ctx.store, entry["key"], entry["id"], section, stem, record)
    return True


def placeholder(ctx: Context, entry: dict, status: str, reason: str) -> dict:
    return records.new_record(
        entry["id"],
        entry["src"],
        status,
        entry["key"],
        entry.get("source_md5", ""),
        reason=reason,
        torch=ctx.torch,
        device=ctx.host.device,
        build=ctx.build,
    )


def failure_page(error: meta.RecipeError, rel: str) -> str:
    title = f"Recipe {rel} could not be built"
    return (
        ":orphan:\n\n"
        f"{title}\n{'=' * len(title)}\n\n"
        ".. error::\n\n"
        f"   ``{error.path}``, line {error.line}: {error.message}\n\n"
        "This page replaces any output from an earlier build. Fix the file and rebuild.\n"
    )


def invalid_entry(ctx: Context, rid: str, error: meta.RecipeError) -> dict:
    """Replace whatever an invalid recipe had with a page that shows its error."""
    path = Path(error.path)
    rel = path.relative_to(ctx.examples).as_posix()
    section = ctx.root / Path(rel).parent
    section.mkdir(parents=True, exist_ok=True)
    layout.remove(section, path.stem)
    layout.page(section, path.stem).write_text(failure_page(error, rel), encoding="utf-8")
    entry = {
        "id": rid,
        "stem": path.stem,
        "src": str(path),
        "rel": rel,
        "docname": f"{ctx.docs_prefix}/{rid}",
        "target_dir": str(section),
        "fate": "invalid",
        "key": "",
        "tags": [],
        "title": rid,
    }
    record = placeholder(ctx, entry, "failed", error.message)
    records.write(entry, {**record, "error": error.as_dict()})
    return entry


def prune_orphans(ctx: Context, known: set[str]) -> None:
    """Delete generated files of recipes that no longer exist (renamed or removed)."""
    for record_file in ctx.root.rglob(f"*{records.RECORD_SUFFIX}"):
        section = record_file.parent
        stem = record_file.name[: -len(records.RECORD_SUFFIX)]
        rid = (section.relative_to(ctx.root) / stem).as_posix()
        if rid not in known:
            layout.remove(section, stem)


def configure_gallery(gconf, invalid: dict) -> None:
    """Tell sphinx-gallery to render, never to execute, and to leave out invalid files."""
    gconf["filename_pattern"] = r"(?!)"  # matches no file: children execute recipes
    gconf["parallel"] = False
    # sphinx-gallery matches ignore_pattern against file names. Files starting
    # with "_" are helper modules that recipes import.
    names = [re.escape(Path(e.path).name) for e in invalid.values()] + [r"_.*\.py"]
    gconf["ignore_pattern"] = "^(" + "|".join(names) + ")$"


def prepare(app) -> None:
    """``builder-inited``: decide each recipe's fate, carry it out, write the manifest."""
    ctx = context(app)
    store.sweep(ctx.store)
    recipes, invalid = read_recipes(ctx.examples)
    prune_orphans(ctx, set(recipes) | set(invalid))
    entries = {rid: new_entry(ctx, rid, m) for rid, m in recipes.items()}
    chosen = selection(ctx, entries, recipes)
    for rid, entry in entries.items():
        known = facts(ctx, entry, recipes[rid], rid in chosen)
        carry_out(ctx, entry, fate.decide(known), known)
    for rid, error in invalid.items():
        entries[rid] = invalid_entry(ctx, rid, error)
    configure_gallery(app.config.sphinx_gallery_conf, invalid)
    write_manifest(app, ctx, entries)


def write_manifest(app, ctx: Context, entries: dict) -> None:
    counts: dict[str, int] = {}
    for entry in entries.values():
        counts[entry["fate"]] = counts.get(entry["fate"], 0) + 1
    config = app.config
    manifest = {
        "recipes": dict(sorted(entries.items())),
        "strict": bool(config.recipes_strict),
        "require_all": bool(config.recipes_require_all),
        "isolate": bool(config.recipes_isolate),
        "jobs": int(config.recipes_jobs),
        "memory_limit": config.recipes_memory_limit,
        "execute": ctx.executing,
        "host": ctx.host.device,
        "device": ctx.device,
        "gpus": ctx.host.gpu_count,
        "plan": counts,
        "torch": ctx.torch,
        "store": str(ctx.store),
    }
    records.write_manifest(ctx.root, manifest, ctx.build)
    summary = ", ".join(f"{n} {name}" for name, n in sorted(counts.items()))
    logger.info(f"[recipes] plan: {summary}")
