"""Which recipes plain sphinx-gallery executes and this site does not, and the other way round.

Usage: ``python tests/compare_galleries.py RECIPES_FOLDER [--work FOLDER]``.

It builds a copy of ``RECIPES_FOLDER`` (a gallery: a ``README.txt`` and recipe
scripts, possibly in sections) twice: with plain sphinx-gallery (its defaults,
one process, every recipe executed, failures as warnings) and with this site
(its ``conf.py`` and extension). It then prints the recipes each one executed
and the other did not. A recipe counts as executed by plain sphinx-gallery when
its page has a running time (sphinx-gallery writes one only after executing a
script), and by this site when its record says it ran. Files whose name starts
with ``_`` are helper modules in both builds (this site's convention; the plain
build is told so with ``ignore_pattern``). A report, not a test:
it exits 0 whatever it finds, and 1 only when a build could not run at all.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import build_env, make_project, sphinx_build  # noqa: E402

PLAIN_CONF = r"""
project = "plain"
extensions = ["sphinx_gallery.gen_gallery"]
sphinx_gallery_conf = {"examples_dirs": "../recipes", "gallery_dirs": "recipes",
                       "filename_pattern": r"\.py$", "only_warn_on_example_error": True,
                       "ignore_pattern": r"^_"}
"""


def plain_executed(recipes: Path, work: Path) -> set[str]:
    root = work / "plain"
    (root / "docs").mkdir(parents=True)
    shutil.copytree(recipes, root / "recipes")
    (root / "docs/index.rst").write_text("Plain\n=====\n\n.. toctree::\n\n   recipes/index\n")
    (root / "conf").mkdir()
    (root / "conf/conf.py").write_text(PLAIN_CONF)
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-c", "conf", "docs", "_build/html"]
    done = subprocess.run(cmd, cwd=root, env=build_env(), capture_output=True, text=True)
    if not (root / "docs/recipes").is_dir():
        sys.exit(f"plain sphinx-gallery did not build:\n{done.stderr[-3000:]}")
    found = set()
    for page in (root / "docs/recipes").rglob("*.rst"):
        if "Total running time of the script" in page.read_text(encoding="utf-8"):
            found.add(page.relative_to(root / "docs/recipes").with_suffix("").as_posix())
    return found


def site_executed(recipes: Path, work: Path) -> set[str]:
    root = make_project(work / "site", recipes)
    sphinx_build(root, timeout=3600)
    timings = root / "_build/html/recipes/timings.json"
    if not timings.exists():
        sys.exit("this site did not build")
    rows = json.loads(timings.read_text())["recipes"]
    return {r["recipe"] for r in rows if r["ran_in_this_build"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tests/compare_galleries.py")
    parser.add_argument("recipes", type=Path)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="compare-galleries-"))
    plain = plain_executed(args.recipes.resolve(), work)
    site = site_executed(args.recipes.resolve(), work)
    print(f"executed by plain sphinx-gallery: {len(plain)}, by this site: {len(site)}")
    print(f"executed by plain sphinx-gallery only: {', '.join(sorted(plain - site)) or 'none'}")
    print(f"executed by this site only: {', '.join(sorted(site - plain)) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
