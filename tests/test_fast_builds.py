"""Incremental builds, one-recipe builds, shards and their merge, on small fixture projects."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from conftest import DEVICE, REPO, build_env, make_project, recipe, sphinx_build

pytestmark = pytest.mark.slow


TINY = {
    "alpha.py": recipe("Alpha", "import torch\n\nprint(torch.arange(3) * 2)"),
    "beta.py": recipe("Beta", "import torch\n\nprint(torch.rand(2))"),
    "group/README.txt": "Group\n-----\n\nA section.\n",
    # Ends with a text cell holding a list, as recipes do: an appended comment must not
    # turn into broken reStructuredText.
    "group/gamma.py": recipe(
        "Gamma",
        "import math\n\nimport matplotlib.pyplot as plt\n\nprint(math.factorial(5))\n"
        "plt.plot([1, 3, 2])\nplt.show()\n\n# %%\n# Further reading\n# ---------------\n"
        "# * `math <https://docs.python.org/3/library/math.html>`__\n#",
    ),
    # Its output quotes the line its code sits on.
    "group/delta.py": recipe(
        "Delta",
        "import inspect\n\nimport torch\n\n"
        'print(torch.ones(2).sum(), "at line", inspect.currentframe().f_lineno)',
    ),
}


def timings(root):
    data = json.loads((root / "_build/html/recipes/timings.json").read_text())
    return {r["recipe"]: r for r in data["recipes"]}


def ran(root):
    return sorted(n for n, r in timings(root).items() if r["ran_in_this_build"])


def page_text(root, rel):
    html = (root / "_build/html/recipes" / rel).read_text(encoding="utf-8")
    text = BeautifulSoup(html, "html.parser").select_one("main").get_text(" ", strip=True)
    # Only the measurements may differ between two builds of the same sources.
    text = re.sub(r"\d+(\.\d+)? (s|seconds|MB|minutes)\b", "N", text)
    return re.sub(r"Verified \d{4}-\d\d-\d\d", "Verified D", text)


PAGES = ["alpha.html", "beta.html", "group/gamma.html", "group/delta.html"]


def sitemap_locs(root) -> list[str]:
    tree = ET.parse(root / "_build/html/sitemap.xml")
    ns = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9"}
    return sorted(e.text for e in tree.getroot().findall("s:url/s:loc", ns))


@pytest.fixture(scope="module")
def tiny_built(tmp_path_factory):
    """TINY built once from nothing: (a copy of the built project, what that build ran).

    Many tests start from this state; building it once for all of them keeps
    ``make test`` short. The copy is only read; ``tiny`` restores it for a test.
    """
    root = make_project(tmp_path_factory.mktemp("tiny") / "project", recipes=TINY)
    proc = sphinx_build(root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    built = root.parent / "built"
    shutil.copytree(root, built, symlinks=True)
    return built, ran(root)


@pytest.fixture
def tiny(tiny_built) -> Path:
    """The built TINY project, for a test to edit and build again.

    It is restored at the folder it was built in, file times included: Sphinx
    keeps its environment only for the same source folder, and a copy elsewhere
    would be read and written anew.
    """
    built, _ = tiny_built
    root = built.parent / "project"
    shutil.rmtree(root)
    shutil.copytree(built, root, symlinks=True)
    return root


def test_incremental_rebuild_and_one_edit(tiny_built, tiny):
    root = tiny
    assert tiny_built[1] == ["alpha", "beta", "group/delta", "group/gamma"]
    proc = sphinx_build(root)
    assert proc.returncode == 0
    assert ran(root) == [], "a rebuild with nothing changed executed recipes"
    assert "targets for 0 source files that are out of date" in proc.stdout, (
        "a rebuild with nothing changed rewrote pages"
    )

    # Prose only: nothing executes; the pages carry the new text and the stored run.
    html = root / "_build/html/recipes/group"
    figure = (root / "_build/html/_images/group-sphx_glr_gamma_001.png").read_bytes()
    (entry,) = [p for p in (root / ".cache/recipes/store").glob("*/entry.json")
                if json.loads(p.read_text())["recipe"] == "group/gamma"]  # fmt: skip
    stored = json.loads(entry.read_text())
    stored["record"]["date"] = "2001-02-03"  # as if it ran long ago
    entry.write_text(json.dumps(stored))
    gamma, delta = root / "recipes/group/gamma.py", root / "recipes/group/delta.py"
    gamma.write_text(gamma.read_text().replace("A fixture.", "A fixture, now described."))
    with open(gamma, "a") as f:
        f.write("# An appended comment joins the last text cell.\n")
    # A line above delta's code moves the line its output quotes: it runs again.
    delta.write_text(delta.read_text().replace("A fixture.", "A fixture.\n\nOne line more."))
    proc = sphinx_build(root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert ran(root) == ["group/delta"]
    assert "pages were made again from the outputs of their last run, without running: " \
        "group/gamma.py" in proc.stdout  # fmt: skip
    text = page_text(root, "group/gamma.html")
    assert "A fixture, now described." in text and "appended comment joins" in text
    assert "120" in text  # the stored output
    assert "Verified</strong> 2001-02-03" in (html / "gamma.html").read_text()
    assert (root / "_build/html/_images/group-sphx_glr_gamma_001.png").read_bytes() == figure
    for name in ("gamma.py", "gamma.ipynb"):
        (download,) = (root / "_build/html/_downloads").rglob(name)
        assert "now described" in download.read_text(), name
    assert "at line 14" in page_text(root, "group/delta.html")  # it said 12
    # The sitemap still lists every page, those this build did not write again too.
    assert len(sitemap_locs(tiny_built[0])) > len(PAGES)
    assert sitemap_locs(root) == sitemap_locs(tiny_built[0])

    # One code line: exactly that recipe executes, and only the pages that show
    # something new are read again (its figure, hence its thumbnail, is the same:
    # the landing page and its section's are not).
    gamma.write_text(gamma.read_text().replace("factorial(5)", "factorial(6)"))
    proc = sphinx_build(root)
    assert proc.returncode == 0
    assert ran(root) == ["group/gamma"]
    assert "720" in page_text(root, "group/gamma.html")
    # The theme's templates were compiled once, by the first build, and kept.
    assert list((root / ".cache/recipes/templates").glob("__jinja2_*.cache"))
    read = set(re.findall(r"reading sources\.\.\. \[ *\d+%\] (\S+)", proc.stdout))
    assert read == {"recipes/group/gamma", "sg_execution_times"}, read


def test_a_record_made_under_another_key_runs_again(tiny):
    """Output made under another key (another torch, device or code) is never reused;
    that torch and the device are in the key is proven by
    test_units.test_the_store_key_leaves_prose_out_but_not_requirements_or_torch and
    test_the_cuda_key_is_planned_and_rendered_on_this_machine."""
    root = tiny
    record = root / "docs/recipes/alpha.record.json"
    data = json.loads(record.read_text())
    data["key"] = "from-another-torch"  # as if built with another torch or device
    record.write_text(json.dumps(data))
    shutil.rmtree(root / ".cache/recipes/store")  # and no output of this key kept
    assert sphinx_build(root).returncode == 0
    assert ran(root) == ["alpha"]


def test_recipe_selection_executes_only_matches(tmp_path):
    root = make_project(tmp_path, recipes=TINY)
    proc = sphinx_build(root, "-D", "recipes_select=group/*")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert ran(root) == ["group/delta", "group/gamma"]
    assert timings(root)["alpha"]["status"] == "not-run"
    assert "Not selected for execution in this build" in page_text(root, "alpha.html")


def merge(root):
    """``make merge`` on a project whose shards ran in its own folder."""
    done = subprocess.run(
        [sys.executable, "-m", "recipes_site.pipeline", "merge", "--project", str(root),
         "--source", "docs", "--device", DEVICE],
        env=build_env(PYTHONPATH=str(REPO / "docs" / "_ext")),
        capture_output=True, text=True, cwd=root,
    )  # fmt: skip
    render = sphinx_build(root, "-D", "plot_gallery=0", "-D", "recipes_require_all=1")
    return done, render


def test_shards_merge_into_the_same_site_as_one_build(tiny_built, tmp_path):
    single, _ = tiny_built
    root = make_project(tmp_path / "sharded", recipes=TINY)
    executed = []
    for i in (1, 2):
        proc = sphinx_build(root, "-D", f"recipes_shard={i}/2", "-D", "recipes_strict=1")
        assert proc.returncode == 0, proc.stderr[-3000:]
        executed.append(ran(root))
        if i == 1:
            # One shard's outputs alone: the merge refuses what no shard executed.
            done, render = merge(root)
            assert done.returncode != 0
            assert re.search(rf"merge: \S+: no output for its current source on {DEVICE}",
                             done.stderr)  # fmt: skip
            assert render.returncode != 0
            assert "recipe has no output for its current source in the store (not-run)" in (
                render.stderr
            )
    assert sorted(sum(executed, [])) == ["alpha", "beta", "group/delta", "group/gamma"]
    assert all(len(e) == 2 for e in executed), executed  # one split, whichever shard asks

    done, render = merge(root)
    assert done.returncode == 0, done.stderr
    assert render.returncode == 0, render.stderr[-3000:]
    assert ran(root) == []
    assert {r["status"] for r in timings(root).values()} == {"executed"}
    for rel in PAGES:
        assert page_text(root, rel) == page_text(single, rel), rel
    # Figures and thumbnails come through the store and the merge too.
    for image in ("_images/group-sphx_glr_gamma_001.png", "_images/sphx_glr_gamma_thumb.png"):
        merged = (root / "_build/html" / image).read_bytes()
        assert merged == (single / "_build/html" / image).read_bytes(), image


def test_an_edit_is_never_served_from_old_output(tiny):
    """An unselected recipe whose source changed shows no output, not the old one."""
    root = tiny
    alpha = root / "recipes/alpha.py"
    alpha.write_text(alpha.read_text().replace("* 2", "* 3"))
    assert sphinx_build(root, "-D", "recipes_select=beta").returncode == 0
    assert timings(root)["alpha"]["status"] == "not-run"
    assert "tensor([0, 2, 4])" not in page_text(root, "alpha.html")


def test_switching_back_to_an_earlier_source_restores_its_output(tiny):
    root = tiny
    alpha = root / "recipes/alpha.py"
    original = alpha.read_text()
    alpha.write_text(original.replace("* 2", "* 3"))
    assert sphinx_build(root).returncode == 0
    assert ran(root) == ["alpha"]
    alpha.write_text(original)
    assert sphinx_build(root).returncode == 0
    assert ran(root) == [], "the store held this source's output"
    assert "tensor([0, 2, 4])" in page_text(root, "alpha.html")


def test_the_same_file_name_in_two_sections(tmp_path):
    def plotting(word):
        body = (
            "import matplotlib.pyplot as plt\n\n"
            f'print("{word}")\nplt.plot([1, 2])\nplt.title("{word}")\nplt.show()'
        )
        return recipe(word.capitalize(), body)

    root = make_project(
        tmp_path,
        recipes={
            "a/README.txt": "A\n-\n\nSection a.\n",
            "b/README.txt": "B\n-\n\nSection b.\n",
            "a/same.py": plotting("first"),
            "b/same.py": plotting("second"),
        },
    )
    proc = sphinx_build(root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert set(timings(root)) == {"a/same", "b/same"}
    html = root / "_build/html/recipes"
    for section, word in (("a", "first"), ("b", "second")):
        page = BeautifulSoup((html / section / "same.html").read_text(), "html.parser")
        assert word in page.select_one("main").get_text()
        img = page.select_one("img.sphx-glr-single-img")
        assert img["alt"] == word
        assert (html / section / img["src"]).resolve().read_bytes() == (
            root / f"docs/recipes/{section}/images/sphx_glr_same_001.png"
        ).read_bytes()


def test_problems_in_a_recipes_text_point_at_the_recipe_and_its_code_still_runs(tmp_path):
    text = (
        '"""\nBad text\n========\n\nA summary.\n"""\n\nprint("ok")\n\n'
        "# %%\n# A section\n# ---------\n#\n"
        "# A paragraph on\n# two lines\n#   indented for no reason\n"
    )
    # Wide characters count twice: docutils finds this underline short.
    wide = '"""\nTorch 入門です\n==========\n\nA summary.\n"""\n\nprint("ok")\n'
    root = make_project(tmp_path, recipes={"bad_text.py": text, "wide.py": wide})
    proc = sphinx_build(root)
    assert proc.returncode != 0
    assert re.search(
        r"recipes/bad_text\.py:16: (ERROR|WARNING): Unexpected indentation", proc.stderr
    )
    assert "docs/recipes/bad_text.rst" not in proc.stderr
    assert re.search(
        r"text problem: \S*recipes/bad_text\.py:16: Unexpected indentation", proc.stdout
    )
    assert re.search(r"wide\.py:3: (ERROR|WARNING): Title underline too short", proc.stderr)
    assert timings(root)["wide"]["status"] == "executed"  # a text problem; its code still ran
    # Fixed as docutils measures: 14 columns for 7 wide characters.
    (root / "recipes/wide.py").write_text(wide.replace("==========", "=" * 14))
    (root / "recipes/bad_text.py").write_text(text.replace("#   indented", "# indented"))
    proc = sphinx_build(root)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_a_recipe_saved_again_while_it_runs_is_stored_under_the_text_that_ran(tmp_path):
    mark = tmp_path / "running"

    def slow(version, wait):
        return recipe("Slow", f"import pathlib\nimport time\n\npathlib.Path({str(mark)!r}).touch()"
                      f"\ntime.sleep({wait})\nprint('version', {version})")  # fmt: skip

    root = make_project(tmp_path / "p", recipes={"slow.py": slow(1, 4)})
    src = root / "recipes/slow.py"

    def save_meanwhile():
        deadline = time.monotonic() + 300
        while not mark.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        src.write_text(slow(2, 0))

    editor = threading.Thread(target=save_meanwhile)
    editor.start()
    proc = sphinx_build(root)
    editor.join()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "version 2" in page_text(root, "slow.html")
    assert timings(root)["slow"]["files_written"] == [], "the author's save blamed on the recipe"
    for entry in (root / ".cache/recipes/store").glob("*/entry.json"):
        stored = json.loads(entry.read_text())
        page = (entry.parent / "files/slow.rst").read_text()
        text = (entry.parent / "files/slow.py").read_text()
        assert stored["record"]["source_md5"] == hashlib.md5(text.encode()).hexdigest()
        version = re.search(r"print\('version', (\d)\)", text)[1]
        assert f"version {version}" in page, "an output stored under another text"

    src.write_text(slow(1, 0))  # back to the first text: nothing of it was kept
    assert sphinx_build(root).returncode == 0
    assert ran(root) == ["slow"]
    assert "version 1" in page_text(root, "slow.html")


def test_the_cuda_key_is_planned_and_rendered_on_this_machine(tiny):
    """What the plan and merge jobs do on CPU runners: keys made for cuda, not for the host."""
    from recipes_site import pipeline, store

    root = tiny
    root_store = root / ".cache/recipes/store"
    cuda = pipeline.current(root, Path("docs"), "cuda")
    everything = ["alpha", "beta", "group/delta", "group/gamma"]
    assert pipeline.make_plan(cuda, root_store, 1)["stale"] == everything  # no cuda output yet
    # Each shard's output for cuda, as it reaches the merge (made here from this run's).
    for mine in store.entries(root_store):
        folder = root_store / cuda[mine["recipe"]][0]
        shutil.copytree(root_store / mine["key"], folder)
        entry = json.loads((folder / "entry.json").read_text())
        entry.update(key=folder.name, record={**entry["record"], "device": "cuda (GPU)"})
        (folder / "entry.json").write_text(json.dumps(entry))
    assert pipeline.make_plan(cuda, root_store, 1)["stale"] == []
    render = sphinx_build(root, "-D", "plot_gallery=0", "-D", "recipes_device=cuda",
                          "-D", "recipes_require_all=1")  # fmt: skip
    assert render.returncode == 0, render.stderr[-3000:]
    assert "cuda (GPU)" in page_text(root, "alpha.html")
    rows = json.loads((root / "_build/html/recipes/timings.json").read_text())
    assert rows["host"] == "cuda (GPU)"  # where the outputs were made, not this machine
    assert "on cuda (GPU)" in (root / "_build/html/sg_execution_times.html").read_text()


def test_a_silent_recipe_fails_and_a_slow_one_is_noted(tmp_path):
    root = make_project(tmp_path, recipes={
        "silent.py": recipe("Prints nothing", "x = 1"),
        "slow.py": recipe("Takes its time", "import time\n\ntime.sleep(1.2)\nprint('done')"),
    })  # fmt: skip
    proc = sphinx_build(root, "-D", "recipes_budget=1")
    assert proc.returncode != 0
    assert re.search(r"silent\.py:1: ERROR: recipe failed: it ran but printed nothing", proc.stderr)
    assert re.search(r"slow\.py: ran 1\.\d s, slower than the site's budget of 1 s", proc.stdout)
    assert "silent.py: ran" not in proc.stdout
