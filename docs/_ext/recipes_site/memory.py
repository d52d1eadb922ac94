"""Memory as the machine sees it: one definition for the limit, the footer and the failure.

A recipe's memory is the proportional set size plus swap of its process and
every process it started (:func:`used`): a page that a forked worker shares
with its parent (a ``DataLoader`` worker, a ``multiprocessing.Pool``) counts
once, split between them, instead of once per process as resident sizes do,
and memory pushed out to swap still counts. psutil reads it on Linux (from
``smaps_rollup``) and macOS alike; where it cannot tell PSS, the unique set
size (USS) stands in, which never counts a shared page twice either.

The default limit is a share of the memory the build may really use: the
machine's, or the container's limit when that is lower (cgroup v1 or v2),
divided among the recipes that run at once (``JOBS``).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

DEFAULT_SHARE = 0.8  # of the memory available to the build, for all its recipes together


def _one(proc) -> int:
    import psutil

    try:
        info = proc.memory_full_info()
    except (psutil.Error, OSError):
        try:
            return proc.memory_info().rss
        except (psutil.Error, OSError):
            return 0
    return int(getattr(info, "pss", 0) or getattr(info, "uss", 0)) + int(getattr(info, "swap", 0))


def used(pid: int) -> int:
    """Bytes used by process ``pid`` and its descendants, each page counted once."""
    import psutil

    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except (psutil.Error, OSError):
        return 0
    return sum(_one(proc) for proc in tree)


def _cgroup_limit() -> int | None:
    """The memory limit of this process's cgroup, if it has one."""
    paths = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if controllers == "":  # cgroup v2
                paths.append(Path("/sys/fs/cgroup", path.lstrip("/"), "memory.max"))
            elif "memory" in controllers.split(","):
                base = Path("/sys/fs/cgroup/memory")
                paths += [base / path.lstrip("/") / "memory.limit_in_bytes",
                          base / "memory.limit_in_bytes"]  # fmt: skip
    limits = []
    for path in paths:
        with contextlib.suppress(OSError, ValueError):
            text = path.read_text().strip()
            if text != "max":
                limits.append(int(text))
    # cgroup v1 says "no limit" with a huge number.
    real = [n for n in limits if 0 < n < 2**60]
    return min(real) if real else None


def available() -> int | None:
    """The memory the build may use: the machine's, or its container's limit if lower."""
    import psutil

    total = psutil.virtual_memory().total
    limit = _cgroup_limit()
    return min(total, limit) if limit else total


def default_limit(jobs: int, share: float = DEFAULT_SHARE) -> int | None:
    """Each recipe's share when ``jobs`` run at once."""
    memory = available()
    return int(memory * share / max(1, jobs)) if memory else None
