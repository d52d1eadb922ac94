"""The end-of-build summary and ``timings.json``.

Every problem is reported once, as ``file:line: ERROR: ...`` for what fails
the build and as a ``note:`` line for what does not (``STRICT=1`` makes the
notes that point at a recipe's own doing fatal too). A failed recipe's
traceback, limited to the recipe's own frames, follows its error line.
"""

from __future__ import annotations

import logging as stdlib_logging
import re
import textwrap
from pathlib import Path

from sphinx.util import logging

from . import layout, meta, records, sourcemap
from .sourcemap import shown_path

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
    "beside",  # how many recipes ran beside it: only a time taken alone is the recipe's own
)
FAILED = ("failed", "timed-out", "crashed")
LABELS = {"failed": "recipe failed", "timed-out": "recipe timed out", "crashed": "recipe crashed"}


def collect(manifest: dict, build: str = "") -> list[dict]:
    """One row per recipe: its record, where it lives, and whether this build ran it."""
    rows = []
    for rid, entry in sorted(manifest["recipes"].items()):
        record = records.read(entry) or records.new_record(
            rid, entry["src"], "failed", entry.get("key", ""), "", reason="no record was written"
        )
        rows.append(
            {
                **record,
                "recipe": rid,
                "path": entry["rel"],
                "docname": entry["docname"],
                "fate": entry.get("fate"),
                "target_dir": entry["target_dir"],
                "stem": entry["stem"],
                "ran_in_this_build": bool(build)
                and record.get("build") == build
                and entry.get("fate") == "execute",
            }
        )
    return rows


def error_text(row: dict) -> str:
    err = row.get("error") or {}
    message = err.get("message") or row.get("reason") or ""
    if message.startswith("recipe "):
        return message
    return f"{LABELS.get(row['status'], 'recipe failed')}: {message}"


def _details(row: dict) -> str:
    lines = []
    if row.get("traceback"):
        lines += ["Traceback (the recipe's own frames):", *row["traceback"].splitlines()]
    if row.get("log_tail"):
        lines += ["Last lines it wrote outside Python:", *row["log_tail"]]
    return textwrap.indent("\n".join(lines), "    ") if lines else ""


def _failure(row: dict, require_all: bool):
    """(message, where) if the recipe's state fails the build, else None."""
    err = row.get("error") or {}
    where = (err.get("file") or row["src"], err.get("line") or 1)
    status = row["status"]
    if require_all and status not in ("executed", "skipped"):
        return (f"recipe has no output for its current source in the store ({status})", where)
    if row.get("fate") == "execute" and not row["ran_in_this_build"]:
        return ("recipe was planned to execute, but this build wrote no record of it", where)
    if status in FAILED:
        details = _details(row)
        return (error_text(row) + ("\n" + details if details else ""), where)
    return None


def _own_doing(row: dict) -> list[tuple[str, tuple]]:
    """Problems that are the recipe's doing but do not stop it: (text, where)."""
    found = []
    if row["status"] == "needs-cuda":
        err = row.get("error") or {}
        found.append((f"recipe needs CUDA: {err.get('message', '')}", (err["file"], err["line"])))
    for w in row.get("warnings", []):
        if not w.get("expected"):
            text = f"drift warning while running {row['path']}: {w['category']}: "
            text += w["message"].splitlines()[0]
            found.append((text, (w["file"], w["line"])))
    found += _image_sizes(row)
    if row.get("leftovers"):
        found.append((
            "recipe left processes running when it ended, which the build stopped: "
            + "; ".join(row["leftovers"][:5]),
            (row["src"], 1),
        ))  # fmt: skip
    if row.get("files_written"):
        files = ", ".join(row["files_written"][:10])
        found.append((f"recipe wrote into the source tree: {files}", (row["src"], 1)))
    return found


FIGURE_LIMIT = 5_000_000  # bytes of one figure
PAGE_IMAGES_LIMIT = 10_000_000  # bytes of all the figures of one page


def _image_sizes(row: dict) -> list[tuple[str, tuple]]:
    """Figures too large for a page a reader downloads: (text, where)."""
    if row["status"] != "executed":
        return []
    images = layout.figures(row["target_dir"], row["stem"])
    thumb = layout.thumbnail(row["target_dir"], row["stem"])
    sizes = {p.name: p.stat().st_size for p in images + ([thumb] if thumb else [])}
    found = []
    big = [f"{name} ({meta.format_size(n)})" for name, n in sizes.items() if n > FIGURE_LIMIT]
    if big:
        text = f"figures larger than {meta.format_size(FIGURE_LIMIT)}: {', '.join(big[:10])}"
        found.append((text, (row["src"], 1)))
    if sum(sizes.values()) > PAGE_IMAGES_LIMIT:
        total = meta.format_size(sum(sizes.values()))
        text = f"its figures weigh {total}, over the page budget of "
        found.append((text + meta.format_size(PAGE_IMAGES_LIMIT), (row["src"], 1)))
    return found


def problems(rows: list[dict], strict: bool, require_all: bool = False) -> tuple[list, list[str]]:
    """(fatal, notes): problems as (message, (file, line)), and informative lines."""
    fatal, notes = [], []
    for row in rows:
        failure = _failure(row, require_all)
        if failure:
            fatal.append(failure)
        for text, where in _own_doing(row):
            if strict:
                fatal.append((text, where))
            else:
                notes.append(f"{shown_path(where[0])}:{where[1]}: {text}")
        notes += [f"{shown_path(row['src'])}: {note}" for note in row.get("notes", [])]
    return fatal, notes


