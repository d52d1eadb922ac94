"""The distributed build, replayed from ``.github/workflows/docs.yml`` itself.

:class:`replay.Replay` runs the workflow's jobs and ``run:`` steps as written
(the plan job, N shards, the merge), with its caches and artifacts kept in
folders, three runs in a row: the first executes every recipe, the second
nothing, the third exactly the one recipe that changed, on exactly one shard.
A run in which a recipe fails fails and publishes nothing, but keeps the other
recipes' outputs, so that the run after the fix executes only that recipe.
The recipes execute on this machine's CPU (the repository variable
``RECIPES_DEVICE`` is this machine's device kind, ``cuda`` on GitHub).
"""

from __future__ import annotations

import json
import re

import pytest
from bs4 import BeautifulSoup
from conftest import DEVICE, REPO, project_with_makefile, recipe
from recipes_site import store
from replay import Replay

pytestmark = pytest.mark.slow


RECIPES = {
    "alpha.py": recipe("Alpha", 'print("alpha says", 1 + 1)'),
    "beta.py": recipe("Beta", 'print("beta says", 2 + 2)'),
    "group/README.txt": "Group\n-----\n\nA section.\n",
    "group/gamma.py": recipe("Gamma", 'print("gamma says", 3 + 3)'),
    "group/delta.py": recipe("Delta", 'print("delta says", 4 + 4)'),
}
ALL = {"alpha", "beta", "group/gamma", "group/delta"}


def project(tmp_path):
    """A project the workflow's make targets can run in: fixture recipes, this Makefile."""
    return project_with_makefile(tmp_path / "project", RECIPES)


def replay(tmp_path, shards: int) -> tuple[Replay, object]:
    root = project(tmp_path)
    workflow = Replay(
        REPO / ".github/workflows/docs.yml", root, tmp_path / "replay", {"RECIPES_DEVICE": DEVICE}
    )
    workflow.spec["env"]["RECIPES_SHARDS"] = str(shards)  # the one place N is set
    return workflow, root


def executed(jobs) -> dict[str, list[str]]:
    """For each shard job of a run, the recipes it executed."""
    found = {}
    for job in jobs:
        if job["job"] == "shard":
            timings = json.loads(
                (job["workspace"] / "_build/shard/recipes/timings.json").read_text()
            )
            found[job["label"]] = sorted(
                r["recipe"] for r in timings["recipes"] if r["ran_in_this_build"]
            )
    return found


def merged_text(jobs, rel: str) -> str:
    (merge,) = [j for j in jobs if j["job"] == "merge"]
    html = (merge["workspace"] / "_build/html/recipes" / rel).read_text(encoding="utf-8")
    return BeautifulSoup(html, "html.parser").select_one("main").get_text(" ", strip=True)


def plan_of(jobs) -> dict:
    (plan,) = [j for j in jobs if j["job"] == "plan"]
    return json.loads((plan["workspace"] / "_build/plan/plan.json").read_text())


def stored(jobs) -> dict[str, tuple[str, str]]:
    """The merged store: recipe -> (key, md5 of the text its page shows)."""
    (merge,) = [j for j in jobs if j["job"] == "merge"]
    found = {}
    for entry in (merge["workspace"] / ".cache/recipes/store").glob("*/entry.json"):
        data = json.loads(entry.read_text())
        found[data["recipe"]] = (data["key"], data["record"]["source_md5"])
    return found


def store_saves(jobs) -> list[str]:
    return [key for j in jobs for key in j["saved"] if key.startswith("recipes-store-")]


