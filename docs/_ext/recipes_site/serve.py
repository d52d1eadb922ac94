"""``make serve``: sphinx-autobuild's server, with builds forked from warm parents.

An author's edit should cost what it changed. Two warm parents make that so:

* **the Sphinx side.** sphinx-autobuild runs ``python -m sphinx`` for every
  change: a new interpreter that imports Sphinx, the theme, sphinx-gallery
  and matplotlib (which sphinx-gallery imports for its scrapers) before it
  reads a file, about 1.5 s here. This process imports them once and each
  build runs in a fork of it (:class:`Builder`), so each build is still a
  fresh process whose state ends with it, but starts warm. When this
  extension's code changes under it, builds fall back to a fresh
  interpreter until ``make serve`` is started again.
* **the recipe side.** ``RECIPES_SERVE_PID`` names this process: the first
  build that runs a recipe starts a recipe warm parent that outlives it
  (:mod:`.warmserver`), and every later build forks recipe processes from it.

The watching, serving and live reload are sphinx-autobuild's own classes,
assembled as its ``__main__`` assembles them. Everything this process started
ends with it: on Ctrl-C, SIGTERM, a closed terminal (SIGHUP), or when the
``make`` above it ends.

Usage: ``python -m recipes_site.serve --host H --port P [--watch DIR]...
[--ignore PATH]... <sphinx-build options> SOURCEDIR OUTPUTDIR``.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from . import warmserver

PRELOAD = (
    "sphinx.cmd.build",
    "sphinx.builders.html",
    "pydata_sphinx_theme",
    "sphinx_copybutton",
    "sphinx_gallery.gen_gallery",
    "sphinx_gallery.gen_rst",
    "sphinx_gallery.notebook",
    "matplotlib.pyplot",
)


def _die_with_parent() -> None:
    """Linux: this process gets SIGTERM when the one that forked it dies."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Builder:
    """sphinx-autobuild's build callback: a Sphinx build in a fork of the warm process.

    sphinx-autobuild calls it in a fresh worker process (a fork of this one)
    for each change, and once in this process for the first build.
    """

    def __init__(self, sphinx_args: list[str], uri: str, project: Path, code: str):
        self.sphinx_args = sphinx_args
        self.uri = uri
        self.project = project
        self.code = code  # this extension's code when it was imported

    def __call__(self, *, changed_paths=()):
        from sphinx_autobuild.utils import show_message

        names = ", ".join(sorted({Path(p).name for p in changed_paths})[:5])
        if names:
            show_message(f"Detected changes ({names})")
        show_message("Rebuilding...")
        code = self.build()
        if code:
            print(f"Sphinx exited with exit code: {code}; serving the last good build")
        show_message(f"Serving on {self.uri}")

    def build(self) -> int:
        if extension_code() != self.code:  # stale imports: a cold interpreter reads the new code
            cmd = [sys.executable, "-m", "sphinx", "build", *self.sphinx_args]
            return subprocess.run(cmd, check=False).returncode
        # A fork, through multiprocessing so that the build ends as a process does:
        # what it started with multiprocessing (sphinx-sitemap's manager process,
        # for one) is shut down, not left running.
        build = multiprocessing.get_context("fork").Process(
            target=_build_in_fork, args=(self.sphinx_args,), name="sphinx-build"
        )
        build.start()
        build.join()
        return build.exitcode


def _build_in_fork(sphinx_args: list[str]) -> None:
    _die_with_parent()
    from sphinx.cmd.build import build_main

    code = build_main(sphinx_args)
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)


def extension_code() -> str:
    return warmserver.fingerprint(Path.cwd(), "", "")


def _args(argv: list[str]):
    parser = argparse.ArgumentParser(prog="python -m recipes_site.serve", allow_abbrev=False)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--watch", action="append", default=[])
    parser.add_argument("--ignore", action="append", default=[])
    args, sphinx_args = parser.parse_known_args(argv)
    if len(sphinx_args) < 2:
        parser.error("give Sphinx's source and output folders")
    return args, sphinx_args


def app_for(args, sphinx_args: list[str], builder: Builder):
    """sphinx-autobuild's application: watch, rebuild, serve, reload the browser."""
    from sphinx_autobuild.filter import IgnoreFilter
    from sphinx_autobuild.middleware import JavascriptInjectorMiddleware
    from sphinx_autobuild.server import RebuildServer
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Mount, WebSocketRoute
    from starlette.staticfiles import StaticFiles

    source, out = Path(sphinx_args[-2]).resolve(), Path(sphinx_args[-1]).resolve()
    out.mkdir(parents=True, exist_ok=True)
    ignored = IgnoreFilter([".git", ".venv", ".cache", *args.ignore, out], [])
    watcher = RebuildServer([source, *args.watch], ignored, change_callback=builder)
    return Starlette(
        routes=[
            WebSocketRoute("/websocket-reload", watcher, name="reload"),
            Mount("/", app=StaticFiles(directory=out, html=True), name="static"),
        ],
        middleware=[Middleware(JavascriptInjectorMiddleware, ws_url=f"{args.host}:{args.port}")],
        lifespan=watcher.lifespan,
    )


def _watch_parent(parent: int) -> None:
    """End this session when the ``make`` that started it is gone."""
    while os.getppid() == parent:
        time.sleep(0.2)
    os.kill(os.getpid(), signal.SIGTERM)


def end_session(project: Path, owner: int) -> None:
    """End every build still running and every warm parent of this session."""
    for proc in multiprocessing.active_children():
        proc.kill()
    found = warmserver.quit_servers_of(warmserver.folder(project), owner)
    deadline = time.monotonic() + 10
    while any(warmserver.alive(pid) for pid in found) and time.monotonic() < deadline:
        time.sleep(0.05)
    # Then whatever did not end: this process is a subreaper, so every process of the
    # session (a warm parent that did not quit, a killed build's orphans such as a
    # multiprocessing manager or a compiler) is among its descendants by now.
    warmserver.end_descendants()


def _stop(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    import importlib

    import uvicorn
    from sphinx_autobuild.utils import show_message

    args, sphinx_args = _args(argv)
    project = Path.cwd()
    os.environ[warmserver.OWNER_ENV] = str(os.getpid())
    warmserver.become_subreaper()
    for name in PRELOAD:  # what every build imports, once, before the first fork
        importlib.import_module(name)
    builder = Builder(sphinx_args, f"http://{args.host}:{args.port}", project, extension_code())
    # The main thread takes the signals; the server runs in a thread of its own.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _stop)
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    server = None
    try:
        app = app_for(args, sphinx_args, builder)
        # The recipe side's warm parent, started first and beside the initial build,
        # so that the first code edit finds torch imported and the compiler warm (its
        # own process; it ends with this session). A build that needs it meanwhile
        # waits for it rather than starting another.
        warmserver.Parent(project, "recipes_site.warm_compile").ensure_running()
        show_message("Starting initial build")
        builder()
        show_message("Waiting to detect changes...")
        config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while thread.is_alive():
            thread.join(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        end_session(project, os.getpid())
        if server is not None:
            server.should_exit = True
            thread.join(10)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
