"""The execution engine, proven on small fixture galleries built inside pytest.

Each build uses the site's real ``conf.py`` and extension (see ``make_project``)
on the recipes under ``tests/fixtures/``.
"""

from __future__ import annotations

import json
import shutil

import pytest
from bs4 import BeautifulSoup
from conftest import FIXTURES, make_project, sphinx_build

pytestmark = pytest.mark.slow


def _timings(root):
    data = json.loads((root / "_build/html/recipes/timings.json").read_text())
    return {r["recipe"]: r for r in data["recipes"]}


def _page(root, name):
    return (root / "_build/html/recipes" / f"{name}.html").read_text(encoding="utf-8")


def _text(root, name):
    return BeautifulSoup(_page(root, name), "html.parser").get_text()


@pytest.fixture(scope="module")
def clean_build(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("clean"), FIXTURES / "clean")
    return root, sphinx_build(root)


@pytest.fixture(scope="module")
def broken_build(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("broken"), FIXTURES / "broken")
    return root, sphinx_build(root)


# ---------------------------------------------------------------- a CPU build of mixed recipes


def test_cpu_build_of_cpu_and_cuda_recipes_succeeds(clean_build):
    root, proc = clean_build
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    t = _timings(root)
    for name in ("a_leaks_state", "b_checks_clean", "cpu_recipe", "warns_deprecation"):
        assert t[name]["status"] == "executed", t[name]
        assert t[name]["seconds"] > 0


def test_each_kind_of_leaked_state_is_reset(clean_build):
    root, proc = clean_build
    assert _timings(root)["b_checks_clean"]["status"] == "executed"
    assert "state is clean" in _page(root, "b_checks_clean")
    summary = proc.stdout
    for leak in (
        "function modes",
        "dispatch modes",
        "default dtype",
        "dynamo config",
        "inductor config",
        "compiler stance",
        "num threads",
        "environment variables changed: RECIPE_FIXTURE_LEAK",
    ):
        assert f"a_leaks_state.py: {leak}" in summary, leak


def test_declared_cuda_recipe_is_skipped_with_a_note(clean_build):
    root, proc = clean_build
    record = _timings(root)["declared_cuda"]
    assert record["status"] == "skipped"
    page = _page(root, "declared_cuda")
    assert "Not executed in this build" in page
    assert "needs CUDA (cuda&gt;=8.0)" in page
    assert 'torch.ones(2, device="cuda")' in _text(root, "declared_cuda")  # code still shown
    assert "sphx-glr-script-out" not in page


def test_undeclared_cuda_recipe_says_needs_cuda_not_broken(clean_build):
    root, proc = clean_build
    assert _timings(root)["undeclared_cuda"]["status"] == "needs-cuda"
    assert _timings(root)["undeclared_cuda_event"]["status"] == "needs-cuda"
    assert "undeclared_cuda_event.py:10" in proc.stdout
    assert "Needs CUDA" in _page(root, "undeclared_cuda")
    assert "needs CUDA: " in proc.stdout and "undeclared_cuda.py:11" in proc.stdout
    assert "recipe failed" not in proc.stderr


def test_deprecation_warning_is_listed_in_the_summary(clean_build):
    root, proc = clean_build
    assert "drift: warns_deprecation.py:" in proc.stdout
    assert "FutureWarning: `torch.cuda.amp.autocast(args...)` is deprecated" in proc.stdout


def test_page_structure_and_measurements(clean_build):
    root, _ = clean_build
    page = _page(root, "cpu_recipe")
    assert 'id="sphx-glr-recipes-cpu-recipe-py"' in page
    assert "sum: 6.0" in page
    assert "Total running time of the script" in page
    assert "Peak memory:" in page
    assert "recipe-verified" in page and "with PyTorch 2." in page
    record = _timings(root)["cpu_recipe"]
    assert record["peak_rss_mb"] > 50
    assert record["device"].startswith("cpu")
    for key in (
        "recipe",
        "status",
        "seconds",
        "peak_rss_mb",
        "peak_cuda_mb",
        "device",
        "torch",
        "date",
    ):
        assert key in record


