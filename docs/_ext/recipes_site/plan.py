"""Decide, before sphinx-gallery runs, what this build executes.

For every recipe the planner picks one fate and tells sphinx-gallery through
its public settings (``filename_pattern`` for what executes, ``ignore_pattern``
for what cannot even be parsed):

* **invalid**: not UTF-8, a syntax error, no title, bad declarations. The
  gallery skips it; its page is replaced by one that shows the error, so no
  stale output survives, and the build fails at the end.
* **skipped**: the host lacks what it declares (CUDA, GPUs, a package). Its page
  shows the code and a note saying what it needs.
* **execute**: selected by ``RECIPE``/``SHARD`` and stale, i.e. its staleness key
  (source, torch version, device, requirements) differs from its last record.
* **cached**: its last successful output is still valid: nothing runs.
* **not-run**: not selected and no valid output: code only, with a note.
"""

from __future__ import annotations

import importlib.metadata
import re
import time
from pathlib import Path

from sphinx.errors import ConfigError
from sphinx.util import logging

from . import meta, records, select

logger = logging.getLogger(__name__)

# Files sphinx-gallery writes next to a generated page, by suffix.
GENERATED_SUFFIXES = (
    ".rst",
    ".py",
    ".ipynb",
    ".zip",
    ".py.md5",
    ".rst.md5",
    ".ipynb.md5",
    ".codeobj.json",
    ".cost.json",
    records.RECORD_SUFFIX,
)


def _torch_version() -> str:
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return "none"


def _durations(root: Path, timings_file: str) -> dict[str, float]:
    """Last known run time of each recipe: from ``timings_file`` or the records."""
    if timings_file and Path(timings_file).is_file():
        data = records.read_json(Path(timings_file)) or {}
        return {
            r["recipe"]: r.get("seconds")
            for r in data.get("recipes", [])
            if r.get("status") == "executed"
        }
    found = {}
    for path in root.rglob(f"*{records.RECORD_SUFFIX}"):
        rec = records.read_json(path) or {}
        if rec.get("status") == "executed" and rec.get("seconds"):
            found[rec["recipe"]] = rec["seconds"]
    return found


def _failure_page(error: meta.RecipeError, rel: str) -> str:
    title = f"Recipe {rel} could not be built"
    return (
        ":orphan:\n\n"
        f"{title}\n{'=' * len(title)}\n\n"
        ".. error::\n\n"
        f"   ``{error.path}``, line {error.line}: {error.message}\n\n"
        "This page replaces any output from an earlier build. Fix the file and rebuild.\n"
    )


def _remove_generated(target_dir: Path, name: str, keep_record: bool = False) -> None:
    for suffix in GENERATED_SUFFIXES:
        if keep_record and suffix == records.RECORD_SUFFIX:
            continue
        (target_dir / f"{name}{suffix}").unlink(missing_ok=True)


def _prune_orphans(root: Path, known: set[str]) -> None:
    """Delete generated pages whose recipe no longer exists (renamed or removed)."""
    for rec_path in root.rglob(f"*{records.RECORD_SUFFIX}"):
        name = rec_path.name[: -len(records.RECORD_SUFFIX)]
        if name not in known:
            _remove_generated(rec_path.parent, name)
            for img in (rec_path.parent / "images").glob(f"sphx_glr_{name}_*"):
                img.unlink()
            for img in (rec_path.parent / "images" / "thumb").glob(f"sphx_glr_{name}_thumb.*"):
                img.unlink()


def _regex_for(paths: list[Path]) -> str:
    if not paths:
        return r"(?!)"  # matches nothing
    return "(" + "|".join(re.escape(str(p)) + "$" for p in paths) + ")"


