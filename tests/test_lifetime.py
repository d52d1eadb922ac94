"""A build's processes and files: none outlive a stopped build, no killed build breaks the next."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import (
    build_env,
    make_project,
    processes_of,
    project_with_makefile,
    recipe,
    sphinx_build,
)

pytestmark = pytest.mark.slow


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file()
    }


def test_sigterm_to_make_html_ends_every_process_and_writes_nothing(tmp_path):
    mark = tmp_path / "running"
    body = (
        f"import pathlib\nimport time\n\npathlib.Path({str(mark)!r}).touch()\n"
        "time.sleep(60)\nprint('never')"
    )
    root = project_with_makefile(tmp_path / "p", {"sleepy.py": recipe("Sleepy", body)})
    proc = subprocess.Popen(
        ["make", "html"], cwd=root, env=build_env(), start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while not mark.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert mark.exists(), "the recipe never started"
        pages, stored = snapshot(root / "docs/recipes"), snapshot(root / ".cache/recipes")
        proc.send_signal(signal.SIGTERM)  # to make alone, as `timeout make html` does
        proc.wait(timeout=60)
        time.sleep(3)
        assert processes_of(root) == []
        assert snapshot(root / "docs/recipes") == pages
        assert snapshot(root / ".cache/recipes") == stored
    finally:
        for line in processes_of(root):
            subprocess.run(["kill", "-9", line.split(":")[0]], check=False)


def test_a_store_entry_a_killed_build_half_removed_is_run_again(tmp_path):
    root = make_project(tmp_path, recipes={"alpha.py": recipe("Alpha", "print(6 * 7)")})
    assert sphinx_build(root).returncode == 0
    store = root / ".cache/recipes/store"
    (entry,) = [p for p in store.iterdir() if not p.name.startswith(".")]
    next((entry / "files").glob("*.ipynb")).unlink()  # killed while deleting its files
    aside = store / f".old-{entry.name}-999999999"  # killed after renaming one aside
    shutil.copytree(entry, aside)
    shutil.rmtree(root / "docs/recipes")  # nothing local: the store must answer
    proc = sphinx_build(root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    timings = json.loads((root / "_build/html/recipes/timings.json").read_text())
    assert [r["recipe"] for r in timings["recipes"] if r["ran_in_this_build"]] == ["alpha"]
    assert not aside.exists()
    assert next((entry / "files").glob("*.ipynb"))


def test_finished_recipe_processes_leave_no_open_files_behind(tmp_path):
    recipes = {f"r{i:02d}.py": recipe(f"Recipe {i:02d}", f"print({i})") for i in range(40)}
    root = make_project(tmp_path, recipes=recipes)
    proc = sphinx_build(root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    before, after = re.search(r"open files before and after: (\d+), (\d+)", proc.stdout).groups()
    assert int(before) > 0 and after == before


SWEEPER = r"""
import json, os, subprocess, sys, time
sys.path.insert(0, "docs/_ext")
from recipes_site import warmserver

warmserver.become_subreaper()
# A running recipe: a subreaper of its own that starts short processes without a pause,
# as inductor starts the compiler, each one between two listings of the sweep.
recipe = subprocess.Popen([sys.executable, "-c",
    "import subprocess, sys; sys.path.insert(0, 'docs/_ext');"
    "from recipes_site import warmserver; warmserver.become_subreaper()\n"
    "while True: subprocess.run(['true'])"])
# An ended recipe's daemon: orphaned, so adopted by this process.
if os.fork() == 0:
    if os.fork() == 0:
        os.execvp("sleep", ["sleep", "301.5"])
    os._exit(0)
os.wait()
time.sleep(0.5)
ended = []
deadline = time.monotonic() + 3
while time.monotonic() < deadline:  # as the server does: sweep, then reap what ended
    ended += warmserver.end_strays({recipe.pid})
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                break
        except ChildProcessError:
            break
