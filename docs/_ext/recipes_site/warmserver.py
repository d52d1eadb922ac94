"""The warm parent: a server that imports torch once and forks a process per recipe.

It listens on a Unix socket. A build connects once per recipe process and
sends one end of a socket pair; the server forks, and the new process
(:func:`child.standby`) talks to the build over that pair, while the server
tells the build, over the connection, the process's pid and, once it ended,
its exit status (as :mod:`multiprocessing`'s fork server does). The build
sees a :class:`RemoteProcess`, which behaves as a ``multiprocessing.Process``
for everything the supervisor (:mod:`.executor`) asks of one.

The server lives as long as its owner:

* a ``make html`` build starts its own (:func:`start`) and holds a pipe to
  it; the server ends when the pipe closes, however the build ends;
* under ``make serve`` (:mod:`.serve`), ``RECIPES_SERVE_PID`` names the serve
  process: the first build starts a server that outlives it, every later
  build connects to the same one, and it ends when the serve process does.
  Its socket is named by what it preloaded (the requirements, this
  extension's code, the torch installation), so a change to any of them
  starts a fresh server, and the stale one is told to leave.

When the server ends it kills every recipe process it forked (each is a
process group of its own), so nothing it started outlives it. A build that
finds no server, or a dead one, starts another.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import hashlib
import importlib
import json
import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

OWNER_ENV = "RECIPES_SERVE_PID"
START_TIMEOUT = 300.0  # seconds a build waits for a server to import torch and warm up
_MAX_SOCKET = 100  # bytes: Unix socket paths are limited to 108
# How a server starts (not ``-m``: the package imports this module, and runpy would again).
_MAIN = "import sys; from recipes_site.warmserver import main; sys.exit(main(sys.argv[1:]))"


# ------------------------------------------------------------------------- where it lives


def fingerprint(project: Path, preload: str, owner: int | str) -> str:
    """What a warm parent holds: its preload, this extension, torch, the requirements."""
    digest = hashlib.sha256(f"{preload}|{owner}|{sys.executable}".encode())
    here = Path(__file__).resolve().parent
    for path in sorted(here.glob("*.py")) + [Path(project) / "requirements.txt"]:
        with contextlib.suppress(OSError):
            digest.update(path.name.encode() + path.read_bytes())
    try:
        import importlib.metadata as md

        dist = md.distribution("torch")
        init = Path(dist.locate_file("torch/__init__.py"))
        digest.update(f"{dist.version}|{init}|{init.stat().st_mtime_ns}".encode())
    except Exception:  # no torch: recipes will say so
        digest.update(b"no torch")
    return digest.hexdigest()[:20]


def folder(project: Path) -> Path:
    """Where this checkout's servers keep their sockets (short enough for a socket path)."""
    mine = Path(project).resolve() / ".cache" / "recipes" / "warm"
    if len(str(mine)) + 26 > _MAX_SOCKET:
        key = hashlib.sha256(str(mine).encode()).hexdigest()[:12]
        mine = Path(tempfile.gettempdir()) / f"recipes-warm-{os.getuid()}" / key
    mine.mkdir(parents=True, exist_ok=True)
    os.chmod(mine, 0o700)  # only this user may ask for a process
    return mine


# ------------------------------------------------------------------------- messages


def send(sock: socket.socket, message: dict, fds: list[int] = ()) -> None:
    """A pickled message, its length first, with ``fds`` passed along (SCM_RIGHTS)."""
    data = pickle.dumps(message)
    socket.send_fds(sock, [struct.pack("!Q", len(data))], list(fds))
    sock.sendall(data)


def receive(sock: socket.socket) -> tuple[dict, list[int]]:
    head, fds, _, _ = socket.recv_fds(sock, 8, 4)
    if len(head) < 8:
        raise EOFError("no message")
    size = struct.unpack("!Q", head)[0]
    data = b""
    while len(data) < size:
        chunk = sock.recv(min(1 << 20, size - len(data)))
        if not chunk:
            raise EOFError("message cut short")
        data += chunk
    return pickle.loads(data), fds


