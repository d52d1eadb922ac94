"""Run each recipe in a process of its own, forked from a warm parent, and supervise it.

``multiprocessing``'s ``forkserver`` start method is the pattern: a server
process imports torch and its compile stack once (:mod:`.warm`, or
:mod:`.warm_compile` when a recipe uses the compiler) and forks one child per
recipe, copy-on-write, in milliseconds. The Sphinx process itself never
imports torch for this, and no process that forks children has touched CUDA.

This module is the supervisor, in the Sphinx process. For each child it
enforces from outside what the child cannot enforce on itself:

* the time limit: at the limit it asks for every thread's traceback, sends
  SIGTERM (which stops Python code with ``RecipeTimeout``, so the page shows
  the output so far), and a few seconds later kills the child's whole process
  group, which also ends loops in C, deadlocks and stuck threads;
* the memory limit (``sphinx_gallery_memory_limit``, else ``recipes_memory_limit``);
* a recipe that ran to the end but whose process does not exit (a thread it
  left running), as ``python recipe.py`` would hang;
* crashes: a signal or an exit status instead of a result is a named failure,
  at the line faulthandler saw or the code cell that last started.

With ``JOBS=N``, N children run at a time (recipes declaring
``sphinx_gallery_parallel = False`` run alone). :mod:`.outcome` turns what a
child left behind into the recipe's record.
"""

from __future__ import annotations

import os
import re
import signal
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path

from sphinx.errors import ExtensionError

from . import child, memory, meta, outcome, plan, records, sourcetree, warmserver

POLL = 0.05  # seconds between looks at running children
TERM_GRACE = 3.0  # from SIGTERM at the time limit to SIGKILL
EXIT_GRACE = child.EXIT_GRACE  # from the result to the end of the process
LOG_LIMIT = child.LOG_LIMIT
RERUNS = 2  # times a recipe saved again while it ran is run again, from its new text
_COMPILE = re.compile(r"\btorch\.(compile|export|_dynamo|_inductor)\b|\baot_\w+\(")


@dataclass
class Job:
    entry: dict
    log: str
    events: str
    result: str
    memory_limit: int | None
    threads: int
    serial: bool
    files_written: set[str] = field(default_factory=set)


@dataclass
class Child:
    jobs: list[Job]  # one, unless isolation is off (``recipes_isolate = 0``, for measuring it)
    process: warmserver.RemoteProcess
    conn: Connection  # the child says here when each of its recipes is done
    started: float
    deadline: float
    stopping: str = ""  # why the supervisor stopped it: time, memory, exit, log
    kill_at: float = 0.0
    result_at: float = 0.0
    peak_rss: int = 0
    next_memory_check: float = 0.0
    ended: float = 0.0
    changed: set[str] = field(default_factory=set)  # files changed while it ran
    beside: int = 0  # the most recipe processes that ran beside it at once
    gpu: str | None = None  # its CUDA_VISIBLE_DEVICES, when several GPUs are shared out

    @property
    def job(self) -> Job:
        return self.jobs[-1]

    @property
    def serial(self) -> bool:
        return any(j.serial for j in self.jobs)


def needs_compiler(entries: list[dict]) -> bool:
    """Whether any of these recipes calls the compiler (then the parent warms it up)."""
    for entry in entries:
        try:
            if _COMPILE.search(Path(entry["src"]).read_text(encoding="utf-8")):
                return True
        except OSError:
            continue
    return False


