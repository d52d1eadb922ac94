"""``.. recipe-cards::``: a grid of recipe cards built from the build's manifest.

Each card shows the recipe's thumbnail, title, one-line summary and tags, and
carries its tags in ``data-tags`` for the tag filter (``recipes.js``). Unlike
a glob of source files, the manifest only lists recipes the gallery actually
generated, so a recipe that cannot be parsed never breaks the landing page.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.util.docutils import SphinxDirective

from . import records


class tag_filter(nodes.General, nodes.Element):
    """Placeholder for the tag filter buttons, rendered as HTML."""


def visit_tag_filter(self, node):
    buttons = "".join(
        f'<button type="button" class="recipe-tag-button" data-tag="{escape(t, quote=True)}" '
        f'aria-pressed="false">{escape(t)}</button>'
        for t in node["tags"]
    )
    self.body.append(
        '<div class="recipe-tag-filter" role="group" aria-label="Filter recipes by tag">'
        '<span class="recipe-tag-filter-label">Filter by tag:</span>'
        f'{buttons}<button type="button" class="recipe-tag-clear" hidden>Show all</button></div>'
    )
    raise nodes.SkipNode


def depart_tag_filter(self, node):  # pragma: no cover - SkipNode skips it
    pass


class recipe_card(nodes.General, nodes.Element):
    """One card; rendered as a ``div`` that carries its tags for the filter."""


def visit_recipe_card(self, node):
    self.body.append(f'<div class="recipe-card" data-tags="{escape(node["tags"])}">')


def depart_recipe_card(self, node):
    self.body.append("</div>")


class RecipeCards(SphinxDirective):
    has_content = False

    def run(self):
        gconf = self.config.sphinx_gallery_conf
        root = records.gallery_root(gconf)
        manifest = records.read_manifest(root)
        self.env.note_dependency(str(root / records.CARDS))  # what the cards show
        entries = [e for e in manifest["recipes"].values() if e.get("fate") != "invalid"]
        entries.sort(key=lambda e: (e["rel"].count("/"), e["rel"]))
        all_tags = sorted({t for e in entries for t in e["tags"]})
        grid = nodes.container(classes=["recipe-cards"])
        for entry in entries:
            grid += self._card(entry, Path(self.env.srcdir))
        return [tag_filter(tags=all_tags), grid]

    def _card(self, entry: dict, srcdir: Path) -> nodes.Node:
        card = recipe_card(tags=" ".join(entry["tags"]))
        thumb = records.thumbnail(entry)
        if thumb is not None:
            uri = "/" + thumb.relative_to(srcdir).as_posix()
            card += nodes.image(uri=uri, alt="", classes=["recipe-card-thumb"])
        title = nodes.paragraph(classes=["recipe-card-title"])
        ref = addnodes.pending_xref(
            "", refdomain="std", reftype="doc", reftarget="/" + entry["docname"], refexplicit=True
        )
        ref += nodes.inline(text=entry["title"])
        title += ref
        card += title
        if entry.get("summary"):
            card += nodes.paragraph(text=entry["summary"], classes=["recipe-card-summary"])
        if entry["tags"]:
            tags = nodes.paragraph(classes=["recipe-card-tags"])
            for tag in entry["tags"]:
                tags += nodes.inline(text=tag, classes=["recipe-tag"])
                tags += nodes.Text(" ")
            card += tags
        return card


def setup(app):
    app.add_node(tag_filter, html=(visit_tag_filter, depart_tag_filter))
    app.add_node(recipe_card, html=(visit_recipe_card, depart_recipe_card))
    app.add_directive("recipe-cards", RecipeCards)
