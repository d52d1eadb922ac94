"""The workflow replay (tests/replay.py) follows GitHub's rules when something fails.

Fast: the first test replays a small workflow of shell steps; the second
replays ``.github/workflows/docs.yml`` itself over a project whose Makefile
only pretends to build (``tests/test_pipeline.py`` replays it with the real
one, slowly).
"""

from __future__ import annotations

import pytest
from conftest import REPO
from replay import Replay, ReplayError

WORKFLOW = """\
on: push
jobs:
  a:
    runs-on: ubuntu-latest
    steps:
      - {id: ok, run: 'echo "x=1" >> "$GITHUB_OUTPUT"'}
      - {id: bad, run: "exit 3"}
      - {id: after, run: "echo never"}
      - {id: on-failure, if: "failure()", run: "true"}
      - {id: not-cancelled, if: "${{ !cancelled() && steps.bad.outcome == 'failure' }}",
         run: "true"}
      - {id: tolerated, if: "always()", continue-on-error: true, run: "exit 1"}
  b:
    needs: a
    runs-on: ubuntu-latest
    steps: [{run: "true"}]
  c:
    needs: a
    if: ${{ !cancelled() && needs.a.result == 'failure' }}
    runs-on: ubuntu-latest
    steps: [{run: "true"}]
  d:
    needs: c
    runs-on: ubuntu-latest
    steps: [{run: "true"}]
  e:
    needs: [b, c]
    if: ${{ always() && needs.b.result == 'skipped' && needs.c.result == 'success' }}
    runs-on: ubuntu-latest
    steps: [{run: "true"}]
"""


def test_a_failed_step_fails_its_job_and_the_run_goes_on_by_githubs_rules(tmp_path):
    (tmp_path / "workflow.yml").write_text(WORKFLOW)
    (tmp_path / "project").mkdir()
    replay = Replay(tmp_path / "workflow.yml", tmp_path / "project", tmp_path / "scratch", {})
    with pytest.raises(ReplayError, match="exit 3"):
        replay.run()  # a failed run raises unless asked not to

    run = replay.run(check=False)
    assert run.result == "failure"
    # b needs the failed a; d needs c, which ran and succeeded, but a, before
    # it, failed: a job without a status function needs every ancestor's success.
    assert run.jobs == {
        "a": "failure", "b": "skipped", "c": "success", "d": "skipped", "e": "success",
    }  # fmt: skip
    assert run.failed == ["a"] and run.skipped == ["b", "d"]
    ((a, *_),) = [[r for r in run if r["job"] == "a"]]
    assert [s["outcome"] for s in a["steps"]] == [
        "success", "failure", "skipped", "success", "success", "failure",
    ]  # fmt: skip
    assert "exit 3" in a["errors"][0] and len(a["errors"]) == 2  # continue-on-error: noted only


# A Makefile that only pretends: shard i stores `out-i` in the store and then
# fails when the project holds `fail-<i>`; the merge adds the shards' entries
# and fails while any `fail-*` is there (a recipe without output).
FAKE_MAKEFILE = """\
SHELL := /bin/bash
STORE := .cache/recipes/store
I = $(firstword $(subst /, ,$(SHARD)))
plan:
\tmkdir -p _build/plan && echo '{}' > _build/plan/plan.json
shard:
\tmkdir -p $(STORE)/out-$(I) && echo ok > $(STORE)/out-$(I)/entry.json
\t! test -e fail-$(I)
merge:
\tmkdir -p $(STORE) && cp -r _build/shards/. $(STORE)/
\t! compgen -G 'fail-*'
\tmkdir -p _build/html docs/recipes && echo site > _build/html/index.html
\techo '{}' > docs/recipes/r.ipynb
store-id:
\t@ls $(STORE) | sha256sum | cut -c1-16
"""


def test_docs_workflow_keeps_a_failed_shards_good_outputs_and_publishes_nothing(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("PIP_CACHE_DIR", str(tmp_path / "pip"))
    project = tmp_path / "project"
    project.mkdir()
    (project / "Makefile").write_text(FAKE_MAKEFILE)
    (project / "fail-2").write_text("")
    workflow = Replay(
        REPO / ".github/workflows/docs.yml", project, tmp_path / "replay", {"RECIPES_DEVICE": "cpu"}
    )
    workflow.spec["env"]["RECIPES_SHARDS"] = "2"
    # The notebooks job would push to GitHub: here it only lists what it got.
    (push,) = [s for s in workflow.spec["jobs"]["notebooks"]["steps"] if "run" in s]
    push["run"] = "ls -R"

    first = workflow.run(event="push", ref="refs/heads/main", check=False)
    assert first.result == "failure"
    assert {k: first.jobs[k] for k in ("plan", "shard", "merge", "deploy", "notebooks")} == {
        "plan": "success", "shard": "failure", "merge": "failure",
        "deploy": "skipped", "notebooks": "skipped",
    }  # fmt: skip
    assert first.artifacts == ["plan", "store-shard-1", "store-shard-2"]
    (saved,) = [k for k in workflow.saved if k.startswith("recipes-store-cpu-")]
    assert sorted(p.name for p in (workflow.caches / saved).iterdir()) == ["out-1", "out-2"]
    (merge,) = [r for r in first if r["job"] == "merge"]
    outcomes = {s["name"]: s["outcome"] for s in merge["steps"]}
    assert outcomes["make merge"] == "failure"
    assert outcomes["Save the recipe output store"] == "success"
    assert outcomes["Fail if a shard failed"] == "skipped"  # the job has failed already

    # A shard fails but leaves nothing missing: the merge still fails the run.
    (project / "fail-2").unlink()
    (project / "shard-broken").write_text("")
    step = next(
        s for s in workflow.spec["jobs"]["shard"]["steps"] if "make shard" in s.get("run", "")
    )
    step["run"] += " && ! test -e shard-broken"
    second = workflow.run(event="push", ref="refs/heads/main", check=False)
    assert second.failed == ["shard", "merge"], second.jobs
    assert second.artifacts == ["plan", "store-shard-1", "store-shard-2"]
    (merge,) = [r for r in second if r["job"] == "merge"]
    assert {s["name"]: s["outcome"] for s in merge["steps"]}["Fail if a shard failed"] == "failure"

    (project / "shard-broken").unlink()
    third = workflow.run(event="push", ref="refs/heads/main")
    assert third.result == "success" and third.skipped == ["preview"], third.jobs
    assert third.artifacts == [
        "github-pages-3-1", "notebooks", "plan", "store-shard-1", "store-shard-2",
    ]  # fmt: skip
