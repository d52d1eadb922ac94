"""What happens inside the process that executes one recipe.

:mod:`recipes_site.executor` forks this process from a warm parent (torch and
its compile stack already imported) and calls :func:`main`. The child:

* starts a process group of its own, so that the parent can stop it and
  everything it started with one signal;
* sends its C-level output and fatal-error tracebacks (:mod:`faulthandler`)
  to a log file, and notes each code cell as it starts, so that the parent
  can say where a recipe that crashed or hung was;
* generates the page through sphinx-gallery's own per-file function, with
  :class:`BlockRunner` (sphinx-gallery's ``show_memory`` hook) timing each
  code cell with CUDA synchronised, taking peak memory, and classifying the
  exception that ends a recipe;
* bounds what each cell printed, writes its result for the parent, and then
  ends like a script does, waiting for the threads the recipe left running.
  The parent gives it a few seconds for that.

Whatever the recipe changed (modes, flags, threads, patched builtins,
loggers, open files) ends with this process.
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import random
import re
import signal
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from . import outputs, records

# Messages PyTorch raises when a recipe asks for CUDA on a machine without it.
_NO_CUDA = re.compile(
    r"Torch not compiled with CUDA enabled|Found no NVIDIA driver|No CUDA GPUs are available"
    r"|no CUDA-capable device|CUDA driver initialization failed|cuda(?:Get)?DeviceCount"
    r"|Cannot access accelerator device when none is available"
    r"|Tried to instantiate dummy base class|requires CUDA support|has no attribute '_cuda_",
    re.I,
)
_DRIFT = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)
MESSAGE_LIMIT = 2_000  # characters of an error message kept in the record
EXIT_GRACE = 5.0  # seconds the parent waits, after the result, for the process to end
LOG_LIMIT = 64 * 10**6  # bytes the parent lets a process write to its C-level output
TIME_LIMIT_SIGNAL = signal.SIGTERM  # the parent's first, polite, stop
DUMP_SIGNAL = signal.SIGUSR1  # the parent asks for every thread's traceback
MEMORY_EVERY = 0.25  # seconds: how often memory is read, here and by the parent (POLL)


class RecipeTimeout(Exception):
    """Raised inside a recipe that ran past its time limit."""


class RecipeExit(Exception):
    """A recipe called ``sys.exit``; the rest of it is not executed."""


class RecipeInterrupted(Exception):
    """A recipe raised KeyboardInterrupt (or received SIGINT)."""


@dataclass
class Run:
    """Everything measured while one recipe executes."""

    src: str
    timeout: float
    expected_warnings: tuple[str, ...] = ()
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    peak_cuda_mb: float = 0.0
    measured_at: float = field(default_factory=time.perf_counter)  # memory's last reading
    in_block: bool = False
    expired: bool = False
    cell_line: int = 0  # the recipe's line when its time ran out
    partial: str = ""  # the file that holds what the running cell printed
    partial_limit: int = 200_000
    partial_left: int = 0
    cell_output: object = None  # sphinx-gallery's buffer of the running cell
    workdir: str = ""  # the folder of its own that the recipe runs in
    error: dict | None = None
    traceback: str = ""
    status: str = "executed"
    warnings: list[dict] = field(default_factory=list)
    sphinx_warnings: list[dict] = field(default_factory=list)
    touched: set[str] = field(default_factory=set)


_current: Run | None = None
_log = None  # the log file faulthandler writes to: open until the process ends


# --------------------------------------------------------------------------- measuring


def _torch():
    import torch

    return torch


def measure_memory(run: Run) -> None:
    run.peak_rss_mb = max(run.peak_rss_mb, peak_rss_mb())
    run.measured_at = time.perf_counter()


def peak_rss_mb() -> float:
    """The recipe's memory now, in MiB, as :mod:`.memory` defines it (the peak is the
    largest of these, taken after a code cell at most every MEMORY_EVERY seconds, at the
    recipe's end, and by the supervisor meanwhile)."""
    from . import memory

    return memory.used(os.getpid()) / 2**20


def _cuda_in_use():
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda
    return None