def prepare(app) -> None:
    gconf = app.config.sphinx_gallery_conf
    config = app.config
    src_dir = Path(app.srcdir)
    examples = (src_dir / gconf["examples_dirs"]).resolve()
    root = records.gallery_root(gconf)
    root.mkdir(parents=True, exist_ok=True)
    execute = bool(gconf["plot_gallery"])
    try:
        shard = select.parse_shard(config.recipes_shard)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None

    host = meta.Host.detect() if execute else None
    torch_version = _torch_version()
    strict = bool(config.recipes_strict)

    valid: dict[str, meta.RecipeMeta] = {}
    invalid: dict[str, meta.RecipeError] = {}
    paths = meta.find_recipes(examples)
    seen: dict[str, Path] = {}
    for path in paths:
        try:
            if path.stem in seen:
                raise meta.RecipeError(
                    path,
                    1,
                    f"a recipe named {path.stem!r} already exists "
                    f"at {seen[path.stem]}; recipe names must be unique",
                )
            seen[path.stem] = path
            valid[path.stem] = meta.read_recipe(path)
        except meta.RecipeError as exc:
            invalid[path.stem] = exc

    _prune_orphans(root, {p.stem for p in paths})

    shard_names = None
    if shard:
        durations = _durations(root, config.recipes_timings)
        runnable = {
            n: durations.get(n) for n, m in valid.items() if not (host and meta.unmet(m, host))
        }
        shard_names = set(select.assign_shards(runnable, shard[1])[shard[0] - 1])

    settings = repr([gconf.get(k) for k in ("first_notebook_cell", "last_notebook_cell")])
    entries, to_execute, plan_counts = {}, [], {}
    build_started = time.time()
    for name, m in valid.items():
        rel = m.path.relative_to(examples)
        target_dir = root / rel.parent
        target_dir.mkdir(parents=True, exist_ok=True)
        device = host.device if host else "none"
        key = select.staleness_key(
            m.source_md5, torch_version, device, [r.text for r in m.requires], settings
        )
        entry = {
            "name": name,
            "src": str(m.path),
            "rel": rel.as_posix(),
            "docname": (Path(gconf["gallery_dirs"]) / rel.with_suffix("")).as_posix(),
            "target_dir": str(target_dir),
            "timeout": m.timeout,
            "expected_warnings": list(m.expected_warnings),
            "requires": [r.text for r in m.requires],
            "tags": list(m.tags),
            "title": m.title,
            "summary": m.summary,
            "source_md5": m.source_md5,
            "key": key,
        }
        entries[name] = entry
        old = records.read(target_dir, name)
        md5_file = target_dir / f"{name}.py.md5"
        selected = select.matches(name, rel.as_posix(), config.recipes_select) and (
            shard_names is None or name in shard_names
        )
        reasons = meta.unmet(m, host) if host else []

        if not execute:
            # Keep output made from this very source (by an earlier build or a shard).
            same_source = bool(old) and old.get("source_md5") == m.source_md5
            if same_source and old["status"] == "executed" and md5_file.exists():
                fate = "cached"
            elif same_source and old["status"] == "skipped":
                fate = "skipped"
            else:
                fate = "not-run"
            if fate == "not-run":
                records.write(
                    target_dir,
                    name,
                    _placeholder(entry, "not-run", "built without executing recipes (html-noplot)"),
                )
        elif reasons:
            fate = "skipped"
            md5_file.unlink(missing_ok=True)
            records.write(target_dir, name, _placeholder(entry, "skipped", "; ".join(reasons)))
        elif selected:
            current = old and old.get("key") == key and old.get("status") == "executed"
            if current and md5_file.exists():
                fate = "cached"
            else:
                fate = "execute"
                md5_file.unlink(missing_ok=True)
                to_execute.append(m.path)
        else:
            if old and old.get("status") == "executed" and md5_file.exists():
                fate = "cached"
            else:
                fate = "not-run"
                why = "not selected for execution in this build"
                records.write(target_dir, name, _placeholder(entry, "not-run", why))
        entry["fate"] = fate
        plan_counts[fate] = plan_counts.get(fate, 0) + 1

    for name, error in invalid.items():
        path = Path(error.path)
        rel = path.relative_to(examples)
        target_dir = root / rel.parent
        target_dir.mkdir(parents=True, exist_ok=True)
        _remove_generated(target_dir, name)
        page = target_dir / f"{name}.rst"
        page.write_text(_failure_page(error, rel.as_posix()), encoding="utf-8")
        entries[name] = {
            "name": name,
            "src": str(path),
            "rel": rel.as_posix(),
            "docname": (Path(gconf["gallery_dirs"]) / rel.with_suffix("")).as_posix(),
            "target_dir": str(target_dir),
            "fate": "invalid",
            "key": "",
            "timeout": 0,
            "expected_warnings": [],
            "requires": [],
            "tags": [],
            "title": name,
        }
        records.write(
            target_dir,
            name,
            {**_placeholder(entries[name], "failed", error.message), "error": error.as_dict()},
        )
        plan_counts["invalid"] = plan_counts.get("invalid", 0) + 1

    gconf["filename_pattern"] = _regex_for(to_execute)
    # sphinx-gallery matches ignore_pattern against file names (which are unique
    # here). Files starting with "_" are helper modules that recipes import.
    ignored = [re.escape(Path(e.path).name) for e in invalid.values()] + [r"_.*\.py"]
    gconf["ignore_pattern"] = "^(" + "|".join(ignored) + ")$"
    jobs = int(config.recipes_jobs)
    gconf["parallel"] = jobs if jobs > 1 and len(to_execute) > 1 else False

    records.write_manifest(
        root,
        {
            "recipes": entries,
            "strict": strict,
            "require_all": bool(config.recipes_require_all),
            "isolate": bool(config.recipes_isolate),
            "jobs": jobs,
            "execute": execute,
            "host": host.device if host else "none",
            "plan": plan_counts,
            "torch": torch_version,
        },
        started=build_started,
    )
    summary = ", ".join(f"{n} {fate}" for fate, n in sorted(plan_counts.items()))
    logger.info(f"[recipes] plan: {summary}")
    if shard:
        logger.info(
            f"[recipes] shard {shard[0]}/{shard[1]}: {', '.join(sorted(shard_names)) or '-'}"
        )


def _placeholder(entry: dict, status: str, reason: str) -> dict:
    return records.new_record(
        entry["name"],
        entry["src"],
        status,
        entry["key"],
        entry.get("source_md5", ""),
        reason=reason,
        torch=_torch_version(),
    )