class Supervisor:
    """Starts the children of one build, hands each its recipes, and reaps them;
    :func:`police` enforces each one's limits meanwhile."""

    def __init__(self, settings: dict, gallery_conf: dict):
        self.settings = settings
        self.gallery_conf = gallery_conf
        preload = "warm_compile" if settings["warm_compile"] else "warm"
        self.parent = warmserver.Parent(Path(settings["project"]), f"recipes_site.{preload}")
        self.running: list[Child] = []
        self.done: list[Child] = []
        self.warm_seconds: float | None = None  # how long the warm parent took to start
        self.standby: tuple[warmserver.RemoteProcess, Connection] | None = None
        self.tree = sourcetree.snapshot(settings["project"], settings["ignored"])

    # ---------------------------------------------------------------- scheduling

    def run(self, jobs: list[Job]) -> list[Child]:
        queue = list(jobs)
        self.done = []
        try:
            while queue or self.running:
                self._start_ready(queue)
                waiting = [c.conn for c in self.running if not c.result_at]
                wait([c.process.sentinel for c in self.running] + waiting, timeout=POLL)
                now = time.monotonic()
                for c in self.running:
                    c.beside = max(c.beside, len(self.running) - 1)
                for c in list(self.running):
                    self._listen(c, now)
                    if c.process.exitcode is not None:
                        self._reap(c)
                    else:
                        police(c, now)
        finally:
            for c in self.running:  # interrupted: leave nothing behind
                _signal_group(c, signal.SIGKILL)
            self._dismiss_standby()
        return self.done

    def _start_ready(self, queue: list[Job]) -> None:
        if not self.settings["isolate"]:
            if queue and not self.running:
                self._start(queue[:], after=None)
                queue.clear()
            return
        # A child holds its place until its process is reaped, so that nothing it
        # left (a busy thread, a process) runs beside the next recipe or is taken
        # for its doing.
        while queue and len(self.running) < self.settings["jobs"]:
            if (queue[0].serial and self.running) or any(c.serial for c in self.running):
                return
            job = queue.pop(0)
            self._start([job], after=queue[0] if queue else None)

    def _fork(self, after: Job | None = None) -> tuple[warmserver.RemoteProcess, Connection]:
        """A recipe process, forked and waiting for its recipes; if it is to run
        ``after``, it copies meanwhile the pages such a recipe writes."""
        before = time.monotonic()
        ahead = "" if after is None else "compile" if needs_compiler([after.entry]) else "plain"
        try:
            # The first fork waits for the warm parent's imports, unless it was running.
            forked = self.parent.fork(self.gallery_conf, ahead)
        except (EOFError, OSError) as exc:
            raise ExtensionError(
                "the warm parent that recipes are forked from did not start "
                f"({exc!r}); its own error is printed above"
            ) from None
        if self.warm_seconds is None:
            self.warm_seconds = time.monotonic() - before
        return forked

    def close(self) -> None:
        self._dismiss_standby()
        self.parent.close()

    def _free_gpu(self) -> str | None:
        """With JOBS>1 and several GPUs, a GPU no running recipe has (None: leave it)."""
        taken = {c.gpu for c in self.running}
        return next((g for g in self.settings.get("gpus", []) if g not in taken), None)

    def _dismiss_standby(self) -> None:
        if self.standby is not None:
            process, conn = self.standby
            conn.close()  # it reads the end of the pipe and returns
            process.join(timeout=5)
            if process.exitcode is None:
                process.kill()
            _close(process, conn)
            self.standby = None

    def _spec(self, job: Job) -> dict:
        return {
            "src": job.entry["src"],
            "target_dir": job.entry["target_dir"],
            "timeout": job.entry["timeout"],
            "expected_warnings": job.entry["expected_warnings"],
            "log": job.log,
            "events": job.events,
            "result": job.result,
            "threads": job.threads,
            "watched": self.settings["project"],
            "ignored": self.settings["ignored"],
            "cell_limit": self.settings["cell_limit"],
            "workdir": str(Path(self.settings["workdirs"], job.entry["id"])),
            "device": self.settings["device"],
            "entry": job.entry,
            "page_limit": self.settings["page_limit"],
        }

    def _start(self, jobs: list[Job], after: Job | None) -> Child:
        """Give ``jobs`` to the waiting process (or a new one); fork the next if a job
        comes ``after``."""
        self._look_for_changes()
        process, conn = self.standby or self._fork()
        self.standby = None
        gpu = self._free_gpu()
        specs = [{**self._spec(job), "cuda_visible_devices": gpu} for job in jobs]
        try:
            conn.send(specs)
        except OSError:  # the waiting process died (or its parent killed it): another
            _close(process, conn)
            process, conn = self._fork()
            conn.send(specs)
        now = time.monotonic()
        timeout = sum(job.entry["timeout"] for job in jobs)
        c = Child(jobs, process, conn, now, now + timeout, gpu=gpu)
        self.running.append(c)
        if after is not None:
            self.standby = self._fork(after)
        return c

    def _listen(self, c: Child, now: float) -> None:
        """Note when the child says its last recipe is done (its process then ends)."""
        try:
            while not c.result_at and c.conn.poll():
                if c.conn.recv() == c.job.result:
                    c.result_at = now
        except (EOFError, OSError):  # it ended without saying so: its exit tells why
            pass

    def _reap(self, c: Child) -> None:
        c.process.join()
        _signal_group(c, signal.SIGKILL)  # anything it started and left behind
        _close(c.process, c.conn)
        c.ended = time.monotonic()
        self._look_for_changes()
        self.running.remove(c)
        self.done.append(c)

    def _look_for_changes(self) -> None:
        """Files changed since the last look: any child running meanwhile may be the cause."""
        now = sourcetree.snapshot(self.settings["project"], self.settings["ignored"])
        changed = sourcetree.difference(self.tree, now)
        self.tree = now
        for c in self.running:
            c.changed.update(changed)


