"""``make serve``: sphinx-autobuild, with one warm parent for the whole session.

sphinx-autobuild starts a fresh Sphinx process for every change. Each of them
would start its own warm parent (torch's imports and a compiler warm-up,
seconds) for the one recipe that changed. This wrapper runs sphinx-autobuild
with ``RECIPES_SERVE_PID`` set to its own pid: the first build that needs a
recipe process starts a warm parent that outlives it (:mod:`.warmserver`),
and every later build forks from that same parent. The parent ends with this
process (it watches it), and this process ends everything it started when it
is stopped: Ctrl-C, SIGTERM, a closed terminal (SIGHUP), or the end of the
``make`` that started it.

Usage: ``python -m recipes_site.serve <sphinx-autobuild arguments>``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import warmserver

STOP_GRACE = 5.0  # seconds sphinx-autobuild gets to stop before it is killed


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM to sphinx-autobuild and the builds it started, then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, STOP_GRACE), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def end_session(project: Path, owner: int) -> None:
    """Tell every warm parent of this session to end, and wait until they have."""
    found = []
    for info in warmserver.folder(project).glob("*.json"):
        data = warmserver.read_info(info)
        if data.get("owner") == owner:
            warmserver.quit_server(info.with_suffix(".sock"))
            found.append(data["pid"])
    deadline = time.monotonic() + 10
    while any(warmserver.alive(pid) for pid in found) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in found:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def main(argv: list[str]) -> int:
    owner = os.getpid()
    project = Path.cwd()
    env = {**os.environ, warmserver.OWNER_ENV: str(owner)}
    parent = os.getppid()
    stopping = []

    def stop(signum, frame):
        stopping.append(signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)
    # A session of its own: this process stops it and everything in it as one.
    proc = subprocess.Popen(
        [sys.executable, "-m", "sphinx_autobuild", *argv], env=env, start_new_session=True
    )
    try:
        while proc.poll() is None and not stopping:
            if os.getppid() != parent:  # `make` was stopped without us
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.2)
    finally:
        stop_group(proc)
        end_session(project, owner)
    return 0 if stopping else (proc.returncode or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
