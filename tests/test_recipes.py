"""Each recipe runs on its own, in a fresh interpreter, as a reader runs it.

The build executes every recipe once, in its warm process. This test job runs
each recipe once more, outside the build, in the form readers take home: its
generated notebook, top to bottom, in a fresh ipykernel (a new Python process)
whose working directory is an empty folder. The notebook holds the recipe's
code cells in order, after a first cell that only acts inside Colab, so this
one run proves both that the recipe stands on its own and that its download
works; running the ``.py`` as well would execute the same code a third time.

Recipes are discovered from ``recipes/``: a new recipe is tested without
editing this file. A recipe that declares a requirement the machine lacks is
skipped with that reason.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

import nbformat
import pytest
from conftest import REPO, build_env, run_notebook
from nbclient.exceptions import CellExecutionError, CellTimeoutError
from recipes_site import meta

RECIPES = meta.find_recipes(REPO / "recipes")
_HOST = None


def host() -> meta.Host:
    global _HOST
    if _HOST is None:
        _HOST = meta.Host.detect()
    return _HOST


def test_recipes_are_found():
    assert RECIPES, "no recipe found under recipes/"


@pytest.mark.parametrize(
    "path", RECIPES, ids=[p.relative_to(REPO / "recipes").as_posix() for p in RECIPES]
)
def test_recipe_runs(site, path, tmp_path):
    recipe = meta.read_recipe(path)
    reasons = meta.unmet(recipe, host())
    if reasons:
        pytest.skip(f"{path.name} {'; '.join(reasons)}")
    notebooks = list((site / "_downloads").rglob(f"{path.stem}.ipynb"))
    assert len(notebooks) == 1, f"{path}: the build published no notebook (see its summary)"
    nb = nbformat.read(notebooks[0], as_version=4)
    start = time.perf_counter()
    try:
        run_notebook(nb, tmp_path, timeout=recipe.timeout)
    except CellTimeoutError:
        pytest.fail(f"{path}: a cell ran past the recipe's {recipe.timeout:g} s limit")
    except CellExecutionError as exc:
        tail = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))[-3000:]  # without terminal colours
        pytest.fail(f"{path} failed; last lines of its traceback:\n{tail}")
    elapsed = time.perf_counter() - start
    assert elapsed < recipe.timeout, f"{path} took {elapsed:.0f} s, over {recipe.timeout:g} s"
    printed = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "stream" and o.get("name") == "stdout"
    ]
    assert printed, f"{path} printed nothing"


# What a profile holds on a GPU, simulated on this CPU: each ``record_function``
# range recorded once more on the device's timeline, in the events and in the
# exported trace. The profiler recipe must count each step once all the same.
DEVICE_COPIES = r"""
import copy, json, runpy, sys
import torch.profiler
from torch.autograd import DeviceType

profile = torch.profiler.profile
events, export = profile.events, profile.export_chrome_trace
added = []

def events_with_device_copies(self):
    found = list(events(self))
    copies = [copy.copy(e) for e in found if e.is_user_annotation]
    for e in copies:
        e.device_type = DeviceType.CUDA
    added.extend(copies)
    return found + copies

def export_with_device_copies(self, path):
    export(self, path)
    with open(path) as f:
        trace = json.load(f)
    ranges = [e for e in trace["traceEvents"] if e.get("cat") == "user_annotation"]
    trace["traceEvents"] += [{**e, "cat": "gpu_user_annotation"} for e in ranges]
    with open(path, "w") as f:
        json.dump(trace, f)

profile.events, profile.export_chrome_trace = events_with_device_copies, export_with_device_copies
runpy.run_path(sys.argv[1], run_name="__main__")
print("device copies added:", len(added))
"""


def test_the_profiler_recipe_counts_each_step_once_when_a_device_records_it_too(tmp_path):
    path = REPO / "recipes/performance/profiling_compiled_model.py"
    done = subprocess.run(
        [sys.executable, "-c", DEVICE_COPIES, str(path)],
        cwd=tmp_path, env=build_env(), capture_output=True, text=True,
        timeout=meta.read_recipe(path).timeout,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    copies = int(re.search(r"device copies added: (\d+)", done.stdout)[1])
    assert copies >= 5, done.stdout[-2000:]  # every step's range was doubled
