"""Sphinx extension that plans, annotates and reports the execution of recipes.

It adds to sphinx-gallery, through public events only:

``builder-inited``  (:func:`plan.prepare`) before the gallery is generated:
    validates every recipe, decides which ones this build executes (``RECIPE``,
    ``SHARD``, declared requirements, staleness) and writes the manifest.
``source-read``     (:func:`pages.annotate`) adds the "verified" line, notes
    for recipes that were not executed, and the memory footer.
``builder-inited``  (:func:`timespage.write`) after the gallery is generated:
    writes the computation-times page from the recipes' records.
``html-page-context`` (:mod:`links`, :mod:`opengraph`, :mod:`furniture`) adds
    the "Open in Colab" URL, OpenGraph tags and the 404 page's ``<base>``.
``build-finished``  (:func:`report.summarize`) writes ``timings.json``, prints
    the end-of-build summary and fails the build for broken recipes;
    (:func:`furniture.write_files`) writes ``sitemap.xml`` and redirect pages.

The runtime hooks that sphinx-gallery calls around each recipe live in
:mod:`recipes_site.engine` and are named in ``sphinx_gallery_conf``.
"""

from __future__ import annotations

from . import cards, furniture, links, opengraph, pages, plan, report, timespage

__version__ = "1.0"


def setup(app):
    # Build options: they choose what runs, not what a page says, so changing
    # them does not invalidate Sphinx's environment.
    app.add_config_value("recipes_select", "", "", types=[str])
    app.add_config_value("recipes_shard", "", "", types=[str])
    app.add_config_value("recipes_strict", False, "", types=[bool])
    app.add_config_value("recipes_jobs", 1, "", types=[int])
    app.add_config_value("recipes_timings", "", "", types=[str])
    app.add_config_value("recipes_require_all", False, "", types=[bool])
    app.add_config_value("recipes_isolate", True, "", types=[bool])
    app.add_config_value("recipes_repository", "", "html", types=[str])
    app.add_config_value("recipes_branch", "main", "html", types=[str])
    # Site furniture: where notebooks are published for Colab, the description
    # for link previews, and old page names that redirect to current ones.
    app.add_config_value("recipes_notebooks_branch", "notebooks", "html", types=[str])
    app.add_config_value("recipes_description", "", "html", types=[str])
    app.add_config_value("recipes_redirects", {}, "html", types=[dict])

    # After sphinx-gallery's own builder-inited set-up (priority 10) and before
    # it generates the gallery (default priority 500).
    app.connect("builder-inited", plan.prepare, priority=200)
    app.connect("builder-inited", timespage.write, priority=600)
    app.connect("source-read", pages.annotate)
    app.connect("html-page-context", links.add_context)
    app.connect("html-page-context", opengraph.add_metatags)
    app.connect("html-page-context", furniture.add_base)
    app.connect("build-finished", report.summarize, priority=400)
    app.connect("build-finished", furniture.write_files, priority=450)
    app.add_css_file("recipes.css")
    app.add_js_file("recipes.js", loading_method="defer")
    cards.setup(app)
    return {"version": __version__, "parallel_read_safe": True, "parallel_write_safe": True}
