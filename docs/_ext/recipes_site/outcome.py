"""From what a recipe's process left behind to the recipe's record.

A child that got to the end of its page leaves a result file (:mod:`.child`).
One that crashed or was stopped leaves only its exit status, its log (where
:mod:`faulthandler` wrote each thread's traceback) and the code cells it
started. :func:`conclude` turns either into the recipe's record, names the
line to blame, decides which page sphinx-gallery keeps, and stores good
output under the recipe's key.
"""

from __future__ import annotations

import importlib.metadata
import re
import signal
from pathlib import Path

from sphinx.util import logging

from . import child as child_module
from . import layout, meta, records, rerender, store

logger = logging.getLogger(__name__)

_FRAME = re.compile(r'^\s+File "(?P<file>.+)", line (?P<line>\d+) in (?P<name>\S+)', re.M)
_THREAD = re.compile(r"^(?:Current thread|Thread) 0x[0-9a-f]+", re.M)
LOG_TAIL = 15  # lines of a crashed recipe's own output shown in its record


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def last_cell(events: str, src: str) -> int:
    """First line of the last code cell that started (0 if none did)."""
    lines = [int(m[1]) for m in re.finditer(r"^cell (\d+)$", events, re.M)]
    return cell_start(src, lines[-1]) if lines else 0


def cell_start(src: str, line: int) -> int:
    """The first code line of the cell of ``src`` that holds ``line``."""
    from sphinx_gallery.py_source_parser import split_code_and_text_blocks

    try:
        _, blocks = split_code_and_text_blocks(src)
    except Exception:  # the recipe parsed before it ran; this is only a nicety
        return line
    for block in blocks:
        last = block.lineno + block.content.count("\n")
        if block.type == "code" and block.lineno <= line <= last:
            return block.lineno + len(block.content) - len(block.content.lstrip("\n"))
    return line


def blamed_line(log: str, src: str, prefer_other_threads: bool = False) -> int:
    """The innermost line of ``src`` in the traceback dumps of ``log`` (0 if none).

    faulthandler writes one block per thread; the main thread's runs under
    multiprocessing's bootstrap. Later dumps are searched first, and with
    ``prefer_other_threads`` (a process that would not exit) the threads
    the recipe left running come before the main one.
    """
    starts = [m.start() for m in _THREAD.finditer(log)]
    if not starts:
        return 0
    blocks = [log[a:b] for a, b in zip(starts, starts[1:] + [len(log)], strict=True)][::-1]
    main = [b for b in blocks if "multiprocessing" in b]
    others = [b for b in blocks if "multiprocessing" not in b]
    for block in others + main if prefer_other_threads else main + others:
        for m in _FRAME.finditer(block):
            if m["file"] == src:
                return int(m["line"])
    return 0


def _signal_name(number: int) -> str:
    try:
        return f"{signal.strsignal(number) or signal.Signals(number).name} (signal {number})"
    except ValueError:
        return f"signal {number}"


def stopped(child, job, cell: int, limit: int | None) -> tuple[str, str]:
    """(status, message) for a recipe whose process ended without a page."""
    where = f", in the code cell starting at line {cell}" if cell else ""
    code = child.process.exitcode
    if child.stopping == "time":
        return "timed-out", f"ran past its time limit of {job.entry['timeout']:g} s and was stopped"
    if child.stopping == "memory":
        size, seen = meta.format_size(limit or 0), meta.format_size(child.peak_rss)
        return "failed", (
            f"used more than its memory limit of {size} ({seen} in use) and was stopped{where}"
        )
    if child.stopping == "log":
        return "failed", (
            f"wrote more than {meta.format_size(child_module.LOG_LIMIT)} of output outside "
            f"Python and was stopped{where}"
        )
    if code is not None and code < 0:
        text = f"recipe crashed: {_signal_name(-code)}{where}"
        if -code == signal.SIGKILL:
            text += " (killed from outside; the system may have run out of memory)"
        return "crashed", text
    if code:
        return "crashed", f"recipe exited with status {code}{where}"
    return "crashed", f"recipe ended its process before it finished{where}"


