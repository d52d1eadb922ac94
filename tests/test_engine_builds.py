"""The execution engine, proven on small fixture galleries built inside pytest.

Each build uses the site's real ``conf.py`` and extension (see ``make_project``)
on the recipes under ``tests/fixtures/``: ``clean`` (recipes that must build on
a CPU), ``broken`` (recipes that cannot be built) and ``faults`` (recipes that
crash, hang, leak or misbehave in every way a process can).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from conftest import DEVICE, FIXTURES, make_project, recipe, sphinx_build
from recipes_site import meta

pytestmark = pytest.mark.slow
# The fixtures that use CUDA execute where there is a GPU, and are skipped or
# flagged where there is none: each test below says what it expects on both.
CUDA = meta.Host.detect().cuda_available

# Each fault recipe, and the error the build must report for it, at that line.
FAULT_ERRORS = {
    "f_segfault.py:11": "recipe crashed: Segmentation fault (signal 11), "
    "in the code cell starting at line 8",
    "g_os_exit.py:8": "recipe exited with status 3, in the code cell starting at line 8",
    "h_sys_exit.py:14": "recipe failed: the recipe called sys.exit(2)",
    "i_keyboard_interrupt.py:9": "recipe failed: the recipe was interrupted (KeyboardInterrupt)",
    "j_loops_in_c.py:10": "recipe timed out: ran past its time limit of 1 s and was stopped",
    "k_thread_never_ends.py:14": "recipe ran to the end, but its process did not exit",
    "l_over_memory_limit.py:11": "recipe failed: used more than its memory limit of 1.5 GB",
    # Caught its time limit and went on: still timed out, never "Verified" or stored.
    "o_swallows_time_limit.py:17": "recipe timed out: ran past its time limit of 1 s",
    "p_ignores_sigterm.py:14": "recipe timed out: ran past its time limit of 1 s and was stopped",
    "q_fails_after_printing.py:9": "recipe failed: ValueError: the cell fails after printing",
    "v_30mb_message.py:8": "recipe failed: RuntimeError: xxxxxxxx",
}
# What the fault recipes may take at most, one after another: their time
# limits, the grace periods, and every other recipe. A guard against a hang,
# not a measurement (the build's own log says how long it took).
FAULT_BUILD_GUARD = 600


def _timings(root):
    data = json.loads((root / "_build/html/recipes/timings.json").read_text())
    return {r["recipe"]: r for r in data["recipes"]}


def _page(root, name):
    return (root / "_build/html/recipes" / f"{name}.html").read_text(encoding="utf-8")


def _text(root, name):
    return BeautifulSoup(_page(root, name), "html.parser").get_text()


def _errors(proc) -> set[str]:
    """The ``file:line: ERROR: message`` lines of a build, without folders and
    without the memory a recipe was seen using (a measurement)."""
    return {
        re.sub(r"\(\d+(\.\d+)? [kMG]B in use\)", "(N in use)", re.sub(r"^\S*/", "", line))
        for line in proc.stderr.splitlines()
        if ": ERROR: " in line and not line.startswith(" ")
    }


@pytest.fixture(scope="module")
def clean_build(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("clean"), FIXTURES / "clean")
    return root, sphinx_build(root)


@pytest.fixture(scope="module")
def broken_build(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("broken"), FIXTURES / "broken")
    return root, sphinx_build(root)


@pytest.fixture(scope="module")
def faults_builds(tmp_path_factory):
    """The fault gallery built with JOBS=1 and with JOBS=2: {jobs: (root, process)}."""
    built = {}
    for jobs in (1, 2):
        root = make_project(tmp_path_factory.mktemp(f"faults{jobs}"), FIXTURES / "faults")
        proc = sphinx_build(root, "-D", f"recipes_jobs={jobs}", timeout=FAULT_BUILD_GUARD)
        built[jobs] = (root, proc)
    return built


@pytest.fixture(params=[1, 2], ids=["JOBS=1", "JOBS=2"])
def faults_build(request, faults_builds):
    return faults_builds[request.param]


# ---------------------------------------------------------------- a CPU build of mixed recipes


def test_cpu_build_of_cpu_and_cuda_recipes_succeeds(clean_build):
    root, proc = clean_build
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    t = _timings(root)
    for name in ("a_leaks_state", "b_checks_clean", "cpu_recipe", "warns_deprecation"):
        assert t[name]["status"] == "executed", t[name]
        assert t[name]["seconds"] > 0
    # A quiet log: sphinx-gallery's own count (of what ran in the Sphinx process:
    # nothing) and its file patterns are left out; the recipes summary says what ran.
    assert "Sphinx-Gallery successfully executed" not in proc.stdout
    assert "filename_pattern" not in proc.stdout + proc.stderr


def test_each_recipe_starts_from_a_fresh_process(clean_build):
    root, proc = clean_build
    assert _timings(root)["b_checks_clean"]["status"] == "executed"
    assert "state is clean" in _page(root, "b_checks_clean")
    assert "state reset" not in proc.stdout  # nothing to reset: nothing leaked


def test_declared_cuda_recipe_is_skipped_with_a_note(clean_build):
    root, proc = clean_build
    record = _timings(root)["declared_cuda"]
    page = _page(root, "declared_cuda")
    assert 'torch.ones(2, device="cuda")' in _text(root, "declared_cuda")  # code shown
    if CUDA:
        assert record["status"] == "executed" and "sphx-glr-script-out" in page
        return
    assert record["status"] == "skipped"
    assert "Not executed in this build" in page
    assert "needs CUDA (cuda&gt;=8.0)" in page
    assert "sphx-glr-script-out" not in page


def test_undeclared_cuda_recipe_says_needs_cuda_not_broken(clean_build):
    root, proc = clean_build
    expected = "executed" if CUDA else "needs-cuda"
    assert _timings(root)["undeclared_cuda"]["status"] == expected
    assert _timings(root)["undeclared_cuda_event"]["status"] == expected
    assert "recipe failed" not in proc.stderr
    if not CUDA:
        assert "undeclared_cuda_event.py:10" in proc.stdout
        assert "Needs CUDA" in _page(root, "undeclared_cuda")
        assert "needs CUDA: " in proc.stdout and "undeclared_cuda.py:11" in proc.stdout


def test_deprecation_warning_is_listed_in_the_summary(clean_build):
    root, proc = clean_build
    assert "warns_deprecation.py:17: drift warning while running warns_deprecation.py" in (
        proc.stdout
    )
    assert "FutureWarning: old_api() is deprecated, use new_api() instead" in proc.stdout
    # A warning the recipe declares it expects is not drift.
    assert _timings(root)["warns_expected"]["status"] == "executed"
    assert "shown on purpose" not in proc.stdout + proc.stderr


def test_page_structure_and_measurements(clean_build):
    root, _ = clean_build
    page = _page(root, "cpu_recipe")
    assert 'id="sphx-glr-recipes-cpu-recipe-py"' in page
    assert "sum: 6.0" in page
    assert "Total running time of the script" in page
    assert page.count("Peak memory:") == 1 and "Estimated memory usage" not in page
    assert "recipe-verified" in page and "with PyTorch 2." in page
    record = _timings(root)["cpu_recipe"]
    assert record["device"].startswith(DEVICE)
    # Measured on the recipe's own processes: the one that holds 500 MB for a second
    # shows it, over a recipe that only prints, and took at least that second.
    holder = _timings(root)["holds_500_mb"]
    assert holder["peak_rss_mb"] - record["peak_rss_mb"] > 400, (holder, record)
    # ...and no more than what its process said it held, with what the page's making
    # adds: not the warm parent's memory, nor that of the recipe process waiting next.
    own = float(re.search(r"own memory: (\d+) MB", _text(root, "holds_500_mb"))[1])
    assert own - 20 < holder["peak_rss_mb"] < own + 100, (own, holder)
    assert holder["seconds"] >= 1.0 > record["seconds"]
    for key in (
        "recipe",
        "status",
        "seconds",
        "peak_rss_mb",
        "peak_cuda_mb",
        "device",
        "torch",
        "date",
        "beside",
    ):
        assert key in record


def test_strict_build_fails_on_needs_cuda_drift_and_files_written_into_the_project(
    clean_build, tmp_path
):
    root = make_project(tmp_path, FIXTURES / "clean")
    shutil.rmtree(root / "recipes")
    shutil.copytree(
        FIXTURES / "clean",
        root / "recipes",
        ignore=shutil.ignore_patterns("a_*", "b_*", "cpu_recipe.py"),
    )
    shutil.copy(FIXTURES / "faults" / "e_writes_in_the_repository.py", root / "recipes")
    proc = sphinx_build(root, "-D", "recipes_strict=1")
    assert proc.returncode != 0
    assert ("undeclared_cuda.py:11: ERROR: recipe needs CUDA" in proc.stderr) is not CUDA
    assert "warns_deprecation.py:17: ERROR: drift warning while running" in proc.stderr
    assert "warns_expected.py" not in proc.stderr  # expected: not fatal even now
    assert (
        "e_writes_in_the_repository.py:1: ERROR: recipe wrote into the source tree: "
        "written_by_a_recipe.txt" in proc.stderr
    )


def test_rebuild_executes_nothing(clean_build):
    root, _ = clean_build
    proc = sphinx_build(root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ran = [r for r in _timings(root).values() if r["ran_in_this_build"]]
    # Only the recipes that failed for want of CUDA are tried again.
    assert [r["recipe"] for r in ran] == (
        [] if CUDA else ["undeclared_cuda", "undeclared_cuda_event"]
    )


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
        "hangs.py:13: ERROR: recipe timed out: RecipeTimeout: ran past its time limit of 1 s" in err
    )


def test_a_failure_shows_the_recipes_own_frames(broken_build):
    _, proc = broken_build
    block = proc.stderr.split("raises.py:12: ERROR:")[1].split("ERROR:")[0]
    assert "Traceback (the recipe's own frames):" in block
    assert 'raises.py", line 15, in <module>' in block
    assert 'raises.py", line 12, in compute' in block
    assert "sphinx_gallery" not in block and "recipes_site" not in block


def test_other_pages_are_still_built(broken_build):
    root, _ = broken_build
    assert "fine output" in _page(root, "fine")
    assert _timings(root)["fine"]["status"] == "executed"


def test_timed_out_recipe_is_reported_and_stopped(broken_build):
    root, _ = broken_build
    record = _timings(root)["hangs"]
    assert record["status"] == "timed-out"
    assert 0.5 < record["seconds"] < 30  # stopped at its limit of 1 s, not at the loop's end
    page = BeautifulSoup(_page(root, "hangs"), "html.parser")
    outputs = [b.get_text() for b in page.select("div.sphx-glr-script-out")]
    # What it printed until it was stopped, in an output block (the listing has it too).
    assert any("starting to hang" in o for o in outputs), outputs


def test_failed_pages_show_the_failure(broken_build):
    root, _ = broken_build
    assert "deliberate failure in a fixture" in _page(root, "raises")
    assert "could not be built" in _page(root, "syntax_error")
    assert "not valid UTF-8" in _page(root, "not_utf8")
    assert "Verified" not in _page(root, "raises") + _page(root, "hangs")


def test_a_failure_replaces_the_old_page_even_in_a_one_recipe_build(tmp_path):
    def good(title):
        return recipe(title, 'print("old output")')

    root = make_project(tmp_path, recipes={
        "flaky.py": good("Flaky"), "fragile.py": good("Fragile"), "other.py": good("Other"),
    })  # fmt: skip
    assert sphinx_build(root).returncode == 0
    assert "old output" in _page(root, "flaky") and "old output" in _page(root, "fragile")
    # One no longer parses, one crashes; only the one that crashes is selected to run.
    (root / "recipes/flaky.py").write_text(good("Flaky").replace('print("old', 'x = (\nprint("old'))
    (root / "recipes/fragile.py").write_text(
        good("Fragile").replace('print("old output")', "import os\n\nos.abort()")
    )
    proc = sphinx_build(root, "-D", "recipes_select=fragile")
    assert proc.returncode != 0
    page = _page(root, "flaky")
    assert "could not be built" in page
    assert "old output" not in page.split("could not be built")[-1]
    assert "fragile.py:10: ERROR: recipe crashed: Aborted (signal 6)" in proc.stderr
    page = _page(root, "fragile")
    assert "old output" not in page and "Verified" not in page
    assert "This recipe crashed in this build at line 10" in _text(root, "fragile")
    assert "old output" in _page(root, "other")


# ---------------------------------------------------------------- recipes that misbehave


def test_every_fault_is_named_with_file_and_line(faults_build):
    _, proc = faults_build
    assert proc.returncode != 0
    errors = _errors(proc)
    for where, message in FAULT_ERRORS.items():
        assert any(e.startswith(f"{where}: ERROR: {message}") for e in errors), (where, errors)
    assert len(errors) == len(FAULT_ERRORS), errors


def test_jobs_2_runs_two_recipes_at_a_time_with_the_same_outcomes(faults_builds):
    # The same errors for both (above); the JOBS=2 build really ran two at once.
    assert re.search(r"executed \d+ recipes \(2 at a time\)", faults_builds[2][1].stdout)
    assert "recipes (1 at a time)" in faults_builds[1][1].stdout
    assert _timings(faults_builds[2][0]).keys() == _timings(faults_builds[1][0]).keys()
    assert max(r["beside"] for r in _timings(faults_builds[2][0]).values()) == 1


def test_the_good_recipe_after_the_faults_starts_clean(faults_build):
    root, _ = faults_build
    assert _timings(root)["z_good"]["status"] == "executed"
    assert "state is clean tensor([1.2346])" in _text(root, "z_good")


def test_every_page_is_built_and_only_finished_ones_say_verified(faults_build):
    root, _ = faults_build
    for path in (FIXTURES / "faults").glob("*.py"):
        page = _page(root, path.stem)
        finished = _timings(root)[path.stem]["status"] == "executed"
        assert ("Verified" in page) is finished, path.name


def test_a_huge_output_is_cut_on_the_page_and_noted(faults_build):
    root, proc = faults_build
    page = root / "_build/html/recipes/c_prints_50_mb.html"
    assert page.stat().st_size < 2_000_000
    assert "Output truncated:" in _text(root, "c_prints_50_mb")
    assert "the output of the code cell at line 8 was cut to its first 200.0 kB" in proc.stdout


def test_markup_in_a_figure_title_is_escaped(faults_build):
    root, _ = faults_build
    html = _page(root, "d_markup_in_title")
    img = BeautifulSoup(html, "html.parser").select_one("img.sphx-glr-single-img")
    assert img["alt"] == 'F"><script>alert(1)</script>'
    assert "<script>alert(1)" not in html


def test_a_file_written_into_the_project_is_reported(faults_build):
    root, proc = faults_build
    assert (root / "written_by_a_recipe.txt").exists()
    assert (
        "e_writes_in_the_repository.py:1: recipe wrote into the source tree: "
        "written_by_a_recipe.txt" in proc.stdout
    )
    files = {r["recipe"]: r["files_written"] for r in _timings(root).values()}
    assert files.pop("e_writes_in_the_repository") == ["written_by_a_recipe.txt"]
    assert not any(files.values()), files


def test_a_rebuild_reports_the_same_failures(faults_builds):
    root, first = faults_builds[2]
    again = sphinx_build(root, "-D", "recipes_jobs=2", timeout=FAULT_BUILD_GUARD)
    assert again.returncode != 0
    assert _errors(again) == _errors(first)
    # ...because they ran again in this build: a failure is never cached.
    rows = _timings(root).values()
    failed = {r["recipe"] for r in rows if r["status"] in ("failed", "timed-out", "crashed")}
    assert failed and {r["recipe"] for r in rows if r["ran_in_this_build"]} == failed


# ---------------------------------------------------------------- supervision you can trust


def _alive_with(text: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(f"{pid}: {cmdline}")
    return found


def test_no_process_a_recipe_started_outlives_it(faults_build):
    root, proc = faults_build
    time.sleep(3)  # the daemon would have written by now: 2 s after its recipe returned
    assert _alive_with("sleep 301.25") == []
    assert not list(root.rglob("written_by_a_daemon.txt")), "a daemon outlived its recipe"
    for name, what in (("m_daemon_writes_late", "a fork of the recipe's process"),
                       ("n_new_session", "sleep 301.25")):  # fmt: skip
        assert re.search(
            rf"{name}\.py:1: recipe left processes running when it ended, which the build "
            rf"stopped: pid \d+: {re.escape(what)}",
            proc.stdout,
        ), name
    files = {r["recipe"]: r["files_written"] for r in _timings(root).values()}
    assert files["m_daemon_writes_late"] == [] and files["s_after_the_parent_killer"] == []


def test_a_failing_cell_shows_what_it_printed_before_the_end(faults_build):
    root, _ = faults_build
    # Raised: in an output block of the cell, above its traceback.
    page = BeautifulSoup(_page(root, "q_fails_after_printing"), "html.parser")
    blocks = [b.get_text() for b in page.select("div.sphx-glr-script-out")]
    (printed,) = [i for i, b in enumerate(blocks) if "computed 42" in b]
    (traceback,) = [i for i, b in enumerate(blocks) if "Traceback" in b]
    assert printed < traceback, blocks
    # Killed at its limit (no page of its own): in the note that says so.
    page = BeautifulSoup(_page(root, "p_ignores_sigterm"), "html.parser")
    (note,) = page.select("div.admonition.error")
    assert "stubborn 42" in note.get_text(), note.get_text()


def test_a_killed_warm_parent_hurts_no_other_recipe(faults_build):
    root, _ = faults_build
    t = _timings(root)
    assert t["r_kills_warm_parent"]["status"] == "executed"
    assert t["s_after_the_parent_killer"]["status"] == "executed"
    assert "healthy 5" in _text(root, "s_after_the_parent_killer")
    assert t["z_good"]["status"] == "executed"


def test_memory_counts_shared_pages_once(faults_build):
    root, _ = faults_build
    t = _timings(root)
    # Four forked DataLoader workers fit a 900 MB limit (their resident sizes add up
    # to far more); the recipe that really uses 1.5 GB is stopped.
    assert t["t_dataloader_workers"]["status"] == "executed"
    assert "sum of the batches: 3120.0" in _text(root, "t_dataloader_workers")
    assert 50 < t["t_dataloader_workers"]["peak_rss_mb"] < 900
    assert t["l_over_memory_limit"]["status"] == "failed"


def test_console_and_images_are_bounded(faults_build):
    root, proc = faults_build
    assert len(proc.stdout) + len(proc.stderr) < 1_000_000
    (log,) = (root / "_build/recipe-logs").glob("v_30mb_message.log")
    assert log.stat().st_size > 100_000  # the whole failure, kept aside
    assert str(log) in proc.stderr
    assert re.search(
        r"w_huge_figure\.py:1: figures larger than 5\.0 MB: sphx_glr_w_huge_figure_001\.png "
        r"\(\d+\.\d MB\)",
        proc.stdout,
    )