print(json.dumps({"ended": ended, "recipe_alive": recipe.poll() is None}))
recipe.kill()
"""


def test_the_stray_sweep_ends_adopted_orphans_and_nothing_a_running_recipe_starts():
    done = subprocess.run(
        [".venv/bin/python", "-c", SWEEPER], capture_output=True, text=True, timeout=120,
        cwd=Path(__file__).parent.parent,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["recipe_alive"]
    # Each stray once: a process killed but not yet gone may be seen by the next sweep.
    (stray,) = set(found["ended"])
    assert stray.endswith(": sleep 301.5"), found


def test_a_build_waits_for_the_warm_parent_that_is_starting_instead_of_starting_another(
    tmp_path, monkeypatch
):
    """make serve starts its warm parent beside its first build: a build that finds no
    socket yet (the parent is still importing torch) waits for that one."""
    from recipes_site import warmserver

    monkeypatch.setenv(warmserver.OWNER_ENV, str(os.getpid()))  # a serve session's parent
    first = warmserver.Parent(tmp_path, "recipes_site.warm")
    first.ensure_running()
    assert first.process is not None
    second = warmserver.Parent(tmp_path, "recipes_site.warm")
    try:
        assert second._connect() is None  # still starting: nothing listens yet
        process, conn = second.fork({})
        assert second.process is None, "a second warm parent was started"
        assert [json.loads(p.read_text())["pid"] for p in
                warmserver.folder(tmp_path).glob("*.json")] == [first.process.pid]  # fmt: skip
        conn.close()  # the recipe process gets no recipe and ends
        process.join(timeout=30)
        process.close()
    finally:
        warmserver.quit_servers_of(warmserver.folder(tmp_path), os.getpid())
        first.process.wait(timeout=30)


def test_the_warm_parent_learns_what_recipes_write_and_its_next_process_copies_it_ahead(
    tmp_path,
):
    """The first fork sends a scout that lists the pages a recipe writes; a process
    forked to run a recipe of that kind next copies them while it waits."""
    import psutil
    from recipes_site import child, prefault, warmserver
    from sphinx_gallery.gen_gallery import _fill_gallery_conf_defaults

    conf = _fill_gallery_conf_defaults({"show_memory": child.BlockRunner()})
    parent = warmserver.Parent(tmp_path, "recipes_site.warm")
    forked = []
    try:
        forked.append(parent.fork(conf))  # the first fork: the scout starts beside it
        folder = warmserver.folder(tmp_path)
        deadline = time.monotonic() + 120
        while not list(folder.glob("*.pages")) and time.monotonic() < deadline:
            time.sleep(0.1)
        (learned,) = folder.glob("*.pages")
        pages = json.loads(learned.read_text())["plain"]
        assert pages, "the scout learned nothing"
        waits, ahead = parent.fork(conf), parent.fork(conf, "plain")
        forked += [waits, ahead]

        def copied() -> int:
            own = [psutil.Process(p.pid).memory_full_info().uss for p, _ in (waits, ahead)]
            return (own[1] - own[0]) // prefault.PAGE

        deadline = time.monotonic() + 60
        while copied() < len(pages) // 4 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert copied() >= len(pages) // 4, (copied(), len(pages))
    finally:
        for process, conn in forked:
            conn.close()  # no recipe: it ends
            process.join(timeout=30)
            process.close()
        parent.close()


def test_a_warm_parent_that_ends_while_it_is_asked_to_fork_is_replaced(tmp_path):
    """A recipe may kill its warm parent while the build asks that parent for the
    next recipe's process: the build then starts a new parent and asks it."""
    import socket
    import threading

    from recipes_site import warmserver

    parent = warmserver.Parent(tmp_path, "recipes_site.warm")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(parent.address)  # a parent that takes the request, then dies
    listener.listen(1)

    def dies_when_asked():
        conn, _ = listener.accept()
        os.unlink(parent.address)
        listener.close()
        conn.close()

    asked = threading.Thread(target=dies_when_asked)
    asked.start()
    try:
        process, conn = parent.fork({})
        asked.join(timeout=5)
        assert not asked.is_alive(), "the first parent was never asked"
        assert parent.process is not None, "no new warm parent was started"
        conn.close()  # the recipe process gets no recipe and ends
        process.join(timeout=30)
        process.close()
    finally:
        parent.close()