# ---------------------------------------------------------------------- supervision
# What the supervisor enforces on one running child, from outside it.


def police(c: Child, now: float) -> None:
    """Enforce the child's limits: time, memory, log size, and the exit after its result."""
    if c.stopping and now >= c.kill_at:
        _signal_group(c, signal.SIGKILL)
    elif c.result_at and now - c.result_at > EXIT_GRACE and not c.stopping:
        stop(c, "exit", now, grace=0.0)
    elif now >= c.deadline and not c.stopping and not c.result_at:
        stop(c, "time", now, grace=TERM_GRACE)
    elif now >= c.next_memory_check and not c.stopping:
        check_memory(c, now)


def check_memory(c: Child, now: float) -> None:
    c.next_memory_check = now + child.MEMORY_EVERY
    rss = memory.used(c.process.pid)
    c.peak_rss = max(c.peak_rss, rss)
    if c.job.memory_limit and rss > c.job.memory_limit:
        stop(c, "memory", now, grace=0.0)
    elif _size(c.job.log) > LOG_LIMIT:
        stop(c, "log", now, grace=0.0)


def stop(c: Child, why: str, now: float, grace: float) -> None:
    """Ask for every thread's traceback, then stop politely or at once."""
    c.stopping = why
    c.kill_at = now + grace
    _signal_child(c, child.DUMP_SIGNAL)
    time.sleep(0.05)  # the traceback is written by a C signal handler: let it finish
    if grace:
        _signal_child(c, child.TIME_LIMIT_SIGNAL)
    else:
        _signal_group(c, signal.SIGKILL)


def _close(process: warmserver.RemoteProcess, conn: Connection) -> None:
    """Every handle of a finished child: a long build must not run out of them."""
    conn.close()
    process.close()