def write_timings(app, manifest: dict, rows: list[dict]) -> None:
    root = records.gallery_root(app.config.sphinx_gallery_conf)
    out = Path(app.outdir) / Path(root).relative_to(app.srcdir) / "timings.json"
    records.write_json(
        out,
        {
            "torch": manifest["torch"],
            "host": devices(rows, manifest),
            "recipes": [
                {
                    **{k: r.get(k) for k in TIMINGS_FIELDS},
                    "path": r["path"],
                    "ran_in_this_build": r["ran_in_this_build"],
                    "files_written": r.get("files_written", []),
                }
                for r in rows
            ],
        },
    )


def devices(rows: list[dict], manifest: dict) -> str:
    """Where the outputs on the site were made, from their records (the machine that
    renders the site, such as the merge job's, may have made none of them)."""
    made = sorted({r["device"] for r in rows if r.get("status") == "executed" and r.get("device")})
    return ", ".join(made) or manifest.get("host", "")


def table(rows: list[dict]) -> list[str]:
    ran = sum(r["ran_in_this_build"] for r in rows)
    width = max((len(r["path"]) for r in rows), default=10)
    lines = [
        f"[recipes] {ran} ran in this build, "
        f"{sum(r['fate'] in ('cached', 'restore') for r in rows)} cached, "
        f"{sum(r['fate'] == 'rerender' for r in rows)} re-rendered, "
        f"{sum(r['status'] == 'skipped' for r in rows)} skipped, "
        f"{sum(r['status'] in FAILED for r in rows)} failed"
    ]
    again = [r["path"] for r in rows if r["fate"] == "rerender"]
    if again:
        lines.append(
            "[recipes] only the text of these changed, so their pages were made again from "
            f"the outputs of their last run, without running: {', '.join(again)}"
        )
    for r in rows:
        mark = "ran" if r["ran_in_this_build"] else r.get("fate", "")
        lines.append(
            f"  {r['path']:<{width}}  {r['status']:<10} {r.get('seconds') or 0:>7.2f} s  "
            f"{r.get('peak_rss_mb') or 0:>6.0f} MB  {mark}"
        )
    return lines


class _GallerySummary(stdlib_logging.Filter):
    """Drops sphinx-gallery's own end-of-build summary: it counts what sphinx-gallery
    executed in this process (nothing; the recipes run in processes of their own)
    and repeats its file patterns. :func:`summarize` reports what really ran."""

    def filter(self, record) -> bool:
        return not str(record.msg).lstrip().startswith("Sphinx-Gallery successfully executed")


def quiet(app) -> None:
    for handler in stdlib_logging.getLogger("sphinx").handlers:
        handler.addFilter(_GallerySummary())


MESSAGE_LIMIT = 2_000  # characters of one message the summary prints
TRACEBACK_LINES = 20  # lines of one message the summary prints whole
HEAD_LINES, TAIL_LINES = 8, 5  # of a longer one: its first and last lines
ERROR_LINES = 5  # and at most this many lines from its middle that name an error
_ERROR_LINE = re.compile(r"\b(?:fatal error|error|Error|ERROR|Killed)\b")


def bounded(text: str, name: str, logs: Path) -> str:
    """``text`` cut to what a console can take; the whole of it goes to a file under
    ``logs`` whose path the cut text gives.

    A long message often says what went wrong at its end (a compiler's error after
    pages of warnings, the last frame of a traceback), so the cut keeps its first
    lines, the lines in between that name an error, and its last lines."""
    lines = text.splitlines()
    if len(text) <= MESSAGE_LIMIT and len(lines) <= TRACEBACK_LINES:
        return text
    logs.mkdir(parents=True, exist_ok=True)
    path = logs / (name.replace("/", "__") + ".log")
    path.write_text(text, encoding="utf-8")
    head, tail = lines[:HEAD_LINES], lines[HEAD_LINES:][-TAIL_LINES:]
    middle = lines[len(head) : len(lines) - len(tail)]
    named = [line for line in middle if _ERROR_LINE.search(line)][:ERROR_LINES]
    kept = head + ([f"    [... {len(middle)} lines cut]"] if middle else []) + named
    kept += (["    [...]"] if named else []) + tail
    width = MESSAGE_LIMIT // len(kept)  # each kept line's share of the console
    short = "\n".join(line[:width] for line in kept)
    return f"{short}\n    [all {len(text)} characters in {path}]"


def summarize(app, exception) -> None:
    """``build-finished``: timings.json, the summary, and a non-zero exit for failures."""
    if exception is not None:
        return
    root = records.gallery_root(app.config.sphinx_gallery_conf)
    manifest = records.read_manifest(root)
    rows = collect(manifest, records.build_id(root))
    fatal, notes = problems(rows, manifest["strict"], manifest.get("require_all", False))
    write_timings(app, manifest, rows)
    logs = Path(app.outdir).parent / "recipe-logs"
    lines = table(rows)
    lines += [
        f"  text problem: {bounded(p, 'text-problem', logs)}" for p in sourcemap.problems(app)
    ]
    lines += [f"  note: {bounded(n, 'note', logs)}" for n in notes]
    logger.info("\n".join(lines))
    for text, location in fatal:
        name = Path(location[0]).stem
        logger.error(bounded(text, name, logs), location=f"{shown_path(location[0])}:{location[1]}")
    if fatal:
        # Exit non-zero without discarding Sphinx's environment, so that the
        # next build stays incremental.
        app.statuscode = 1
