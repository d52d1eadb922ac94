"""Sphinx extension that plans, executes, annotates and reports the site's recipes.

It adds to sphinx-gallery, through public events only:

``builder-inited``  (:func:`plan.prepare`) before the gallery is generated:
    validates every recipe, decides what this build does with each one
    (``RECIPE``, ``SHARD``, ``PLAN``, declared requirements, the store) and
    writes the manifest; (:func:`sourcemap.install`) points problems in a
    recipe's text at the recipe; (:func:`executor.execute`) runs the recipes
    to execute, each in a process of its own, through sphinx-gallery's own
    per-file generation. sphinx-gallery then renders the gallery, executing
    nothing itself.
``builder-inited``  (:func:`thumbs.draw_missing`, :func:`timespage.write`) after
    the gallery is generated: a thumbnail for every recipe without a figure,
    and the computation-times page from the recipes' records.
``source-read``     (:func:`pages.annotate`) adds the "verified" line, notes
    for recipes that were not executed, and the memory footer.
``doctree-resolved`` (:func:`furniture.absolute_not_found_links`) starts the
    links in the 404 page's text with the site's path, as sphinx-notfound-page
    does for the rest of that page, so they work at any depth.
``html-page-context`` (:mod:`links`) adds the "Open in Colab" URL;
    (:mod:`opengraph`) gives sphinxext-opengraph each page's description, and
    a recipe's card thumbnail as its image.
``html-collect-pages`` (:func:`furniture.check_redirects`) warns about
    ``redirects`` that would replace a page or lead to no page;
    (:class:`sitemap.Unwritten`) gives sphinx-sitemap the pages an incremental
    build did not write again, so ``sitemap.xml`` lists every page.
``build-finished``  (:func:`report.summarize`) writes ``timings.json``, prints
    the end-of-build summary and fails the build for broken recipes.

:mod:`images` replaces the HTML writer of sphinx-gallery's image node with one
that escapes what it writes into attributes.
"""

from __future__ import annotations

from . import (
    cards,
    executor,
    furniture,
    images,
    links,
    opengraph,
    pages,
    plan,
    records,
    report,
    sitemap,
    sourcemap,
    thumbs,
    timespage,
)

__version__ = "2.0"


def _install_log_filters(app) -> None:
    root = records.gallery_root(app.config.sphinx_gallery_conf)
    sourcemap.install(app, records.read_manifest(root))
    report.quiet(app)


def setup(app):
    # Build options: they choose what runs, not what a page says, so changing
    # them does not invalidate Sphinx's environment.
    for name, default, types in (
        ("recipes_select", "", [str]),
        ("recipes_shard", "", [str]),
        ("recipes_plan", "", [str]),
        ("recipes_strict", False, [bool]),
        ("recipes_jobs", 1, [int]),
        ("recipes_require_all", False, [bool]),
        ("recipes_isolate", True, [bool]),
        ("recipes_device", "", [str]),
        ("recipes_store", ".cache/recipes/store", [str]),
        ("recipes_memory_limit", "", [str]),
        ("recipes_output_cell_limit", 200_000, [int]),
        ("recipes_output_page_limit", 1_500_000, [int]),
        ("recipes_budget", 30, [int, float]),  # seconds; an int, so that -D can set it
    ):
        app.add_config_value(name, default, "", types=types)
    app.add_config_value("recipes_repository", "", "html", types=[str])
    app.add_config_value("recipes_branch", "main", "html", types=[str])
    # Site furniture: where notebooks are published for Colab, and the description
    # for link previews.
    app.add_config_value("recipes_notebooks_branch", "notebooks", "html", types=[str])
    app.add_config_value("recipes_description", "", "html", types=[str])

    # After sphinx-gallery's own builder-inited set-up (priority 10) and before
    # it generates the gallery (default priority 500).
    app.connect("builder-inited", plan.prepare, priority=200)
    app.connect("builder-inited", _install_log_filters, priority=250)
    app.connect("builder-inited", executor.execute, priority=300)
    app.connect("builder-inited", thumbs.draw_missing, priority=550)
    app.connect("builder-inited", timespage.write, priority=600)
    app.connect("source-read", pages.annotate)
    app.connect("doctree-resolved", furniture.absolute_not_found_links)
    app.connect("html-page-context", links.add_context)
    # Before sphinxext-opengraph reads the page's metadata (default priority 500).
    app.connect("html-page-context", opengraph.add_overrides, priority=400)
    app.connect("build-finished", report.summarize, priority=400)
    # Before sphinx-reredirects writes the redirect pages (default priority 500).
    app.connect("html-collect-pages", furniture.check_redirects, priority=400)
    sitemap.Unwritten().setup(app)
    app.add_css_file("recipes.css")
    app.add_js_file("recipes.js", loading_method="defer")
    cards.setup(app)
    images.setup(app)
    return {"version": __version__, "parallel_read_safe": True, "parallel_write_safe": True}
