"""What a page's link preview says, beyond what sphinxext-opengraph finds itself.

sphinxext-opengraph writes the OpenGraph tags of every page made from a
document (title, ``og:url`` on ``ogp_site_url``, site name), and takes a
page's ``og:*`` metadata over its own values. :func:`add_overrides` gives it
that metadata: ``og:description`` is the recipe's summary on recipe pages (the
card text) and ``recipes_description`` elsewhere; a recipe page is an
``article`` and its ``og:image`` is its card thumbnail when it has one.
"""

from __future__ import annotations

from html import escape
from urllib.parse import urljoin

from . import records


def overrides(app, pagename: str) -> dict[str, str]:
    """The ``og:*`` values of ``pagename`` (plain text)."""
    entry = records.recipe_entry(app.config.sphinx_gallery_conf, pagename)
    found = {"og:description": (entry or {}).get("summary") or app.config.recipes_description}
    if entry is None:
        return found
    found["og:type"] = "article"
    thumb = records.thumbnail(entry)
    if thumb is not None:
        # The landing page's card shows this image, so Sphinx copies it to _images,
        # under a name of its own when two images share a file name.
        rel = thumb.relative_to(app.srcdir).as_posix()
        name = app.env.images[rel][1] if rel in app.env.images else thumb.name
        found["og:image"] = urljoin(app.config.ogp_site_url, f"_images/{name}")
    return found


def add_overrides(app, pagename, templatename, context, doctree) -> None:
    """``html-page-context``, before sphinxext-opengraph: the page's ``og:*`` metadata.

    The extension writes these values into attributes escaping only ``"``, so they
    are given to it escaped. The page's own metadata is copied, not changed."""
    if doctree is None:
        return  # a page with no document (search, index) gets no tags
    values = {k: escape(v, quote=False) for k, v in overrides(app, pagename).items() if v}
    context["meta"] = {**(context.get("meta") or {}), **values}
