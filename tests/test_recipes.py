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
import time

import nbformat
import pytest
from conftest import REPO, run_notebook
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
