"""Recipes as other sphinx-gallery sites write them: every title form, files saved by relative path.

The ``titles`` fixture gallery holds a recipe for each title form sphinx-gallery
reads (``*``, ``-`` and ``#`` underlines, an overline, a ``.. meta::`` block or
a comment first, an underline one column short, no underline, wide characters),
two recipes that each save ``model.pt`` by relative path, one that imports a
module that is not installed, two that use the same label, and one whose
helper module raises a deprecation warning. It is built with ``JOBS=2``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from bs4 import BeautifulSoup
from conftest import FIXTURES, REPO, make_project, sphinx_build
from recipes_site import sourcetree

pytestmark = pytest.mark.slow
GALLERY = FIXTURES / "titles"
TEXT_PROBLEMS = {"short_underline.py:3", "wide_title.py:3"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("titles"), GALLERY)
    before = sources(root)
    proc = sphinx_build(root, "-D", "recipes_jobs=2")
    return root, proc, before


def sources(root):
    """What ``git status`` would see: the project without what the build generates."""
    return sourcetree.snapshot(root, [root / "docs/recipes", root / "docs/sg_execution_times.rst"])


def _timings(root):
    data = json.loads((root / "_build/html/recipes/timings.json").read_text())
    return {r["recipe"]: r for r in data["recipes"]}


def _page(root, name):
    html = (root / "_build/html/recipes" / f"{name}.html").read_text(encoding="utf-8")
    return BeautifulSoup(html, "html.parser")


def test_every_title_form_executes_and_shows_its_output_under_a_banner(built):
    root, _, _ = built
    timings = _timings(root)
    for path in GALLERY.glob("[!_]*.py"):  # not the helper module
        if path.stem == "missing_module":
            continue
        assert timings[path.stem]["status"] == "executed", path.name
        page = _page(root, path.stem)
        (banner,) = page.select("p.recipe-verified")
        outputs = " ".join(p.get_text() for p in page.select("div.sphx-glr-script-out"))
        assert re.search(r"\b42\b|\[1\d, 1\d, 1\d\]|\[2\d, 2\d, 2\d\]", outputs), path
        title = page.select_one("h1").get_text()
        assert page.get_text().index(title) < page.get_text().index(banner.get_text())


def test_the_card_and_the_page_title_are_sphinx_gallerys_title(built):
    root, _, _ = built
    index = (root / "_build/html/recipes/index.html").read_text(encoding="utf-8")
    for title in ("With an overline", "A meta block first", "A title without an underline"):
        assert title in index
    assert (
        _page(root, "no_underline")
        .select_one("h1")
        .get_text()
        .startswith("A title without an underline")
    )
    meta = _page(root, "meta_first").select_one('meta[name="description"]')
    assert meta["content"] == "a page with a description"


def test_a_title_problem_is_named_at_the_recipes_line_and_the_code_still_runs(built):
    root, proc, _ = built
    pattern = r"(\w+\.py:\d+): (?:ERROR|WARNING): Title underline too short"
    found = set(re.findall(pattern, proc.stderr))
    assert found == TEXT_PROBLEMS, proc.stderr[-3000:]
    assert "docs/recipes" not in proc.stderr
    assert _timings(root)["short_underline"]["status"] == "executed"


def test_files_saved_by_relative_path_stay_out_of_the_source_tree(built):
    root, proc, before = built
    assert "first loads [10, 11, 12]" in _page(root, "saves_model_a").get_text()
    assert "second loads [20, 21, 22]" in _page(root, "saves_model_b").get_text()
    assert sourcetree.difference(before, sources(root)) == []
    assert not list((root / "recipes").rglob("model.pt"))
    for name in ("saves_model_a", "saves_model_b"):
        assert (root / "_build/recipe-files" / name / "model.pt").is_file()
    assert "wrote into the source tree" not in proc.stdout


def test_a_missing_module_names_the_package_and_both_fixes(built):
    _, proc, _ = built
    (line,) = [ln for ln in proc.stderr.splitlines() if "missing_module.py:8: ERROR" in ln]
    assert "No module named 'not_a_real_module_xyz'" in line
    assert "requirements.txt" in line
    assert '# sphinx_gallery_requires = ["package:not_a_real_module_xyz"]' in line


def test_this_site_executes_what_plain_sphinx_gallery_executes(tmp_path):
    done = subprocess.run(
        [sys.executable, str(REPO / "tests/compare_galleries.py"), str(GALLERY),
         "--work", str(tmp_path)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "executed by plain sphinx-gallery only: none" in done.stdout
    assert "executed by this site only: none" in done.stdout


def test_a_duplicate_label_names_both_recipes(built):
    _, proc, _ = built
    assert re.search(
        r"label_two\.py:\d+: WARNING: duplicate label shared-label, other instance in "
        r"\S*recipes/label_one\.py:11\b",
        proc.stderr,
    ), proc.stderr[-3000:]


def test_a_warning_raised_inside_a_library_is_reported_once_at_the_recipes_line(built):
    _, proc, _ = built
    drift = [ln for ln in proc.stdout.splitlines() if "old_api() is deprecated" in ln]
    assert len(drift) == 1, drift
    assert "library_warning.py:10: drift warning" in drift[0]
