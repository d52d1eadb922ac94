"""Incremental builds, one-recipe builds, shards and their merge, on small fixture projects."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest
from bs4 import BeautifulSoup
from conftest import REPO, build_env, make_project, sphinx_build

pytestmark = pytest.mark.slow


def recipe(title: str, body: str) -> str:
    return f'"""\n{title}\n{"=" * len(title)}\n\nA fixture.\n"""\n\n{body}\n'


TINY = {
    "alpha.py": recipe("Alpha", "import torch\n\nprint(torch.arange(3) * 2)"),
    "beta.py": recipe("Beta", "import torch\n\nprint(torch.rand(2))"),
    "group/README.txt": "Group\n-----\n\nA section.\n",
    # Ends with a text cell holding a list, as recipes do: an appended comment must not
    # turn into broken reStructuredText.
    "group/gamma.py": recipe(
        "Gamma",
        "import math\n\nprint(math.factorial(5))\n\n# %%\n# Further reading\n# ---------------\n"
        "# * `math <https://docs.python.org/3/library/math.html>`__\n#",
    ),
    "group/delta.py": recipe("Delta", "import torch\n\nprint(torch.ones(2).sum())"),
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


def test_incremental_rebuild_and_one_edit(tmp_path):
    root = make_project(tmp_path, recipes=TINY)
    assert sphinx_build(root).returncode == 0
    assert ran(root) == ["alpha", "beta", "delta", "gamma"]
    proc = sphinx_build(root)
    assert proc.returncode == 0
    assert ran(root) == [], "a rebuild with nothing changed executed recipes"
    assert "targets for 0 source files that are out of date" in proc.stdout, (
        "a rebuild with nothing changed rewrote pages"
    )
    with open(root / "recipes/group/gamma.py", "a") as f:
        f.write("# an appended comment\n")
    assert sphinx_build(root).returncode == 0
    assert ran(root) == ["gamma"]


def test_staleness_key_reruns_on_torch_or_device_change(tmp_path):
    root = make_project(tmp_path, recipes={"alpha.py": TINY["alpha.py"]})
    assert sphinx_build(root).returncode == 0
    record = root / "docs/recipes/alpha.record.json"
    data = json.loads(record.read_text())
    data["key"] = "from-another-torch"  # as if built with another torch or device
    record.write_text(json.dumps(data))
    assert sphinx_build(root).returncode == 0
    assert ran(root) == ["alpha"]


def test_recipe_selection_executes_only_matches(tmp_path):
    root = make_project(tmp_path, recipes=TINY)
    proc = sphinx_build(root, "-D", "recipes_select=group/*")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert ran(root) == ["delta", "gamma"]
    assert timings(root)["alpha"]["status"] == "not-run"
    assert "Not selected for execution in this build" in page_text(root, "alpha.html")


def test_shards_merge_into_the_same_site_as_one_build(tmp_path):
    single = make_project(tmp_path / "single", recipes=TINY)
    assert sphinx_build(single).returncode == 0

    root = make_project(tmp_path / "sharded", recipes=TINY)
    shards = root / "_build" / "shards"
    executed = []
    for i in (1, 2):
        proc = sphinx_build(root, "-D", f"recipes_shard={i}/2", "-D", "recipes_strict=1")
        assert proc.returncode == 0, proc.stderr[-3000:]
        executed.append(ran(root))
        shutil.copytree(root / "docs/recipes", shards / f"shard-{i}")
        shutil.rmtree(root / "docs/recipes")
    assert sorted(sum(executed, [])) == ["alpha", "beta", "delta", "gamma"]
    assert all(len(e) == 2 for e in executed), executed

    merge = subprocess.run(
        [sys.executable, "-m", "recipes_site.merge", str(shards), str(root / "docs/recipes")],
        env=build_env(PYTHONPATH=str(REPO / "docs" / "_ext")),
        capture_output=True,
        text=True,
    )
    assert merge.returncode == 0, merge.stderr
    proc = sphinx_build(root, "-D", "plot_gallery=0", "-D", "recipes_require_all=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert ran(root) == []
    assert {r["status"] for r in timings(root).values()} == {"executed"}
    for rel in PAGES:
        assert page_text(root, rel) == page_text(single, rel), rel


def test_merge_refuses_a_recipe_no_shard_executed(tmp_path):
    root = make_project(tmp_path, recipes=TINY)
    proc = sphinx_build(root, "-D", "recipes_shard=1/2")
    assert proc.returncode == 0
    proc = sphinx_build(root, "-D", "plot_gallery=0", "-D", "recipes_require_all=1")
    assert proc.returncode != 0
    assert "recipe was not executed by any shard (not-run)" in proc.stderr
