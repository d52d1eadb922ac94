"""Shared helpers: the repository, the built site, and small Sphinx projects built in pytest."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
sys.path.insert(0, str(REPO / "docs" / "_ext"))

# The tests read what builds print as plain text. Sphinx colours its output and
# rewrites its progress lines in place when it thinks a terminal is watching,
# which includes any environment with CI=true; NO_COLOR turns that off for every
# build the tests start, whatever runs them.
os.environ["NO_COLOR"] = "1"

from recipes_site import meta  # noqa: E402

# The device kind recipes run on here: what builds, shards and merges in the
# tests plan for. `make test DEVICE=cuda` says which one it must be.
DEVICE = meta.Host.detect().kind
EXPECTED_DEVICE = os.environ.get("RECIPES_EXPECT_DEVICE", "")


def pytest_sessionstart(session):
    """A GPU job whose CUDA is hidden or broken fails here, instead of testing the CPU."""
    if EXPECTED_DEVICE and EXPECTED_DEVICE != DEVICE:
        raise pytest.UsageError(
            f"the tests were asked to run on {EXPECTED_DEVICE} (DEVICE={EXPECTED_DEVICE}), "
            f"but recipes run on {DEVICE} on this machine"
        )


def build_env(**extra: str) -> dict:
    env = dict(os.environ)
    env.update(
        MPLBACKEND="Agg",
        TORCHINDUCTOR_CACHE_DIR=str(REPO / ".cache" / "torch" / "inductor"),
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.update(extra)
    return env


def recipe(title: str, body: str) -> str:
    """A minimal valid recipe: a title, a one-line summary, then ``body``."""
    return f'"""\n{title}\n{"=" * len(title)}\n\nA fixture.\n"""\n\n{body}\n'


def make_project(root: Path, gallery: Path | None = None, recipes: dict | None = None) -> Path:
    """A copy of this site's Sphinx project whose recipes come from ``gallery``.

    It uses the real ``conf.py``, extension, static files and landing page,
    so what the fixtures prove holds for the site itself.
    """
    docs = root / "docs"
    docs.mkdir(parents=True)
    shutil.copy(REPO / "conf.py", root / "conf.py")
    for name in ("_ext", "_static", "_templates"):
        (docs / name).symlink_to(REPO / "docs" / name)
    shutil.copy(REPO / "docs" / "index.rst", docs / "index.rst")
    if gallery is not None:
        shutil.copytree(gallery, root / "recipes")
    else:
        (root / "recipes").mkdir()
        (root / "recipes" / "README.txt").write_text("Fixture\n=======\n\nFixture recipes.\n")
    for rel, text in (recipes or {}).items():
        path = root / "recipes" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
    return root


def sphinx_build(
    root: Path,
    *options: str,
    timeout: float = 600,
    env: dict | None = None,
    conf: Path | None = None,
) -> subprocess.CompletedProcess:
    """Run the same command as ``make html`` on a project; return the finished process."""
    cmd = [
        sys.executable,
        "-m",
        "sphinx",
        "-b",
        "html",
        "-W",
        "--keep-going",
        "-c",
        str(conf or root),
        str(root / "docs"),
        str(root / "_build" / "html"),
        *options,
    ]
    return subprocess.run(
        cmd, capture_output=True, text=True, env=build_env(**(env or {})), timeout=timeout
    )


def processes_of(root: Path) -> list[str]:
    """Live processes that run in ``root`` or name it on their command line."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(f"/proc/{pid}/cwd")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and (str(root) in cmdline or cwd.startswith(str(root))):
            found.append(f"{pid}: {cmdline[:200]}")
    return found


def project_with_makefile(root: Path, recipes: dict) -> Path:
    """A fixture project that ``make`` runs in: this Makefile, this .venv."""
    make_project(root, recipes=recipes)
    for name in ("Makefile", "requirements.txt", "requirements-test.txt", "requirements-serve.txt"):
        shutil.copy2(REPO / name, root / name)
    (root / ".github").symlink_to(REPO / ".github")
    (root / ".venv").symlink_to(REPO / ".venv")
    return root


def run_notebook(nb, workdir: Path, timeout: float = 600):
    """Execute a notebook top to bottom in a fresh ipykernel running this interpreter."""
    from nbclient import NotebookClient

    client = NotebookClient(
        nb, kernel_name="python3", timeout=timeout, resources={"metadata": {"path": str(workdir)}}
    )
    client.execute(env=build_env())
    return nb


# What the built site is made from: a site older than any of these is stale.
SITE_SOURCES = ("conf.py", "requirements.txt", "recipes", "docs")
GENERATED = ("docs/recipes", "docs/sg_execution_times.rst")


def newest_source() -> float:
    newest = 0.0
    for name in SITE_SOURCES:
        path = REPO / name
        for file in [path] if path.is_file() else path.rglob("*"):
            rel = file.relative_to(REPO).as_posix()
            if file.is_file() and not any(rel.startswith(g) for g in GENERATED):
                newest = max(newest, file.stat().st_mtime)
    return newest


@pytest.fixture(scope="session")
def site() -> Path:
    """The site ``make html`` built, built again first when any source is newer."""
    html = REPO / "_build" / "html"
    stamp = html / "recipes" / "timings.json"  # rewritten by every build
    (REPO / "_build").mkdir(exist_ok=True)
    with open(REPO / "_build" / ".site-lock", "w") as lock:  # one build, whichever worker asks
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not stamp.exists() or stamp.stat().st_mtime < newest_source():
            subprocess.run(["make", "html"], cwd=REPO, check=True, env=build_env())
    if stamp.stat().st_mtime < newest_source():
        pytest.fail(f"{html} is older than its sources even after `make html`")
    return html


def pytest_collection_modifyitems(items):
    """Tests that read the built site are marked ``site`` (``make test-fast`` leaves them out)."""
    for item in items:
        if "site" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.site)
