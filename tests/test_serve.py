"""``make serve``: one warm parent for the session, rebuilt after it dies, nothing left after it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import REPO, build_env, make_project, processes_of, recipe

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(root: Path, port: int) -> subprocess.Popen:
    """The command ``make serve`` runs, on a fixture project."""
    cmd = [sys.executable, "-m", "recipes_site.serve", "-b", "html", "-W", "--keep-going",
           "-c", str(root), "--host", "127.0.0.1", "--port", str(port), "--watch", "recipes",
           "--ignore", "docs/recipes", "--ignore", "docs/sg_execution_times.rst",
           "docs", "_build/html"]  # fmt: skip
    env = build_env(PYTHONPATH=str(REPO / "docs" / "_ext"))
    log = open(root / "serve.log", "w")  # noqa: SIM115
    return subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_for(url: str, text: str, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "make serve ended"
        try:
            if text in urllib.request.urlopen(url, timeout=5).read().decode():
                return
        except OSError:
            pass
        time.sleep(0.1)
    pytest.fail(f"{text!r} never appeared at {url}")


def until(condition, timeout: float = 30) -> bool:
    """Whether ``condition()`` holds within ``timeout`` seconds (looked at every 0.1 s)."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)
    return condition()


def stopped(root: Path, proc: subprocess.Popen, sig: int) -> list[str]:
    proc.send_signal(sig)
    proc.wait(timeout=60)
    until(lambda: not processes_of(root), timeout=15)
    return processes_of(root)


def wait_for_log(root: Path, text: str, count: int = 1, timeout: float = 120) -> str:
    """The serve log once ``text`` is in it ``count`` times (a build prints its summary
    after it has written the pages)."""
    log = root / "serve.log"
    if not until(lambda: log.read_text().count(text) >= count, timeout):
        pytest.fail(f"{text!r} did not appear {count} times in the log")
    return log.read_text()


def serve_processes(root: Path) -> list[str]:
    return [p for p in processes_of(root) if "recipes_site.serve" in p]


def server_pids(root: Path) -> list[int]:
    from recipes_site import warmserver

    return [json.loads(p.read_text())["pid"] for p in warmserver.folder(root).glob("*.json")]


def test_rebuilds_fork_from_one_parent_which_comes_back_if_killed(tmp_path):
    root = make_project(tmp_path / "p", recipes={"alpha.py": recipe("Alpha", 'print("v", 1)')})
    port, src = free_port(), root / "recipes/alpha.py"
    url = f"http://127.0.0.1:{port}/recipes/alpha.html"
    proc = serve(root, port)
    try:
        wait_for(url, "v 1", proc)
        (first,) = server_pids(root)
        src.write_text(src.read_text().replace("A fixture.", "A fixture, reworded."))
        wait_for(url, "A fixture, reworded.", proc)  # prose: made again, nothing ran
        wait_for_log(root, "only the text of these changed")
        src.write_text(src.read_text().replace('"v", 1', '"v", 2'))
        wait_for(url, "v 2", proc)
        log = wait_for_log(root, "of it starting the warm parent", count=2)
        assert server_pids(root) == [first], "a rebuild started its own warm parent"
        assert log.count("of it starting the warm parent") == 2
        # Each build ended with everything it started (sphinx-sitemap's manager process,
        # for one): between two builds, the session is one process and its warm parent.
        assert until(lambda: len(serve_processes(root)) == 1), serve_processes(root)
        os.kill(first, signal.SIGKILL)  # the warm parent dies between two rebuilds
        src.write_text(src.read_text().replace('"v", 2', '"v", 3'))
        wait_for(url, "v 3", proc)
        assert server_pids(root) not in ([], [first])
    finally:
        left = stopped(root, proc, signal.SIGTERM)
    assert left == [], left


def test_ctrl_c_while_a_recipe_runs_leaves_nothing_running(tmp_path):
    mark = tmp_path / "running"
    body = f"import pathlib\nimport time\n\npathlib.Path({str(mark)!r}).touch()\ntime.sleep(600)"
    root = make_project(tmp_path / "p", recipes={"sleepy.py": recipe("Sleepy", body)})
    proc = serve(root, free_port())
    try:
        deadline = time.monotonic() + 240
        while not mark.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert mark.exists(), (root / "serve.log").read_text()[-3000:]
        assert server_pids(root)
    finally:
        left = stopped(root, proc, signal.SIGINT)
    assert left == [], left