def _signal_child(c: Child, sig: int) -> None:
    try:
        os.kill(c.process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _signal_group(c: Child, sig: int) -> None:
    try:
        os.killpg(c.process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


# ---------------------------------------------------------------------- the build step


def jobs_for(entries: list[dict], tmp: Path, settings: dict) -> list[Job]:
    """One job per recipe: serial ones first, then the longest first (for JOBS>1)."""
    count = settings["jobs"]
    threads = max(1, (os.cpu_count() or 1) // count) if count > 1 else 0
    jobs = []
    tmp.mkdir(parents=True, exist_ok=True)
    for i, entry in enumerate(entries):
        stem = f"{i:04d}"
        jobs.append(
            Job(
                entry=entry,
                log=str(tmp / f"{stem}.log"),
                events=str(tmp / f"{stem}.events"),
                result=str(tmp / f"{stem}.result.json"),
                memory_limit=entry.get("memory_limit") or settings["memory_limit"],
                # A recipe that runs alone gets every core; side by side, a share.
                threads=threads if entry.get("parallel", True) else 0,
                serial=not entry.get("parallel", True),
            )
        )
    guess = settings.get("durations", {})
    jobs.sort(key=lambda j: (not j.serial, -(guess.get(j.entry["id"]) or 0.0)))
    return jobs


def visible_gpus(count: int) -> list[str]:
    """The GPUs recipes may use, as ``CUDA_VISIBLE_DEVICES`` names them (none: unset)."""
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    names = [n.strip() for n in given.split(",") if n.strip()] if given else None
    return (names or [str(i) for i in range(count)])[:count] if count > 1 else []


def workdir_root(app) -> Path:
    """Where recipes run: ``_build/recipe-files/<recipe>/``, kept until it runs again."""
    return (Path(app.outdir).parent / "recipe-files").resolve()


def settings_for(app, manifest: dict, entries: list[dict]) -> dict:
    config = app.config
    project = Path(app.confdir).resolve()
    gallery = records.gallery_root(config.sphinx_gallery_conf)
    limit = manifest.get("memory_limit")
    jobs = max(1, int(manifest["jobs"]))
    workdirs = workdir_root(app)
    return {
        "workdirs": str(workdirs),
        "device": manifest.get("device", ""),
        "gpus": visible_gpus(manifest.get("gpus", 0)) if jobs > 1 else [],
        "jobs": jobs,
        "isolate": bool(manifest.get("isolate", True)),
        "project": str(project),
        "ignored": [
            str(Path(p).resolve()) for p in (app.outdir, app.doctreedir, gallery, workdirs)
        ],
        "memory_limit": meta.parse_size(limit) if limit else memory.default_limit(jobs),
        "cell_limit": config.recipes_output_cell_limit,
        "page_limit": config.recipes_output_page_limit,
        "warm_compile": needs_compiler(entries),
        "durations": plan.recorded_durations(Path(manifest["store"]), gallery),
    }


def execute(app) -> None:
    """``builder-inited``, after the plan and before sphinx-gallery renders the gallery."""
    gconf = app.config.sphinx_gallery_conf
    root = records.gallery_root(gconf)
    manifest = records.read_manifest(root)
    entries = [e for e in manifest["recipes"].values() if e.get("fate") == "execute"]
    if not entries:
        return
    settings = settings_for(app, manifest, entries)
    with tempfile.TemporaryDirectory(prefix="recipes-run-") as tmp:
        started = time.monotonic()
        supervisor = Supervisor(settings, dict(gconf))
        before = open_files()
        try:
            finished, attempt = _run_all(app, manifest, supervisor, entries, Path(tmp), settings)
        finally:
            supervisor.close()
        if attempt:  # entries were read again: their keys changed
            records.write_manifest(root, manifest, records.build_id(root))
        wall = time.monotonic() - started
        fds = (before, open_files())  # a long build must not run out of them
        outcome.log_execution(finished, wall, supervisor.warm_seconds or 0.0, settings, fds)


def open_files() -> int:
    """How many file descriptors this process holds (0 where that cannot be told)."""
    import psutil

    try:
        return psutil.Process().num_fds()
    except (psutil.Error, AttributeError):
        return 0


def _run_all(app, manifest, supervisor, entries, tmp: Path, settings) -> tuple[list, int]:
    """Run ``entries``, and again (from their new text) those their author saved meanwhile."""
    finished = []
    for attempt in range(RERUNS + 1):
        batch = supervisor.run(jobs_for(entries, tmp / str(attempt), settings))
        outcome.attribute_changes(batch, settings["project"])
        entries = []
        for c in batch:
            for job in c.jobs:
                again = attempt < RERUNS and outcome.ran_other_text(job)
                entry = again and plan.reread(app, job.entry)
                if entry:
                    manifest["recipes"][entry["id"]] = entry
                    entries.append(entry)
                else:
                    outcome.conclude(app, manifest, c, job)
        finished += batch
        if not entries:
            break
    return finished, attempt