class BlockRunner:
    """sphinx-gallery ``show_memory`` hook: ``BlockRunner()(func)`` runs one code block.

    An instance rather than a function, so that Sphinx can cache the
    configuration that holds it (Sphinx does not pickle functions).
    """

    def __call__(self, func):
        return run_block(func)

    # Equal and printed the same across builds, so that Sphinx sees an unchanged
    # configuration (it hashes the config's text to decide whether to rewrite
    # every page).
    def __eq__(self, other):
        return isinstance(other, BlockRunner)

    def __repr__(self):
        return f"{__name__}.BlockRunner()"

    __hash__ = object.__hash__


class _Printed:
    """A stream in front of sphinx-gallery's: what the current cell prints also goes
    to a file, so that a cell that fails, or a process that is killed, still shows
    what it printed before the end (sphinx-gallery shows only the traceback)."""

    def __init__(self, inner, run: Run):
        self.inner = inner
        self.run = run
        # sphinx-gallery gives each code cell a buffer of its own; a cell may reach
        # this hook twice (its body, then its last expression).
        cell = getattr(inner, "output", None)
        new_cell = cell is None or cell is not run.cell_output
        run.cell_output = cell
        if new_cell:
            run.partial_left = run.partial_limit
        try:
            flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if new_cell else os.O_APPEND)
            self.fd = os.open(run.partial, flags, 0o644) if run.partial else -1
        except OSError:
            self.fd = -1

    def write(self, text):
        if self.run.partial_left > 0 and self.fd >= 0:
            data = str(text)[: self.run.partial_left].encode("utf-8", "replace")
            with contextlib.suppress(OSError):
                os.write(self.fd, data)
            self.run.partial_left -= len(data)
        return self.inner.write(text)

    def close_file(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __getattr__(self, name):
        return getattr(self.inner, name)


def run_block(func):
    """Execute one code block of the current recipe and measure it."""
    run = _current
    if run is None:
        return 0.0, func()
    if run.expired:
        exc = RecipeTimeout(f"ran past its time limit of {run.timeout:g} s")
        _classify(run, exc)
        raise exc
    start = time.perf_counter()
    run.in_block = True
    here = os.getcwd()  # sphinx-gallery's: the recipe's own folder
    if run.workdir:
        os.chdir(run.workdir)
    shown = sys.stdout
    sys.stdout = _Printed(shown, run)  # what the cell prints, kept should it fail
    try:
        result = func()
        cuda = _cuda_in_use()
        if cuda:
            for device in range(cuda.device_count()):  # every device it may have used
                cuda.synchronize(device)
    except SystemExit as exc:
        # Reported where sys.exit() was called, not where the page was made.
        stop = RecipeExit(f"the recipe called sys.exit({exc.code!r})")
        raise _classify(run, exc, stop) from None
    except KeyboardInterrupt as exc:
        stop = RecipeInterrupted("the recipe was interrupted (KeyboardInterrupt)")
        raise _classify(run, exc, stop) from None
    except Exception as exc:
        _classify(run, exc)
        raise
    finally:
        if isinstance(sys.stdout, _Printed):
            sys.stdout.close_file()
            sys.stdout = shown
        with contextlib.suppress(OSError):
            os.chdir(here)
        run.in_block = False
        run.seconds += time.perf_counter() - start
    # Memory after a cell, at most every MEMORY_EVERY seconds (a reading walks the page
    # tables of the whole process tree: milliseconds each); the end of the recipe and
    # the supervisor, every MEMORY_EVERY seconds meanwhile, read it too.
    if time.perf_counter() - run.measured_at >= MEMORY_EVERY:
        measure_memory(run)
    peak = run.peak_rss_mb
    cuda = _cuda_in_use()
    if cuda:
        run.peak_cuda_mb = max(run.peak_cuda_mb, cuda.max_memory_allocated() / 2**20)
    return peak, result


def _classify(run: Run, exc: BaseException, replacement: Exception | None = None):
    """Note why the recipe stopped; return ``replacement`` (what sphinx-gallery shows)."""
    folder = str(Path(run.src).parent) + os.sep
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if f.filename == run.src or f.filename.startswith(folder)
    ]
    mine = [f for f in frames if f.filename == run.src]
    if replacement is not None:
        message = str(replacement)
    else:
        message = f"{type(exc).__name__}: {exc}".strip()
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        top = exc.name.split(".")[0]
        message += (
            f" (add the package that provides {top!r} to requirements.txt, or declare "
            f'# sphinx_gallery_requires = ["package:{top}"] so that builds without it '
            "skip this recipe)"
        )
    if isinstance(exc, RecipeTimeout) or run.expired:
        run.status = "timed-out"
    elif _needs_cuda(exc):
        run.status = "needs-cuda"
    else:
        run.status = "failed"
    run.error = {
        "file": run.src,
        "line": mine[-1].lineno if mine else 1,
        "message": (message.splitlines() or [""])[0][:MESSAGE_LIMIT],
    }
    run.traceback = "".join(
        traceback.format_list(frames) + traceback.format_exception_only(type(exc), exc)
    ).rstrip()[: 100 * MESSAGE_LIMIT]
    if replacement is not None:
        replacement.__traceback__ = exc.__traceback__
    return replacement