def test_three_runs_execute_everything_then_nothing_then_the_edit(tmp_path):
    shards = 3
    workflow, root = replay(tmp_path, shards)

    first = workflow.run()
    ran = executed(first)
    assert len(ran) == shards
    everything = [r for names in ran.values() for r in names]
    assert sorted(everything) == sorted(ALL), ran  # each recipe on exactly one shard
    # The plan job alone decides what each shard runs: shard i runs the plan's list i.
    plan = plan_of(first)
    assert [ran[f"shard-{i + 1}"] for i in range(shards)] == [sorted(s) for s in plan["shards"]]
    assert re.fullmatch(r"[0-9a-f]{16}", store_saves(first)[0].rsplit("-", 1)[1])
    assert "alpha says 2" in merged_text(first, "alpha.html")
    assert "Verified" in merged_text(first, "group/delta.html")
    assert len(store_saves(first)) == 1

    second = workflow.run()
    assert all(names == [] for names in executed(second).values()), executed(second)
    assert "gamma says 6" in merged_text(second, "group/gamma.html")
    assert store_saves(second) == []  # same content, same key: nothing saved, nothing evicted

    gamma = root / "recipes/group/gamma.py"
    gamma.write_text(gamma.read_text().replace("3 + 3", "3 * 5"))
    third = workflow.run()
    busy = {label: names for label, names in executed(third).items() if names}
    assert list(busy.values()) == [["group/gamma"]], executed(third)
    assert "gamma says 15" in merged_text(third, "group/gamma.html")
    assert "alpha says 2" in merged_text(third, "alpha.html")
    assert len(store_saves(third)) == 1

    # A prose-only edit: nothing planned or executed; the store changes by that entry only.
    alpha = root / "recipes/alpha.py"
    alpha.write_text(alpha.read_text().replace("A fixture.", "A fixture, reworded."))
    fourth = workflow.run()
    assert plan_of(fourth)["stale"] == []
    assert all(names == [] for names in executed(fourth).values()), executed(fourth)
    text = merged_text(fourth, "alpha.html")
    assert "A fixture, reworded." in text and "alpha says 2" in text
    before, after = stored(third), stored(fourth)
    assert {rid: key for rid, (key, _) in after.items()} == {
        rid: key for rid, (key, _) in before.items()
    }
    assert [rid for rid in after if after[rid] != before[rid]] == ["alpha"]
    assert len(store_saves(fourth)) == 1


def test_a_failed_recipe_fails_the_run_and_the_next_run_executes_only_it(tmp_path):
    """A shard whose recipe fails still hands its good outputs to the merge, which
    saves them and fails the run before anything is published; after the fix,
    the next run executes that recipe alone."""
    workflow, root = replay(tmp_path, 2)
    beta = root / "recipes/beta.py"
    good = beta.read_text()
    beta.write_text(good.replace('print("beta says", 2 + 2)', 'raise RuntimeError("beta broke")'))
    main = {"event": "push", "ref": "refs/heads/main"}  # a run that would deploy

    first = workflow.run(**main, check=False)
    assert first.result == "failure", first.jobs
    assert first.jobs["shard"] == first.jobs["merge"] == "failure", first.jobs
    assert first.jobs["deploy"] == first.jobs["notebooks"] == "skipped", first.jobs
    assert "beta broke" in first.errors()
    (plan,) = [j for j in first if j["job"] == "plan"]
    keys = json.loads((plan["workspace"] / "_build/plan/plan.json").read_text())["keys"]
    shards = json.loads((plan["workspace"] / "_build/plan/plan.json").read_text())["shards"]
    assert any("beta" in s and len(s) > 1 for s in shards), shards  # good work beside it
    failed_shards = {j["label"] for j in first if j["job"] == "shard" and j["result"] == "failure"}
    assert len(failed_shards) == 1, failed_shards
    # Every shard uploaded; nothing was published, not even a preview.
    assert sorted(first.artifacts) == ["plan", "store-shard-1", "store-shard-2"]
    (saved,) = store_saves(first)
    kept = {rid for rid, key in keys.items() if store.get(workflow.caches / saved, key)}
    assert kept == ALL - {"beta"}
    (merge,) = [j for j in first if j["job"] == "merge"]
    assert not (merge["workspace"] / "_build/html").exists()

    # Not on main: a deploy-eligible run would push the notebooks to GitHub.
    beta.write_text(good)
    second = workflow.run()
    assert second.result == "success" and second.failed == []
    busy = {label: names for label, names in executed(second).items() if names}
    assert list(busy.values()) == [["beta"]], executed(second)
    assert "beta says 4" in merged_text(second, "beta.html")
    assert "alpha says 2" in merged_text(second, "alpha.html")
    assert "site-preview" in second.artifacts
    assert len(store_saves(second)) == 1