def _from_result(child, job, result: dict) -> dict:
    """The record's outcome fields for a child that wrote its page."""
    fields = {k: result.get(k) for k in ("status", "error", "traceback", "seconds")}
    # The largest of what the recipe measured after each cell and what the supervisor
    # saw meanwhile, both as memory.used defines it.
    peak = max(result.get("peak_rss_mb", 0.0), child.peak_rss / 2**20)
    fields.update(peak_rss_mb=round(peak, 1))
    fields.update(peak_cuda_mb=result.get("peak_cuda_mb", 0.0))
    fields.update(warnings=result.get("warnings", []))
    code = child.process.exitcode
    if child.stopping == "time" and job is child.job and fields["status"] != "timed-out":
        # Stopped at its limit: never "executed", even if it caught the signal.
        fields["status"] = "timed-out"
        fields["error"] = {
            "file": job.entry["src"],
            "line": (fields.get("error") or {}).get("line") or 1,
            "message": f"ran past its time limit of {job.entry['timeout']:g} s and was stopped",
        }
    elif child.stopping == "exit" and job is child.job:
        log = _read_text(job.log)
        line = blamed_line(log, job.entry["src"], prefer_other_threads=True) or 1
        fields["status"] = "failed"
        fields["error"] = {
            "file": job.entry["src"],
            "line": line,
            "message": "recipe ran to the end, but its process did not exit: a thread it "
            f"started was still running {child_module.EXIT_GRACE:g} s after it "
            f"(`python {Path(job.entry['src']).name}` would never end)",
        }
    elif code and child.stopping != "time" and fields["status"] == "executed":
        fields["status"] = "crashed"
        name = _signal_name(-code) if code < 0 else f"status {code}"
        fields["error"] = {
            "file": job.entry["src"],
            "line": 1,
            "message": f"recipe crashed after it ran ({name})",
        }
    return fields


def _without_page(child, job) -> dict:
    log = _read_text(job.log)
    cell = last_cell(_read_text(job.events), job.entry["src"])
    line = blamed_line(log, job.entry["src"]) or cell or 1
    status, message = stopped(child, job, cell, job.memory_limit)
    tail = [ln for ln in log.splitlines() if ln.strip()][-LOG_TAIL:]
    return {
        "status": status,
        "error": {"file": job.entry["src"], "line": line, "message": message},
        "seconds": round((child.ended - child.started), 3),
        "peak_rss_mb": round(child.peak_rss / 2**20, 1),
        "log_tail": tail,
    }


def _notes(src: str, result: dict | None, seconds: float, budget: float) -> list[str]:
    notes = []
    for cut in (result or {}).get("truncated", []):
        notes.append(
            f"the output of the code cell at line {cell_start(src, cut['line'])} was cut "
            f"to its first "
            f"{meta.format_size(cut['shown'])} of {meta.format_size(cut['total'])}"
        )
    if budget and seconds > budget:
        notes.append(f"ran {seconds:.1f} s, slower than the site's budget of {budget:g} s")
    return notes


def ran_on(manifest: dict, result: dict | None) -> str:
    """Where the recipe ran: the host's GPU only if its process used CUDA."""
    used = (result or {}).get("cuda_used", True)
    return manifest["host"] if manifest["host"] == "cpu" or used else "cpu (CUDA not used)"


def torch_version() -> str:
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return ""


def ran_other_text(job) -> bool:
    """Whether the child executed another text than the one its key was made from
    (the author saved the recipe again after the build planned it)."""
    result = records.read_json(job.result) or {}
    return bool(result.get("page")) and result.get("ran_md5") != job.entry["source_md5"]


def conclude(app, manifest: dict, child, job) -> dict:
    """Write the record of ``job`` (run by ``child``); keep or drop its page; store it."""
    entry = job.entry
    result = records.read_json(job.result)
    layout.keep_thumbnail_time(entry["target_dir"], entry["stem"])
    if ran_other_text(job):
        # Its output is of a text no key was made from: keep nothing, claim nothing.
        layout.remove(entry["target_dir"], entry["stem"])
        record = records.new_record(
            entry["id"], entry["src"], "not-run", entry["key"], entry["source_md5"],
            reason="its file was saved again while it ran, so that run was not kept; "
            "build again to run it",
        )  # fmt: skip
        records.write(entry, record)
        return record
    if result is not None and result.get("page"):
        fields = _from_result(child, job, result)
    else:
        fields = _without_page(child, job)
        if result is not None:  # the machinery failed: its own traceback says why
            fields.update(error=result["error"], traceback=result.get("traceback", ""))
    status = fields.pop("status")
    record = records.new_record(
        entry["id"],
        entry["src"],
        status,
        entry["key"],
        entry["source_md5"],
        device=ran_on(manifest, result),
        torch=torch_version(),
        build=records.build_id(records.gallery_root(app.config.sphinx_gallery_conf)),
        **fields,
    )
    # Timed beside other recipes, a time says little about the recipe alone: it is
    # kept, with how many ran beside it, but judges no budget and balances no shard.
    record["beside"] = child.beside
    budget = app.config.recipes_budget if not child.beside else 0
    record["notes"] = _notes(entry["src"], result, record["seconds"] or 0.0, budget)
    _add_what_it_left(record, job, result)
    _keep_page(entry, record, result)
    records.write(entry, record)
    if status == "executed":
        store.put(
            manifest["store"],
            entry["key"],
            entry["id"],
            Path(entry["target_dir"]),
            entry["stem"],
            record,
        )
    _relog((result or {}).get("sphinx_warnings", []))
    return record