def _needs_cuda(exc: BaseException) -> bool:
    torch = sys.modules.get("torch")
    if torch is None or torch.cuda.is_available():
        return False
    # The exception and what it was raised from (``raise ... from``), not what it
    # was raised while handling: a genuine error inside an except block is no excuse.
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if _NO_CUDA.search(str(exc)):
            return True
        exc = exc.__cause__
    return False


# --------------------------------------------------------------------------- signals and events


def _on_time_limit(signum, frame):
    run = _current
    if run is None:
        return
    run.expired = True
    while frame is not None and frame.f_code.co_filename != run.src:
        frame = frame.f_back
    run.cell_line = frame.f_lineno if frame is not None else 0
    if run.in_block:
        raise RecipeTimeout(f"ran past its time limit of {run.timeout:g} s")


class _Events:
    """Audit hook: note each code cell of the recipe as it starts, and files it writes."""

    def __init__(self, watched: str, ignored: list[str]):
        self.watched = watched.rstrip(os.sep) + os.sep
        self.ignored = tuple(i.rstrip(os.sep) + os.sep for i in ignored)
        self.file = None
        self.src = None

    def follow(self, spec: dict) -> None:
        if self.file is not None:
            self.file.close()
        self.file = open(spec["events"], "a", buffering=1, encoding="utf-8")  # noqa: SIM115
        self.src = spec["src"]

    def __call__(self, event: str, args) -> None:
        if event == "exec":
            code = args[0]
            if self.file is not None and getattr(code, "co_filename", None) == self.src:
                # Any line of the cell will do: the parent maps it to the cell's start.
                lines = [line for _, _, line in code.co_lines() if line]
                self.file.write(f"cell {max(lines) if lines else 1}\n")
        elif event == "open":
            path, mode, flags = args
            if isinstance(path, (str, bytes, os.PathLike)) and _writes(mode, flags):
                self._touched(path)
        elif event in ("os.remove", "os.rename", "os.mkdir", "os.rmdir", "shutil.rmtree"):
            for path in args[:2] if event == "os.rename" else args[:1]:
                self._touched(path)

    def _touched(self, path) -> None:
        try:
            full = os.path.abspath(os.fsdecode(path))
        except (TypeError, ValueError):
            return
        if full.startswith(self.watched) and not full.startswith(self.ignored):
            if _current is not None:
                _current.touched.add(full)


def _writes(mode, flags) -> bool:
    if isinstance(mode, str):
        return any(c in mode for c in "wax+")
    writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    return isinstance(flags, int) and bool(flags & writing)


# --------------------------------------------------------------------------- warnings and logs


def _recording_formatwarning(original):
    def formatwarning(message, category, filename, lineno, line=None):
        run = _current
        if run is not None and issubclass(category, _DRIFT):
            # Raised inside a library: reported at the recipe's line that led to it.
            if filename != run.src:
                mine = [f for f in traceback.extract_stack() if f.filename == run.src]
                if mine:
                    filename, lineno = run.src, mine[-1].lineno
            entry = {
                "category": category.__name__,
                "message": str(message).strip(),
                "file": filename,
                "line": lineno,
            }
            text = f"{entry['category']}: {entry['message']}"
            entry["expected"] = any(re.search(p, text) for p in run.expected_warnings)
            if entry not in run.warnings:
                run.warnings.append(entry)
        return original(message, category, filename, lineno, line)

    return formatwarning


