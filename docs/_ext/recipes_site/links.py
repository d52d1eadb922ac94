"""Per-page context for the theme: the "Open in Colab" link of a recipe page.

The generated notebooks are not committed next to the recipes, so the deploy
job publishes them to a branch of their own (``recipes_notebooks_branch``),
each at its path below ``recipes/`` with ``.ipynb`` instead of ``.py``. Colab
opens a notebook from a GitHub blob URL, which this module builds from
``recipes_repository``, the one setting that names the repository.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from . import records

COLAB = "https://colab.research.google.com/github"


def colab_url(repository: str, branch: str, rel: str) -> str:
    """Colab URL of the notebook of the recipe at ``rel`` (path below ``recipes/``)."""
    notebook = PurePosixPath(rel).with_suffix(".ipynb").as_posix()
    return f"{COLAB}/{repository}/blob/{branch}/{notebook}"


def add_context(app, pagename, templatename, context, doctree) -> None:
    """``html-page-context``: ``recipe_colab_url`` for recipe pages (else None)."""
    entry = records.recipe_entry(app.config.sphinx_gallery_conf, pagename)
    repository = app.config.recipes_repository
    context["recipe_colab_url"] = (
        colab_url(repository, app.config.recipes_notebooks_branch, entry["rel"])
        if entry and repository
        else None
    )
