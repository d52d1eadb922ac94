"""OpenGraph tags for link previews, added to every page's ``metatags``.

``og:description`` is the recipe's summary on recipe pages (the card text) and
``recipes_description`` elsewhere; ``og:image`` is the recipe's card thumbnail
when it has one. URLs are absolute, built on ``html_baseurl``.
"""

from __future__ import annotations

import re
from html import escape, unescape

from . import records

_TAGS = re.compile(r"<[^>]+>")


def _plain(html: str) -> str:
    return " ".join(unescape(_TAGS.sub("", html or "")).split())


def tags(app, pagename: str, context: dict) -> dict[str, str]:
    base = app.config.html_baseurl.rstrip("/") + "/"
    entry = records.recipe_entry(app.config.sphinx_gallery_conf, pagename)
    title = _plain(context.get("title", "")) or app.config.project
    found = {
        "og:title": title,
        "og:type": "article" if entry else "website",
        "og:url": base + app.builder.get_target_uri(pagename),
        "og:site_name": app.config.project,
        "og:description": (entry or {}).get("summary") or app.config.recipes_description,
    }
    thumb = records.thumbnail(entry) if entry else None
    if thumb is not None:
        # The landing page's card shows this image, so Sphinx copies it to _images,
        # under a name of its own when two images share a file name.
        rel = thumb.relative_to(app.srcdir).as_posix()
        name = app.env.images[rel][1] if rel in app.env.images else thumb.name
        found["og:image"] = f"{base}_images/{name}"
    return found


def add_metatags(app, pagename, templatename, context, doctree) -> None:
    """``html-page-context``: append the OpenGraph tags to ``metatags``."""
    if not app.config.html_baseurl:
        return
    html = "".join(
        f'\n<meta property="{k}" content="{escape(v)}" />'
        for k, v in tags(app, pagename, context).items()
        if v
    )
    context["metatags"] = context.get("metatags", "") + html