class _SphinxWarnings(logging.Handler):
    """Keeps the warnings sphinx-gallery logs in this process, for the parent to log
    again (Sphinx counts and filters them there)."""

    def __init__(self):
        super().__init__(logging.WARNING)

    def emit(self, record) -> None:
        if _current is None:
            return
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not end the recipe
            message = str(record.msg)
        location = getattr(record, "location", None)
        _current.sphinx_warnings.append(
            {
                "level": record.levelname,
                "message": re.sub(r"\x1b\[[0-9;]*m", "", message),
                "type": getattr(record, "type", None),
                "subtype": getattr(record, "subtype", None),
                "location": location if isinstance(location, str) else None,
            }
        )


# --------------------------------------------------------------------------- the child


def seed_everything(seed: int = 0) -> None:
    random.seed(seed)
    _torch().manual_seed(seed)
    try:
        import numpy

        numpy.random.seed(seed)
    except ImportError:  # pragma: no cover - numpy ships with the build requirements
        pass


def _detach(spec: dict):
    """Own process group; C-level output and fatal tracebacks into the job's log."""
    os.setsid()
    from . import warmserver

    # Processes the recipe starts stay its descendants, even orphaned ones
    # (a daemon, a process in a session of its own): end_leftovers finds them.
    warmserver.become_subreaper()
    log_fd = os.open(spec["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    log = os.fdopen(log_fd, "w", buffering=1)
    faulthandler.enable(file=log, all_threads=True)
    faulthandler.register(DUMP_SIGNAL, file=log, all_threads=True)
    signal.signal(TIME_LIMIT_SIGNAL, _on_time_limit)
    return log


def _prepare(spec: dict) -> _Events:
    """Once per process: what every recipe in it runs under."""
    import multiprocessing

    # A recipe that uses multiprocessing gets what a script gets, not our server.
    multiprocessing.set_start_method(None, force=True)
    events = _Events(spec["watched"], spec["ignored"])
    sys.addaudithook(events)
    if spec.get("threads"):
        _torch().set_num_threads(spec["threads"])
    warnings.formatwarning = _recording_formatwarning(warnings.formatwarning)
    for category in _DRIFT:
        warnings.simplefilter("always", category)
    sphinx_logger = logging.getLogger("sphinx")
    sphinx_logger.handlers[:] = [_SphinxWarnings()]
    sphinx_logger.setLevel(logging.WARNING)
    sphinx_logger.propagate = False
    return events


def _generate(spec: dict, gallery_conf: dict) -> dict:
    from sphinx_gallery.gen_rst import generate_file_rst

    conf = dict(gallery_conf)
    conf["filename_pattern"] = re.escape(os.path.normpath(spec["src"])) + "$"
    conf["plot_gallery"] = True
    src = Path(spec["src"])
    _, _, _, out_vars = generate_file_rst(src.name, spec["target_dir"], str(src.parent), conf)
    return out_vars


_TRACEBACK_BLOCK = ".. rst-class:: sphx-glr-script-out\n\n.. code-block:: pytb\n"


def show_printed(page: Path, printed: str) -> bool:
    """Put what the failing cell printed in an output block above its traceback
    (sphinx-gallery replaces a failing cell's output with the traceback alone)."""
    text = page.read_text(encoding="utf-8")
    at = text.find(_TRACEBACK_BLOCK)
    if at < 0 or not printed.strip():
        return False
    body = "\n".join("    " + line for line in printed.rstrip("\n").split("\n"))
    block = f".. rst-class:: sphx-glr-script-out\n\n .. code-block:: none\n\n{body}\n\n\n"
    page.write_text(text[:at] + block + text[at:], encoding="utf-8")
    return True


def _finish(spec: dict, run: Run, out_vars: dict) -> dict:
    """Check the page, bound its output, and say how the run went."""
    page = Path(spec["target_dir"]) / f"{Path(spec['src']).stem}.rst"
    shown = False
    if "formatted_exception" in out_vars and page.is_file():
        with contextlib.suppress(OSError):
            shown = show_printed(page, Path(run.partial).read_text(encoding="utf-8"))
    cut = outputs.bound_file(page, spec["cell_limit"], spec["page_limit"])
    measure_memory(run)  # what the recipe holds at its end
    if run.status == "executed":
        if run.expired:  # it reached its limit, whatever it did with the signal
            run.status = "timed-out"
            run.error = {
                "file": run.src,
                "line": run.cell_line or 1,
                "message": f"ran past its time limit of {run.timeout:g} s",
            }
        elif "formatted_exception" in out_vars or not out_vars.get("passing"):
            run.status = "failed"
            run.error = run.error or {"file": run.src, "line": 1, "message": "the recipe failed"}
        elif run.seconds <= 0:
            run.status = "failed"
            run.error = {"file": run.src, "line": 1, "message": "its run time was 0 s"}
        elif not outputs.has_output(page.read_text(encoding="utf-8")):
            run.status = "failed"
            run.error = {
                "file": run.src,
                "line": 1,
                "message": "it ran but printed nothing and drew nothing",
            }
    return {
        "status": run.status,
        "error": run.error,
        "traceback": run.traceback,
        "seconds": round(run.seconds, 6),
        "peak_rss_mb": round(run.peak_rss_mb, 1),
        "peak_cuda_mb": round(run.peak_cuda_mb, 1),
        "warnings": run.warnings,
        "sphinx_warnings": run.sphinx_warnings,
        "truncated": cut,
        "touched": sorted(run.touched),
        "page": True,
        "printed_shown": shown,
    }


def make_workdir(spec: dict) -> str:
    """An empty folder for the recipe to run in, showing the files of its source folder
    (as links): what it writes by relative path lands here, not in the source tree,
    and never meets another recipe's files."""
    import shutil

    work = spec.get("workdir")
    if not work:
        return ""
    shutil.rmtree(work, ignore_errors=True)
    Path(work).mkdir(parents=True)
    source = Path(spec["src"]).parent
    for item in source.iterdir():
        if item.name != "__pycache__":
            with contextlib.suppress(OSError):
                (Path(work) / item.name).symlink_to(item)
    return work


def leftovers_path(result: str) -> str:
    return result + ".leftovers"


def partial_path(result: str) -> str:
    return result + ".printed"


def _md5(path) -> str:
    import hashlib

    try:
        return hashlib.md5(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""


def run_one(spec: dict, gallery_conf: dict) -> dict:
    """Execute one recipe through sphinx-gallery; return its result for the parent."""
    global _current
    if spec.get("cuda_visible_devices") is not None:  # its own GPU, beside others
        os.environ["CUDA_VISIBLE_DEVICES"] = spec["cuda_visible_devices"]
    run = Run(src=spec["src"], timeout=spec["timeout"], partial=partial_path(spec["result"]))
    run.partial_limit = spec["cell_limit"]
    run.workdir = make_workdir(spec)
    run.expected_warnings = tuple(spec["expected_warnings"])
    _current = run
    started = time.time()
    try:
        seed_everything()
        before = _md5(spec["src"])
        if spec.get("device") == "cuda" and not _torch().cuda.is_available():
            raise RuntimeError(
                "this build runs recipes on CUDA, but the recipe's process cannot use it "
                "(was the driver loaded in the warm parent, or is CUDA hidden?)"
            )
        out_vars = _generate(spec, gallery_conf)
        result = _finish(spec, run, out_vars)
        if result["status"] == "executed" and spec.get("entry"):
            from . import thumbs

            thumbs.for_entry(spec["entry"])  # stored with the run's other outputs
        copy = Path(spec["target_dir"]) / Path(spec["src"]).name
        # The text that ran: read before and after, and the copy sphinx-gallery made
        # in between. An author who saved meanwhile makes them differ.
        result["ran_md5"] = before if {_md5(spec["src"]), _md5(copy)} == {before} else ""
    except BaseException as exc:  # the machinery failed, not the recipe: say so
        result = {
            "status": "failed",
            "error": {"file": spec["src"], "line": 1, "message": f"the build failed: {exc!r}"},
            "traceback": traceback.format_exc(),
            "page": False,
        }
    finally:
        _current = None
    result["wall"] = [started, time.time()]
    result["warm"] = "recipes_site.warm" in sys.modules
    result["cuda_used"] = _cuda_in_use() is not None
    return result


# ---------------------------------------------------------------------------- scout
# Runs once per warm parent, in a process of its own, to learn which of the
# parent's pages a recipe process writes (see :mod:`.prefault`).

SCOUT_TITLE = '''"""
Scout
=====

A small recipe that shows which pages a recipe process writes.
"""

import torch
'''

SCOUT_PLAIN = """
import matplotlib.pyplot as plt

x = torch.linspace(0, 1, 8)
print(x.sum())
plt.plot(x, x * 2)
plt.show()
"""

# The compile warm-up's own function: a hit in the compile cache.
SCOUT_COMPILE = """
from recipes_site.warm_compile import step

print(torch.compile(step)(torch.rand(8, 8), torch.rand(8, 8)).shape)
"""


def scout(gallery_conf: dict, compiled: bool, learned: str) -> None:
    """Run a plain recipe, then (if ``compiled``) a compiling one, through
    :func:`run_one` in a scratch folder; after each, save the pages this process
    has written (a compiling recipe writes those of a plain one too)."""
    import shutil
    import tempfile

    from . import prefault

    scratch = Path(tempfile.mkdtemp(prefix="recipes-scout-"))
    conf = {**gallery_conf, "src_dir": str(scratch)}  # the pages' paths are relative
    pages = {}
    try:
        for kind, body in [("plain", SCOUT_PLAIN)] + compiled * [("compile", SCOUT_COMPILE)]:
            src = scratch / kind / "scout.py"
            src.parent.mkdir()
            src.write_text(SCOUT_TITLE + body, encoding="utf-8")
            spec = {
                "src": str(src),
                "target_dir": str(scratch / kind),
                "timeout": 60.0,
                "expected_warnings": [],
                "result": str(scratch / f"{kind}.json"),
                "cell_limit": 10**6,
                "page_limit": 10**7,
                "workdir": str(scratch / f"{kind}-work"),
                "device": "cpu",
            }
            if run_one(spec, conf).get("status") != "executed":
                break
            pages[kind] = prefault.written_pages()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    prefault.save(learned, pages)


def end_leftovers() -> None:
    """At the end of the process: end every process the recipe left running, and
    write down which (the parent reports them) next to the last recipe's result."""
    from . import warmserver

    # multiprocessing's own helpers end with the process that started them: not a leak.
    ended = [p for p in warmserver.end_descendants() if not _HELPER.search(p)]
    if ended and _leftovers is not None:
        records.write_json(Path(_leftovers), ended)


_leftovers: str | None = None
_HELPER = re.compile(r"multiprocessing\.(resource_tracker|forkserver|semaphore_tracker)")


def main(specs: list[dict], gallery_conf: dict, conn=None) -> None:
    """Run ``specs`` (one recipe, unless isolation is off) and report each to ``conn``."""
    global _log, _leftovers
    _leftovers = leftovers_path(specs[-1]["result"])
    _log = _detach(specs[0])
    events = _prepare(specs[0])
    for spec in specs:
        events.follow(spec)
        records.write_json(Path(spec["result"]), run_one(spec, gallery_conf))
        if conn is not None:
            conn.send(spec["result"])
    _log.flush()
    # Returning ends the process as a script ends: multiprocessing waits for
    # the threads the recipe left running. The parent allows a few seconds.


def standby(conn, gallery_conf: dict, ahead: tuple[str, str] | None = None) -> None:
    """Entry point of a recipe process (a ``multiprocessing.Process`` target).

    The parent forks the next process while the current recipe runs; it waits
    here, already forked and bootstrapped, until it is given its recipes.
    Meanwhile, given ``ahead`` (what the scout learned, the next recipe's kind),
    it copies the pages such a recipe writes (:mod:`.prefault`).
    """
    if ahead is not None:
        from . import prefault

        with contextlib.suppress(Exception):  # an optimisation only
            prefault.copy_ahead(*ahead, arrived=conn.poll)
    try:
        specs = conn.recv()
    except (EOFError, KeyboardInterrupt):  # the build ended, or was stopped, first
        return
    main(specs, gallery_conf, conn)