# ------------------------------------------------------------------------- the server


class Server:
    def __init__(self, address: str, alive_fd: int | None, owner: int | None, lock: int):
        self.address = address
        self.alive_fd = alive_fd
        self.owner = owner
        self.children: dict[int, socket.socket] = {}  # pid -> the connection it was asked on
        self.stopping = False
        self.lock = lock  # the address's lock, held for the server's life
        self.scout: int | None = None  # the process learning what recipes write

    def owner_gone(self) -> bool:
        if self.owner is None:
            return False
        try:
            os.kill(self.owner, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def serve(self, listener: socket.socket) -> None:
        # A child's end wakes the loop at once (SIGCHLD through a pipe), so that the
        # build learns its status without waiting for the next poll.
        self.wakeup, wakeup_w = os.pipe()
        for fd in (self.wakeup, wakeup_w):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(wakeup_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        watched = [listener, self.wakeup]
        watched += [self.alive_fd] if self.alive_fd is not None else []
        strays_at = 0.0
        while not self.stopping and not self.owner_gone():
            ready, _, _ = select.select(watched, [], [], 0.2)
            if self.alive_fd in ready:
                break  # the build that started it has ended
            if self.wakeup in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(self.wakeup, 4096)
            if listener in ready:
                self.accept(listener)
            if time.monotonic() >= strays_at:
                end_strays({*self.children, self.scout})  # orphans of ended recipes
                strays_at = time.monotonic() + 1.0
            self.reap()

    def accept(self, listener: socket.socket) -> None:
        conn, _ = listener.accept()
        try:
            conn.settimeout(10)
            request, fds = receive(conn)
            conn.settimeout(None)
        except (OSError, pickle.PickleError, EOFError, struct.error):
            conn.close()
            return
        if request.get("op") != "fork" or len(fds) != 1:
            self.stopping = request.get("op") == "quit"
            for fd in fds:
                os.close(fd)
            conn.close()
            return
        pid = os.fork()
        if pid == 0:
            self._child(listener, conn, fds[0], request)
        for fd in fds:
            os.close(fd)
        self.children[pid] = conn
        conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        if self.scout is None:
            self.scout = self._scout(listener, request["gallery_conf"])

    @property
    def learned(self) -> str:
        """Where the scout writes which pages recipe processes write (see prefault)."""
        return self.address + ".pages"

    def _scout(self, listener: socket.socket, gallery_conf: dict) -> int:
        """Fork the scout (:func:`child.scout`): it runs beside the first recipes."""
        pid = os.fork()
        if pid != 0:
            return pid
        code = 1
        try:
            die_with_parent()  # it serves this server only
            self._forget_server(listener)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            from . import child

            compiled = getattr(sys.modules.get("recipes_site.warm_compile"), "COMPILED", False)
            child.scout(gallery_conf, compiled, self.learned)
            code = 0
        finally:
            os._exit(code)

    def _forget_server(self, listener: socket.socket) -> None:
        """In a forked process: close what belongs to the server, not to the process."""
        listener.close()
        for other in self.children.values():
            other.close()
        if self.alive_fd is not None:
            os.close(self.alive_fd)
        os.close(self.lock)  # the server's, not the recipe's
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)

    def _child(self, listener: socket.socket, conn: socket.socket, fd: int, request: dict) -> None:
        """In the forked process: become the recipe process the build asked for."""
        code = 1
        try:
            self._forget_server(listener)
            conn.close()
            signal.signal(signal.SIGINT, signal.default_int_handler)
            os.environ.clear()
            os.environ.update(request["env"])
            os.chdir(request["cwd"])
            from . import child

            ahead = (self.learned, request["ahead"]) if request.get("ahead") else None
            child.standby(Connection(fd), request["gallery_conf"], ahead)
            code = 0
            # End as a script ends: after the threads the recipe left running;
            # then end the processes it left running, and say which.
            for thread in threading.enumerate():
                if thread is not threading.main_thread() and not thread.daemon:
                    thread.join()
            child.end_leftovers()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # noqa: BLE001 - reported by the exit status
            import traceback

            traceback.print_exc()
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.children.pop(pid, None)
            if conn is None:  # an orphan it adopted, now ended
                continue
            code = os.waitstatus_to_exitcode(status)
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps({"exit": code}).encode() + b"\n")
            conn.close()

    def close(self) -> None:
        """Nothing it forked outlives it: each recipe process, its group, and every
        process they started (which this server adopts when they are orphaned)."""
        for pid in list(self.children):
            for kill in (os.killpg, os.kill):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    kill(pid, signal.SIGKILL)
        end_descendants()
        deadline = time.monotonic() + 5
        while self.children and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.01)


