"""What the site's furniture extensions leave to the site: its path, the 404 page's
links, and a check of ``redirects``.

* :func:`site_path` is the path part of ``html_baseurl``; sphinx-notfound-page
  starts the URLs of the 404 page's theme (styles, scripts, navigation) with it
  (``notfound_urls_prefix``), so the page works at whatever depth it is served.
  :func:`absolute_not_found_links` does the same for the links in the page's
  own text (``docs/404.rst``), which the extension leaves relative.
* sphinx-reredirects writes a page for each old name in ``redirects`` without
  looking at either side; :func:`check_redirects` warns when an old name is a
  page of this site (its redirect would replace it) or when a target inside
  the site is not one of its pages.
"""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

from docutils import nodes
from sphinx.util import logging

logger = logging.getLogger(__name__)

# Where a site without html_baseurl is taken to be, to resolve targets against.
_NO_BASEURL = "https://site.invalid/"


def site_path(baseurl: str) -> str:
    """The path part of the site's URL, with both slashes: ``/recipes/``."""
    path = urlsplit(baseurl).path.strip("/")
    return f"/{path}/" if path else "/"


def absolute_not_found_links(app, doctree, docname: str) -> None:
    """``doctree-resolved``: the 404 page's links to pages of the site start with
    ``notfound_urls_prefix`` (``/recipes/index.html``), like the rest of the page."""
    prefix = getattr(app.config, "notfound_urls_prefix", None)
    if docname != getattr(app.config, "notfound_pagename", None) or not prefix:
        return
    if app.builder.format != "html":
        return
    page = urljoin(prefix, app.builder.get_target_uri(docname))
    for ref in doctree.findall(nodes.reference):
        uri = ref.get("refuri")
        if uri and not (urlsplit(uri).scheme or uri.startswith(("/", "#"))):
            ref["refuri"] = urljoin(page, uri)


def destination(source: str, target: str, source_uri: str, baseurl: str) -> str | None:
    """The URI below the site's root that the redirect page of ``source`` (written
    at ``source_uri``) sends the browser to; None when it leads out of the site."""
    if target.startswith("/"):
        # sphinx-reredirects takes the site's root to be this many folders up.
        target = "/".join([".."] * source.count("/")) + target
    base = baseurl or _NO_BASEURL
    url = urlsplit(urljoin(urljoin(base, source_uri), target))
    root = urlsplit(base)
    if (url.scheme, url.netloc) != (root.scheme, root.netloc):
        return None
    if not url.path.startswith(site_path(base)):
        return None
    return url.path[len(site_path(base)) :]


def problems(redirects: dict, docs: set[str], uri, baseurl: str) -> list[str]:
    """What is wrong with ``redirects`` on the site at ``baseurl`` made of ``docs``
    (``uri``: a docname's URI below the site's root)."""
    found = []
    pages = {uri(doc) for doc in docs}
    for source, target in sorted(redirects.items()):
        if any(c in source for c in "*?["):
            continue  # a pattern: it names existing pages on purpose
        if source in docs:
            found.append(f"{source!r} is a page of this site; a redirect would replace it")
            continue
        if urlsplit(target).scheme or target.startswith("//"):
            continue  # another site
        if destination(source, target, uri(source), baseurl) not in pages:
            found.append(f"{source!r} points to {target!r}, which is not a page of this site")
    return found


def check_redirects(app) -> list:
    """``html-collect-pages``, before sphinx-reredirects writes the pages."""
    redirects = getattr(app.config, "redirects", None) or {}
    found = problems(
        redirects, app.env.found_docs, app.builder.get_target_uri, app.config.html_baseurl
    )
    for problem in found:
        logger.warning(f"redirects: {problem}", type="recipes", subtype="redirect")
    return []
