"""A complete ``sitemap.xml`` after an incremental build too.

sphinx-sitemap lists the pages it sees rendered in this build, so a build that
rewrites only the pages that changed would publish a sitemap of those pages
alone. :class:`Unwritten` hands it, at the end of writing, every page this
build left as it was (each page whose doctree was not resolved for writing and
whose file is there from an earlier build); the extension's own settings
(``sitemap_excludes``, ``sitemap_url_scheme``) still decide what is listed.
"""

from __future__ import annotations

from pathlib import Path

import sphinx_sitemap


class Unwritten:
    """Follows which pages the builder writes, then adds the others to the sitemap."""

    def __init__(self) -> None:
        self.written: set[str] = set()

    def setup(self, app) -> None:
        app.connect("write-started", self.start)
        # Emitted in the main process for every page written, in parallel builds too.
        app.connect("doctree-resolved", self.resolved)
        app.connect("html-collect-pages", self.add_to_sitemap)

    def start(self, app, builder) -> None:
        self.written.clear()

    def resolved(self, app, doctree, docname: str) -> None:
        self.written.add(docname)

    def pages(self, app) -> list[str]:
        """The pages kept from an earlier build: not written now, but on disk."""
        return [
            doc
            for doc in sorted(app.env.found_docs - self.written)
            if Path(app.builder.get_outfilename(doc)).is_file()
        ]

    def add_to_sitemap(self, app) -> list:
        """``html-collect-pages`` (before the sitemap is written at ``build-finished``)."""
        if "sphinx_sitemap" in app.extensions:
            for doc in self.pages(app):
                sphinx_sitemap.add_html_link(app, doc, None, {}, None)
        return []  # no page of its own to write
