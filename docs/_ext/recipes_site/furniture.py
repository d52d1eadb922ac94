"""Files written next to the built pages: redirects, the 404 page's base.

* ``recipes_redirects`` maps an old page name to a current one, both without
  ``.html`` (``{"recipes/old_name": "recipes/compile/new_name"}``); each old
  name becomes a small page that sends the browser on to the new one.
* GitHub Pages serves ``404.html`` at whatever URL was missing, so the page
  gets a ``<base>`` pointing at the site's root and its relative links work
  from any depth.
"""

from __future__ import annotations

import posixpath
from html import escape
from pathlib import Path
from urllib.parse import urlsplit

from sphinx.util import logging

logger = logging.getLogger(__name__)

NOT_FOUND = "404"


def site_path(baseurl: str) -> str:
    """The path part of the site's URL, with both slashes: ``/recipes/``."""
    path = urlsplit(baseurl).path.strip("/")
    return f"/{path}/" if path else "/"


def add_base(app, pagename, templatename, context, doctree) -> None:
    """``html-page-context``: a ``<base>`` for the 404 page, before any other URL in it."""
    if pagename == NOT_FOUND and app.config.html_baseurl:
        base = f'<base href="{escape(site_path(app.config.html_baseurl))}" />\n'
        context["metatags"] = base + context.get("metatags", "")


def redirect_page(source: str, target_uri: str, baseurl: str) -> str:
    """A page at ``source`` (a docname) that sends the browser to ``target_uri``."""
    href = posixpath.relpath(target_uri, posixpath.dirname(source) or ".")
    canonical = (baseurl.rstrip("/") + "/" + target_uri) if baseurl else href
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8" />\n'
        f"<title>Moved to {escape(target_uri)}</title>\n"
        f'<link rel="canonical" href="{escape(canonical)}" />\n'
        f'<meta http-equiv="refresh" content="0; url={escape(href)}" />\n'
        '<meta name="robots" content="noindex" />\n</head>\n<body>\n'
        f'<p>This page has moved to <a href="{escape(href)}">{escape(target_uri)}</a>.</p>\n'
        "</body>\n</html>\n"
    )


def write_files(app, exception) -> None:
    """``build-finished``: write the redirect pages."""
    if exception is not None or app.builder.format != "html":
        return
    outdir = Path(app.outdir)
    config = app.config
    docs = app.env.found_docs

    for source, target in sorted(config.recipes_redirects.items()):
        if source in docs:
            logger.warning(
                f"recipes_redirects: {source!r} is a page of this site; "
                "a redirect would replace it",
                type="recipes",
                subtype="redirect",
            )
            continue
        if target not in docs:
            logger.warning(
                f"recipes_redirects: {source!r} points to {target!r}, "
                "which is not a page of this site",
                type="recipes",
                subtype="redirect",
            )
            continue
        uri = app.builder.get_target_uri(target)
        path = outdir / (source + app.builder.out_suffix)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(redirect_page(source, uri, config.html_baseurl), encoding="utf-8")
