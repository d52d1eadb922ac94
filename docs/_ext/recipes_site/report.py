"""The end-of-build summary and ``timings.json``."""

from __future__ import annotations

from pathlib import Path

from sphinx.util import logging

from . import records

logger = logging.getLogger(__name__)

TIMINGS_FIELDS = (
    "recipe",
    "status",
    "seconds",
    "peak_rss_mb",
    "peak_cuda_mb",
    "device",
    "torch",
    "date",
)


def collect(manifest: dict, started: float = float("inf")) -> list[dict]:
    """One row per recipe: its record, plus where it lives and whether it ran now
    (its record was written after ``started``, the start of this build)."""
    rows = []
    for name, entry in sorted(manifest["recipes"].items()):
        path = records.record_path(entry["target_dir"], name)
        record = records.read_json(path) or {
            "recipe": name,
            "status": "failed",
            "error": {"file": entry["src"], "line": 0, "message": "no record was written"},
        }
        fresh = path.exists() and path.stat().st_mtime >= started - 1
        ran_now = entry.get("fate") == "execute" and fresh
        rows.append(
            {
                **record,
                "path": entry["rel"],
                "docname": entry["docname"],
                "ran_in_this_build": bool(ran_now),
                "fate": entry.get("fate"),
            }
        )
    return rows


def problems(
    rows: list[dict], strict: bool, outputs: dict[str, bool], require_all: bool = False
) -> tuple[list, list[str]]:
    """(fatal, notes): problems as (message, (file, line)), and informative lines."""
    fatal, notes = [], []
    for row in rows:
        err = row.get("error") or {}
        where = (err.get("file", row["src"]), err.get("line") or 1)
        status = row["status"]
        if require_all and status not in ("executed", "skipped"):
            fatal.append((f"recipe was not executed by any shard ({status})", (row["src"], 1)))
            continue
        if status in ("failed", "timed-out"):
            label = "recipe timed out" if status == "timed-out" else "recipe failed"
            fatal.append((f"{label}: {err.get('message', row.get('reason', ''))}", where))
        elif status == "needs-cuda":
            if strict:
                fatal.append((f"recipe needs CUDA: {err.get('message', '')}", where))
            else:
                notes.append(f"needs CUDA: {where[0]}:{where[1]}: {err.get('message', '')}")
        elif status == "executed" and row["ran_in_this_build"]:
            if row["seconds"] <= 0:
                fatal.append(("recipe executed but its run time was 0 s", (row["src"], 1)))
            if not outputs.get(row["recipe"], True):
                fatal.append(
                    ("recipe executed but printed nothing and drew nothing", (row["src"], 1))
                )
        for w in row.get("warnings", []):
            if w.get("expected"):
                continue
            text = f"{w['category']}: {w['message'].splitlines()[0]}"
            if strict:
                fatal.append(
                    (f"drift warning while running {row['path']}: {text}", (w["file"], w["line"]))
                )
            else:
                notes.append(f"drift: {row['path']}: {w['file']}:{w['line']}: {text}")
        for leak in row.get("leaks", []):
            notes.append(f"state reset after {row['src']}: {leak}")
    return fatal, notes


def has_output(rst_path: Path) -> bool:
    try:
        text = rst_path.read_text(encoding="utf-8")
    except OSError:
        return True
    return (
        "sphx-glr-script-out" in text
        or "sphx-glr-single-img" in text
        or "sphx-glr-multi-img" in text
    )


def summarize(app, exception) -> None:
    if exception is not None:
        return
    root = records.gallery_root(app.config.sphinx_gallery_conf)
    manifest = records.read_manifest(root)
    rows = collect(manifest, records.build_started(root))
    outputs = {
        r["recipe"]: has_output(
            Path(manifest["recipes"][r["recipe"]]["target_dir"], f"{r['recipe']}.rst")
        )
        for r in rows
        if r["ran_in_this_build"]
    }
    fatal, notes = problems(rows, manifest["strict"], outputs, manifest.get("require_all", False))

    if app.builder.format == "html":
        out = Path(app.outdir) / Path(root).relative_to(app.srcdir) / "timings.json"
        records.write_json(
            out,
            {
                "torch": manifest["torch"],
                "host": manifest["host"],
                "recipes": [
                    {
                        **{k: r.get(k) for k in TIMINGS_FIELDS},
                        "path": r["path"],
                        "ran_in_this_build": r["ran_in_this_build"],
                    }
                    for r in rows
                ],
            },
        )

    executed = sum(r["ran_in_this_build"] for r in rows)
    width = max((len(r["path"]) for r in rows), default=10)
    lines = [
        f"[recipes] {executed} ran in this build, "
        f"{sum(r['fate'] == 'cached' for r in rows)} cached, "
        f"{sum(r['status'] == 'skipped' for r in rows)} skipped, "
        f"{sum(r['status'] in ('failed', 'timed-out') for r in rows)} failed"
    ]
    for r in rows:
        mark = "ran" if r["ran_in_this_build"] else r.get("fate", "")
        lines.append(
            f"  {r['path']:<{width}}  {r['status']:<10} {r.get('seconds', 0):>7.2f} s  "
            f"{r.get('peak_rss_mb', 0):>6.0f} MB  {mark}"
        )
    lines += [f"  note: {n}" for n in notes]
    logger.info("\n".join(lines))
    for text, location in fatal:
        logger.error(text, location=f"{location[0]}:{location[1]}")
    if fatal:
        # Exit non-zero without discarding Sphinx's environment, so that the
        # next build stays incremental.
        app.statuscode = 1