def claim(address: str | Path) -> int | None:
    """The lock of a server's address, taken (a file descriptor), or None if another
    process holds it. It is released when its holder ends, however it ends."""
    fd = os.open(f"{address}.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def held(address: str | Path) -> bool:
    """Whether a server runs, or is starting, on ``address``."""
    fd = claim(address)
    if fd is None:
        return True
    os.close(fd)
    return False


def become_subreaper() -> None:
    """Linux: orphans among this process's descendants become its children, not init's,
    so that a daemon a recipe started (double fork, new session) can still be found."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(36, 1)  # PR_SET_CHILD_SUBREAPER


def die_with_parent() -> None:
    """Linux: this process is killed when its parent ends, however the parent ends."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def end_descendants() -> list[str]:
    """Kill every descendant of this process; say who they were."""
    import psutil

    return _end(psutil.Process().children(recursive=True))


def end_strays(children) -> list[str]:
    """Kill the processes this subreaper adopted (its children but ``children``), and
    theirs.

    Only direct children are looked at: a recipe process is itself a subreaper, so
    what a running recipe starts stays below it, however it detaches, and is never
    a stray here. (Listing descendants to spare would race with a recipe that
    starts a process, a compiler for instance, between two listings.)"""
    import psutil

    found = []
    for proc in psutil.Process().children():
        with contextlib.suppress(psutil.Error):
            # (a zombie has ended already: the server reaps it)
            if proc.pid not in children and proc.status() != psutil.STATUS_ZOMBIE:
                found += [*proc.children(recursive=True), proc]
    return _end(found)


def _end(processes) -> list[str]:
    import psutil

    ended = []
    mine = psutil.Process().cmdline()
    for proc in processes:
        with contextlib.suppress(psutil.Error):
            cmdline = proc.cmdline()
            what = "a fork of the recipe's process" if cmdline == mine else " ".join(cmdline)
            ended.append(f"pid {proc.pid}: {what[:200] or proc.name()}")
            proc.kill()
    return ended


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recipes_site.warmserver")
    parser.add_argument("--socket", required=True)
    parser.add_argument("--preload", default="recipes_site.warm")
    parser.add_argument("--alive-fd", type=int, default=None)
    parser.add_argument("--owner", type=int, default=None)
    parser.add_argument("--lock-fd", type=int, default=None)
    args = parser.parse_args(argv)
    # One server per address: it holds the address's lock (taken by whoever started
    # it) from before its slow imports until it ends, so that a build that finds no
    # socket yet waits for it instead of starting another.
    lock = args.lock_fd if args.lock_fd is not None else claim(args.socket)
    if lock is None:
        return 0  # another server has this address, or is starting on it
    server = Server(args.socket, args.alive_fd, args.owner, lock)

    def stop(signum, frame):
        server.stopping = True

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, stop)
    become_subreaper()
    importlib.import_module(args.preload)  # torch, the compile stack: once, before any fork
    for stale in (args.socket, server.learned):  # a learned page list is this server's only
        with contextlib.suppress(FileNotFoundError):
            os.unlink(stale)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(args.socket)
    os.chmod(args.socket, 0o600)
    listener.listen(64)
    info = Path(args.socket).with_suffix(".json")
    info.write_text(json.dumps({"pid": os.getpid(), "owner": args.owner}))
    try:
        server.serve(listener)
    finally:
        listener.close()
        for path in (Path(args.socket), info, Path(server.learned)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        server.close()
    return 0


# ------------------------------------------------------------------------- the build's side


class RemoteProcess:
    """A recipe process forked by a warm parent, as the supervisor sees it.

    Its end is watched through its own handle (a pidfd, where Linux has them),
    not through the warm parent, so a parent that dies takes no one's status
    with it: the parent sends the exit status when it can; when it cannot,
    the process is judged by what it wrote (status 0).
    """

    def __init__(self, ctl: socket.socket, pid: int):
        self.ctl: socket.socket | None = ctl
        self.pid = pid
        self._exitcode: int | None = None
        self._buffer = b""
        try:
            self.pidfd: int | None = os.pidfd_open(pid)
        except (AttributeError, OSError):
            self.pidfd = None

    @property
    def sentinel(self) -> int:
        if self._exitcode is not None:
            return _CLOSED
        return self.pidfd if self.pidfd is not None else self.ctl.fileno()

    @property
    def exitcode(self) -> int | None:
        if self._exitcode is None:
            self._poll()
        return self._exitcode

    def _ended(self) -> bool:
        if self.pidfd is not None:
            return bool(select.select([self.pidfd], [], [], 0)[0])
        return not alive(self.pid)

    def _poll(self) -> None:
        self._read_status(0)
        if self._exitcode is None and self._ended():
            self._read_status(1.0)  # the warm parent reaps it within a moment
            if self._exitcode is None:  # the warm parent is gone: its status with it
                self._exitcode = 0

    def _read_status(self, timeout: float) -> None:
        if self.ctl is None or not select.select([self.ctl], [], [], timeout)[0]:
            return
        chunk = self.ctl.recv(4096)
        *lines, self._buffer = (self._buffer + chunk).split(b"\n")
        for line in lines:
            message = json.loads(line)
            if "exit" in message:
                self._exitcode = message["exit"]
        if not chunk or self._exitcode is not None:
            self.ctl.close()
            self.ctl = None

    def join(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.exitcode is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            select.select([self.sentinel], [], [], min(left or 0.2, 0.2))

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(self.pid, signal.SIGKILL)

    def close(self) -> None:
        if self.ctl is not None:
            self.ctl.close()
            self.ctl = None
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):  # a zombie waiting for its (dead) parent is not alive
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    return True


# A sentinel that is always ready: the read end of a pipe whose write end is closed.
_r, _w = os.pipe()
os.close(_w)
_CLOSED = _r


class Parent:
    """This build's way to a warm parent: connects to one, starting it when needed."""

    def __init__(self, project: Path, preload: str):
        self.project = Path(project)
        owner = os.environ.get(OWNER_ENV, "")
        self.owner = int(owner) if owner.isdigit() else None
        if self.owner is not None:
            preload = "recipes_site.warm_compile"  # a session's parent pays for it once
        self.preload = preload
        name = fingerprint(self.project, preload, self.owner or f"build-{os.getpid()}")
        self.address = str(folder(self.project) / f"{name}.sock")
        self.process: subprocess.Popen | None = None  # a server this build started
        self.alive_w: int | None = None

    def _connect(self) -> socket.socket | None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(self.address)
        except OSError:
            sock.close()
            return None
        return sock

    def _start(self) -> None:
        """Start a server on this address, unless another process holds it (one is
        starting or running there: then wait for that one)."""
        lock = claim(self.address)  # taken here, kept by the server: no gap to race in
        if lock is None:
            return
        try:
            self._spawn(lock)
        finally:
            os.close(lock)

    def _spawn(self, lock: int) -> None:
        if self.owner is not None:
            retire_others(Path(self.address))
        env = dict(os.environ)
        ext = str(Path(__file__).resolve().parents[1])
        paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != ext]
        env["PYTHONPATH"] = os.pathsep.join([ext, *paths])
        cmd = [sys.executable, "-c", _MAIN, "--socket", self.address, "--preload", self.preload,
               "--lock-fd", str(lock)]  # fmt: skip
        if self.owner is not None:
            cmd += ["--owner", str(self.owner)]
            fds: tuple = ()
            log = open(Path(self.address).with_suffix(".log"), "ab")  # noqa: SIM115
            out = {"stdout": log, "stderr": log}
        else:
            if self.alive_w is not None:
                os.close(self.alive_w)
            alive_r, self.alive_w = os.pipe()
            cmd += ["--alive-fd", str(alive_r)]
            fds = (alive_r,)
            out = {}
        self.process = subprocess.Popen(
            cmd, env=env, pass_fds=(*fds, lock), stdin=subprocess.DEVNULL,
            start_new_session=self.owner is not None, **out,
        )  # fmt: skip
        for fd in fds:
            os.close(fd)
        if self.owner is not None:
            log.close()

    def _wait_for_server(self) -> socket.socket:
        """The server's socket, once it listens: the one this build started, or one
        that another process (``make serve``, at its start) is starting."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            sock = self._connect()
            if sock is not None:
                return sock
            if self.process is not None and self.process.poll() is not None:
                raise OSError(f"the warm parent exited with status {self.process.returncode}")
            if self.process is None and not held(self.address):
                self._start()  # the one another process was starting died: start one
            time.sleep(0.02)
        raise OSError(f"the warm parent did not start within {START_TIMEOUT:g} s")

    def ensure_running(self) -> None:
        """Start the server unless one answers or is starting (``make serve`` starts it
        at once, beside its first build)."""
        sock = self._connect()
        if sock is None:
            self._start()
        else:
            sock.close()

    def fork(self, gallery_conf: dict, ahead: str = "") -> tuple[RemoteProcess, Connection]:
        """A recipe process, forked and waiting for its recipes on the returned connection;
        meanwhile it copies the pages a recipe of kind ``ahead`` writes (see prefault).

        A parent that ends while it is asked (a running recipe may kill it) is
        replaced, and the new one asked instead."""
        try:
            return self._fork(gallery_conf, ahead)
        except OSError:
            return self._fork(gallery_conf, ahead)

    def _fork(self, gallery_conf: dict, ahead: str) -> tuple[RemoteProcess, Connection]:
        ctl = self._connect()
        if ctl is None:  # none yet, starting, or it died: wait for it, or start one
            self._start()
            ctl = self._wait_for_server()
        mine, theirs = socket.socketpair()
        request = {
            "op": "fork",
            "env": dict(os.environ),
            "cwd": os.getcwd(),
            "gallery_conf": gallery_conf,
            "ahead": ahead,
        }
        try:
            with theirs:
                send(ctl, request, [theirs.fileno()])
            line = b""
            while not line.endswith(b"\n"):
                chunk = ctl.recv(1)
                if not chunk:
                    raise OSError("the warm parent ended before it forked")
                line += chunk
        except OSError:
            ctl.close()
            mine.close()
            raise
        return RemoteProcess(ctl, json.loads(line)["pid"]), Connection(mine.detach())

    def close(self) -> None:
        """End a server this build started for itself; a session's server stays."""
        if self.alive_w is not None:
            os.close(self.alive_w)
            self.alive_w = None
        if self.process is not None and self.owner is None:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def read_info(path: Path) -> dict:
    """What a server wrote beside its socket: its pid and its owner's."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def quit_servers_of(where: Path, owner: int | None, but: Path | None = None) -> list[int]:
    """Tell every server in ``where`` owned by ``owner`` (but the one at ``but``) to end;
    return their pids."""
    pids = []
    for info in where.glob("*.json"):
        data = read_info(info)
        if info.with_suffix(".sock") != but and data.get("owner") == owner:
            quit_server(info.with_suffix(".sock"))
            pids.append(data.get("pid"))
    return [pid for pid in pids if isinstance(pid, int)]


def retire_others(mine: Path) -> None:
    """Tell the other servers of this checkout's session (stale code, another preload) to end."""
    quit_servers_of(mine.parent, int(os.environ.get(OWNER_ENV, "0") or 0), but=mine)


def quit_server(address: Path) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with contextlib.suppress(OSError), sock:
        sock.connect(str(address))
        send(sock, {"op": "quit"})


if __name__ == "__main__":
    sys.exit(main())
