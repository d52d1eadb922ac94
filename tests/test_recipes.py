"""Each recipe runs on its own, in a fresh interpreter, as a reader would run it.

Recipes are discovered from ``recipes/``: a new recipe is tested without
editing this file. A recipe that declares a requirement the machine lacks is
skipped with that reason.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO, build_env
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
def test_recipe_runs(path):
    recipe = meta.read_recipe(path)
    reasons = meta.unmet(recipe, host())
    if reasons:
        pytest.skip(f"{path.name} {'; '.join(reasons)}")
    try:
        proc = subprocess.run(
            [sys.executable, path.name],
            cwd=path.parent,
            capture_output=True,
            text=True,
            env=build_env(),
            timeout=recipe.timeout,
        )
    except subprocess.TimeoutExpired as exc:
        tail = (exc.stderr or b"")[-3000:]
        pytest.fail(f"{path} ran past its {recipe.timeout:g} s limit\n{tail!r}")
    assert proc.returncode == 0, (
        f"{path} exited with {proc.returncode}; last lines of stderr:\n{proc.stderr[-3000:]}"
    )
    assert proc.stdout.strip(), f"{path} printed nothing"
