"""HTML for sphinx-gallery's figures, with what goes into attributes escaped.

sphinx-gallery turns each figure into an ``image-sg`` node whose ``alt`` text
is the figure's title, and its HTML writer puts that text into the ``<img>``
tag as it is: a recipe that titles a plot ``"><script>...`` writes markup
into the page. :func:`visit_image_sg` writes the same tag with every
attribute escaped. It also names the copies in ``_images/`` after the
figure's section, so that two recipes with the same file name in two
sections do not overwrite each other's figures.
"""

from __future__ import annotations

import shutil
from html import escape
from pathlib import Path, PurePosixPath

from sphinx_gallery.directives import imgsgnode


def image_name(uri: str) -> str:
    """``/recipes/compile/images/sphx_glr_x_001.png`` -> ``compile-sphx_glr_x_001.png``."""
    parts = [p for p in PurePosixPath(uri.lstrip("/")).parts[1:] if p != "images"]
    return "-".join(parts)


def parse_srcset(text: str) -> dict[float, str]:
    """``"/a.png, /a_2_00x.png 2.00x"`` -> ``{0: "/a.png", 2.0: "/a_2_00x.png"}``."""
    found = {}
    for item in text.split(","):
        words = item.split()
        if len(words) == 1:
            found[0.0] = words[0]
        elif len(words) == 2 and words[1].endswith("x"):
            found[float(words[1][:-1])] = words[0]
        elif words:
            raise ValueError(f"not a srcset entry: {item.strip()!r}")
    return found


def visit_image_sg(self, node) -> None:
    if node["srcset"] is None:
        self.visit_image(node)  # docutils' own writer escapes its attributes
        return
    srcset = parse_srcset(node["srcset"])
    outdir = Path(self.builder.outdir)
    imagedir = outdir / self.builder.imagedir
    imagedir.mkdir(parents=True, exist_ok=True)
    for uri in {*srcset.values(), node["uri"]}:
        shutil.copyfile(Path(self.builder.srcdir) / uri.lstrip("/"), imagedir / image_name(uri))
    page = outdir / Path(self.builder.current_docname).parent
    prefix = Path(self.builder.imagedir).as_posix()
    rel = PurePosixPath(*[".."] * len(page.relative_to(outdir).parts), prefix)
    if self.builder.name == "dirhtml":
        rel = PurePosixPath("..", rel)
    entries = []
    for mult, uri in srcset.items():
        entries.append(f"{rel / image_name(uri)}" + (f" {mult:1.2f}x" if mult else ""))
    attrs = {
        "src": str(rel / image_name(node["uri"])),
        "srcset": ", ".join(entries),
        "alt": node["alt"],
    }
    if node["class"]:
        attrs["class"] = node["class"][0]
    html = " ".join(f'{k}="{escape(v, quote=True)}"' for k, v in attrs.items())
    self.body.append(f"<img {html} />")


def depart_image_sg(self, node) -> None:
    pass


def setup(app) -> None:
    # Loaded after sphinx_gallery.gen_gallery, so this replaces its HTML writer.
    app.add_node(imgsgnode, override=True, html=(visit_image_sg, depart_image_sg))
