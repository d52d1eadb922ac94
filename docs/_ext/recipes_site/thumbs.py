"""A picture for every card: the recipe's own figure, or one drawn from its title and code.

sphinx-gallery makes a recipe's thumbnail from its first figure (or the one
``sphinx_gallery_thumbnail_number`` names, or ``sphinx_gallery_thumbnail_path``)
and gives every recipe without a figure the same placeholder, so a landing page
of such recipes is a wall of identical cards. :func:`ensure` draws those
recipes a thumbnail of their own instead: their section's colour, their title
and the first lines of their code, with matplotlib, offline. It is drawn where
the recipe runs (so it is stored and restored with its other outputs) and, for
a recipe that did not run, in the build; a key in the PNG says what it was
drawn from, so it is drawn again only when that changes. White on a mid-tone
colour reads the same in light and dark mode.
"""

from __future__ import annotations

import hashlib
import re
import textwrap
from pathlib import Path

from . import layout

SIZE = (400, 280)  # pixels: sphinx-gallery's default thumbnail_size
PALETTE = ("#b3361f", "#2f6f9f", "#3f7f3a", "#7a4f9a", "#a8631a", "#1f7a76", "#8a3b5c", "#55606e")
_MARK = "recipes-thumb"
_SKIP = re.compile(r"^\s*(#|import |from \S+ import |$)")


def colour(section: str) -> str:
    return PALETTE[int(hashlib.sha256(section.encode()).hexdigest(), 16) % len(PALETTE)]


def code_lines(code: str, count: int = 7, width: int = 40) -> list[str]:
    """The first lines of code that say something (no imports, comments or blanks)."""
    found = [line.rstrip() for line in code.splitlines() if not _SKIP.match(line)]
    return [line if len(line) <= width else line[: width - 1] + "…" for line in found[:count]]


def key(title: str, lines: list[str], section: str) -> str:
    return hashlib.sha256("\n".join([title, section, *lines]).encode()).hexdigest()[:16]


def drawn_key(path: Path) -> str | None:
    """The key a thumbnail of ours was drawn with (None: not one of ours)."""
    try:
        from PIL import Image

        with Image.open(path) as image:
            software = image.info.get("Software", "")
    except (OSError, ValueError):
        return None
    return software.split()[-1] if software.startswith(_MARK) else None


def draw(path: Path, title: str, lines: list[str], section: str, mark: str) -> None:
    import matplotlib

    matplotlib.use("agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(SIZE[0] / 100, SIZE[1] / 100), dpi=100)
    fig.patch.set_facecolor(colour(section))
    wrapped = "\n".join(textwrap.wrap(title, 30)[:3])
    fig.text(0.06, 0.9, wrapped, color="white", fontsize=15, weight="bold", va="top")
    code = "\n".join(lines)
    fig.text(0.06, 0.08, code, color="white", alpha=0.85, fontsize=8.5, family="monospace",
             va="bottom", linespacing=1.35)  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, facecolor=fig.get_facecolor(), metadata={"Software": f"{_MARK} {mark}"})


def ensure(section_dir: Path | str, stem: str, title: str, code: str, section: str) -> bool:
    """Draw the recipe's thumbnail if it has no figure of its own; True if drawn."""
    section_dir = Path(section_dir)
    if layout.figures(section_dir, stem) or "sphinx_gallery_thumbnail_path" in code:
        return False
    lines = code_lines(code)
    mark = key(title, lines, section)
    current = layout.thumbnail(section_dir, stem)
    if current is not None and drawn_key(current) == mark:
        return False
    if current is not None:
        current.unlink()
    thumb = section_dir / "images" / "thumb" / f"sphx_glr_{stem}_thumb.png"
    draw(thumb, title, lines, section, mark)
    return True


def code_of(text: str) -> str:
    from . import sourcekey

    return "\n".join(b.content for b in sourcekey.blocks(text) if b.type == "code")


def for_entry(entry: dict) -> bool:
    """:func:`ensure` for a recipe of the manifest."""
    try:
        text = Path(entry["src"]).read_text(encoding="utf-8")
    except OSError:
        return False
    parent = Path(entry["rel"]).parent.as_posix()
    section = parent if parent != "." else "recipes"
    return ensure(entry["target_dir"], entry["stem"], entry["title"], code_of(text), section)


def draw_missing(app) -> None:
    """``builder-inited``, after the gallery is generated: every recipe without a
    figure, run in this build or not, has a thumbnail of its own."""
    from . import records

    manifest = records.read_manifest(records.gallery_root(app.config.sphinx_gallery_conf))
    for entry in manifest["recipes"].values():
        if entry.get("fate") != "invalid":
            for_entry(entry)
