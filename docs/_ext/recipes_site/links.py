"""Per-page context for the theme: the page's source on GitHub, and "Open in Colab".

Every page links to the file it is made from, at ``recipes_branch`` of
``recipes_repository``: a recipe page to its ``recipes/<section>/<name>.py``,
a section's page to its ``README.txt``, any other page to its ``.rst`` under
``docs/``; pages the build generates (the computation times) link to nothing.

The generated notebooks are not committed next to the recipes, so the deploy
job publishes them to a branch of their own (``recipes_notebooks_branch``),
each at its path below ``recipes/`` with ``.ipynb`` instead of ``.py``. Colab
opens a notebook from a GitHub blob URL, which this module builds from
``recipes_repository``, the one setting that names the repository.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from . import records, timespage

COLAB = "https://colab.research.google.com/github"


def colab_url(repository: str, branch: str, rel: str) -> str:
    """Colab URL of the notebook of the recipe at ``rel`` (path below ``recipes/``)."""
    notebook = PurePosixPath(rel).with_suffix(".ipynb").as_posix()
    return f"{COLAB}/{repository}/blob/{branch}/{notebook}"


def source_path(app, pagename: str) -> str | None:
    """The file of the checkout that ``pagename`` is made from, relative to the project
    (``recipes/compile/graph_breaks.py``, ``docs/index.rst``), or None."""
    gconf = app.config.sphinx_gallery_conf
    project = Path(app.confdir).resolve()
    examples = (Path(app.srcdir) / gconf["examples_dirs"]).resolve()
    entry = records.recipe_entry(gconf, pagename)
    if entry is not None:
        found = examples / entry["rel"]
    elif pagename == gconf["gallery_dirs"] or pagename.startswith(f"{gconf['gallery_dirs']}/"):
        section = PurePosixPath(pagename).relative_to(gconf["gallery_dirs"]).parent
        if PurePosixPath(pagename).name != "index":
            return None
        found = next(
            (examples / section / n for n in ("README.txt", "README.rst")
             if (examples / section / n).is_file()), None,
        )  # fmt: skip
    elif pagename == timespage.PAGE:
        return None
    else:
        found = Path(app.env.doc2path(pagename)).resolve()
    if found is None or not found.is_file() or not found.is_relative_to(project):
        return None
    return found.relative_to(project).as_posix()


def add_context(app, pagename, templatename, context, doctree) -> None:
    """``html-page-context``: ``recipe_source_url`` for every page made from a file of
    the checkout, ``recipe_colab_url`` for recipe pages (else None)."""
    entry = records.recipe_entry(app.config.sphinx_gallery_conf, pagename)
    repository = app.config.recipes_repository
    path = source_path(app, pagename) if repository else None
    context["recipe_source_url"] = (
        f"https://github.com/{repository}/blob/{app.config.recipes_branch}/{path}" if path else None
    )
    context["recipe_colab_url"] = (
        colab_url(repository, app.config.recipes_notebooks_branch, entry["rel"])
        if entry and repository
        else None
    )