def test_strict_build_fails_on_needs_cuda_and_drift(clean_build, tmp_path):
    root = make_project(tmp_path, FIXTURES / "clean")
    shutil.rmtree(root / "recipes")
    shutil.copytree(
        FIXTURES / "clean",
        root / "recipes",
        ignore=shutil.ignore_patterns("a_*", "b_*", "cpu_recipe.py"),
    )
    proc = sphinx_build(root, "-D", "recipes_strict=1")
    assert proc.returncode != 0
    assert "undeclared_cuda.py:11: ERROR: recipe needs CUDA" in proc.stderr
    assert "ERROR: drift warning while running warns_deprecation.py" in proc.stderr


def test_rebuild_executes_nothing(clean_build):
    root, _ = clean_build
    proc = sphinx_build(root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ran = [r for r in _timings(root).values() if r["ran_in_this_build"]]
    # Only the recipes that failed for want of CUDA are tried again.
    assert [r["recipe"] for r in ran] == ["undeclared_cuda", "undeclared_cuda_event"]


# ---------------------------------------------------------------- broken recipes


def test_broken_build_exits_nonzero_and_names_each_problem(broken_build):
    root, proc = broken_build
    assert proc.returncode != 0
    err = proc.stderr
    assert "raises.py:12: ERROR: recipe failed: ValueError: deliberate failure" in err
    assert "syntax_error.py:8: ERROR: recipe failed: SyntaxError: '(' was never closed" in err
    assert "no_title.py:1: ERROR: recipe failed: no title docstring" in err
    assert "not_utf8.py:8: ERROR: recipe failed: not valid UTF-8 (byte 0xe9" in err
    assert (
        "hangs.py:13: ERROR: recipe timed out: RecipeTimeout: ran past its time limit of 3 s" in err
    )


def test_other_pages_are_still_built(broken_build):
    root, _ = broken_build
    assert "fine output" in _page(root, "fine")
    assert _timings(root)["fine"]["status"] == "executed"


def test_timed_out_recipe_is_reported_and_stopped(broken_build):
    root, _ = broken_build
    record = _timings(root)["hangs"]
    assert record["status"] == "timed-out"
    assert 2.5 < record["seconds"] < 30


def test_failed_pages_show_the_failure(broken_build):
    root, _ = broken_build
    assert "deliberate failure in a fixture" in _page(root, "raises")
    assert "could not be built" in _page(root, "syntax_error")
    assert "not valid UTF-8" in _page(root, "not_utf8")


def test_failed_page_replaces_stale_output(tmp_path):
    good = '"""\nFlaky\n=====\n\nIt works, then it breaks.\n"""\n\nprint("first version works")\n'
    root = make_project(tmp_path, recipes={"flaky.py": good})
    assert sphinx_build(root).returncode == 0
    assert "first version works" in _page(root, "flaky")
    (root / "recipes/flaky.py").write_text(good.replace('print("first', 'x = (\nprint("first'))
    proc = sphinx_build(root)
    assert proc.returncode != 0
    page = _page(root, "flaky")
    assert "first version works" not in page.split("could not be built")[-1]
    assert "could not be built" in page


def test_parallel_workers_keep_isolation_and_time_limits(tmp_path):
    root = make_project(tmp_path, FIXTURES / "clean")
    shutil.copy(FIXTURES / "broken" / "hangs.py", root / "recipes" / "hangs.py")
    proc = sphinx_build(root, "-D", "recipes_jobs=2")
    assert proc.returncode != 0
    assert "hangs.py:13: ERROR: recipe timed out" in proc.stderr
    t = _timings(root)
    assert t["hangs"]["status"] == "timed-out"
    assert t["b_checks_clean"]["status"] == "executed"
    assert t["declared_cuda"]["status"] == "skipped"
    assert t["undeclared_cuda"]["status"] == "needs-cuda"