def _add_what_it_left(record: dict, job, result: dict | None) -> None:
    """Files and processes it left, what a failing cell printed (for the banner, when
    its page could not show it above the traceback), where its outputs say its code
    sits."""
    entry = job.entry
    record["files_written"] = sorted(job.files_written)
    record["leftovers"] = records.read_json(child_module.leftovers_path(job.result)) or []
    if record["status"] != "executed":
        if not (result or {}).get("printed_shown"):
            record["printed"] = _read_text(child_module.partial_path(job.result))
        return
    section = Path(entry["target_dir"])
    record["run_lines"] = entry["lines_key"]
    record["quotes_lines"] = rerender.quotes_source(
        layout.page(section, entry["stem"]).read_text(encoding="utf-8"),
        (section / f"{entry['stem']}.py").read_text(encoding="utf-8"),
        entry["src"],
        record["warnings"],
    )


def _keep_page(entry: dict, record: dict, result: dict | None) -> None:
    """sphinx-gallery keeps the page the child wrote (its output and traceback) and
    makes a code-only page where the child wrote none."""
    section, stem = entry["target_dir"], entry["stem"]
    if result is None or not result.get("page"):
        layout.mark_stale(section, stem)
    elif record["status"] != "executed":
        layout.mark_current(section, stem)


def _relog(warnings: list[dict]) -> None:
    """Log here what sphinx-gallery logged in the child, so Sphinx filters and counts it."""
    for w in warnings:
        log = logger.error if w.get("level") in ("ERROR", "CRITICAL") else logger.warning
        log(w["message"], type=w.get("type"), subtype=w.get("subtype"), location=w.get("location"))


def attribute_changes(children: list, project: str) -> None:
    """Give each job the files of the project it created, changed or removed.

    A file that changed while several recipes ran goes to the ones whose
    process was seen writing it (an audit hook sees Python's own writes);
    failing that, to each recipe that was running, unless it is a file an
    author edits (:func:`authors_file`): the author may save during a build.
    """
    suspects: dict[str, list] = {}
    touched: dict[int, set[str]] = {}
    for c in children:
        for job in c.jobs:
            job.files_written = set()
            paths = (records.read_json(job.result) or {}).get("touched", [])
            touched[id(job)] = {
                str(Path(p).relative_to(project)) for p in paths if Path(p).is_relative_to(project)
            }
        for path in c.changed:
            suspects.setdefault(path, []).extend(c.jobs)
    for path, jobs in suspects.items():
        writers = [j for j in jobs if path in touched[id(j)]]
        for job in writers or ([] if authors_file(path) else jobs):
            job.files_written.add(path)


# What an author edits, and what editors write beside it while saving.
_AUTHORS = re.compile(
    r"\.(py|pyi|txt|rst|md|toml|cfg|ini|ya?ml|in|json)$|~$|\.sw[a-p]$|(^|/)\.#|(^|/)4913$"
)


def authors_file(path: str) -> bool:
    """A change no recipe's process was seen making, to a file an author edits (a source,
    text or settings file, or an editor's temporary file): the author's, not a recipe's."""
    return bool(_AUTHORS.search(path))


def log_execution(
    children: list, wall: float, warm: float, settings: dict, fds: tuple[int, int] = (0, 0)
) -> None:
    jobs = [job for c in children for job in c.jobs]
    cold = [
        j.entry["rel"] for j in jobs if not (records.read_json(j.result) or {}).get("warm", True)
    ]
    mode = f"{settings['jobs']} at a time" if settings["isolate"] else "all in one process"
    logger.info(
        f"[recipes] executed {len(jobs)} recipes ({mode}) in {wall:.2f} s, "
        f"{warm:.2f} s of it starting the warm parent; open files before and after: "
        f"{fds[0]}, {fds[1]}"
    )
    if cold:
        logger.warning(
            "[recipes] these recipes ran in a process that had not preloaded torch "
            f"(recipes_site.warm failed to import in the fork server): {', '.join(cold)}",
            type="recipes",
            subtype="warm",
        )
