"""A page made again from a recipe's new text and the outputs of its stored run.

When only a recipe's prose changed (its :func:`sourcekey.code_key` is the
same), nothing needs to execute: sphinx-gallery generates the page from the
new text without executing it, and the output of each code cell is taken
from the stored page, code cell by code cell. The title, the paragraphs, the
code listings and the downloads (``.py``, ``.ipynb``, ``.zip``) are the new
ones; the outputs, figures, thumbnail, timing footer and the record of the
run (its date, device and measurements) are the stored run's.

A page sphinx-gallery generated is a header, the docstring, then one segment
per block, each opened by ``.. GENERATED FROM PYTHON SOURCE LINES a-b``.
A code segment is its ``code-block`` listing (indented lines) and its output
(lines at column 0 again), the output first in a page of only two blocks;
the timing and download footer closes the last segment. Anything that does
not have that shape is not spliced: the recipe executes instead.

Outputs that quote where the code sits (a line number, the recipe's file
name: a warning's location, a traceback, ``frame.lineno``) would go stale
when prose above the code grows, so :func:`quotes_source` marks them, and
such a run stands only for the very text it ran (:func:`store.covers`).
"""

from __future__ import annotations

import re
from pathlib import Path

from . import sourcekey

_MARK = re.compile(r"^\.\. GENERATED FROM PYTHON SOURCE LINES (\d+)-\d+$", re.M)
_FOOTER = re.compile(
    r"^(?:\.\. rst-class:: sphx-glr-timing|\*\*Estimated memory usage:\*\*"
    r"|\.\. _sphx_glr_download_)",
    re.M,
)
_SPACER = "\n\n|\n\n"  # sphinx-gallery's space between an output and the code below it
# "line 61", "lineno=61", "lines 3": an output that quotes a line of the recipe.
_LINE_REF = re.compile(r"\b(?:line|lines|lineno|line_no|line number)\b\W{0,3}\d+", re.I)


def _parts(page: str) -> tuple[str, list[tuple[int, str]], str] | None:
    """(head, [(first source line, segment)], footer), or None for another shape."""
    marks = list(_MARK.finditer(page))
    if not marks:
        return None
    footer_at = _FOOTER.search(page, marks[-1].end())
    if footer_at is None:
        return None
    body, footer = page[: footer_at.start()], page[footer_at.start() :]
    ends = [m.start() for m in marks[1:]] + [len(body)]
    segments = [(int(m[1]), body[m.start() : end]) for m, end in zip(marks, ends, strict=True)]
    return body[: marks[0].start()], segments, footer


def _listing_and_output(segment: str, notebook_like: bool) -> tuple[str, str, str] | None:
    """A code segment cut into (its mark, its listing, its output).

    sphinx-gallery puts the output after the listing in a page of more than
    two blocks, and before it (then a ``|`` spacer) in a page of two.
    """
    lines = segment.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.startswith(".. code-block::")]
    if len(lines) < 3 or not starts:
        return None
    mark = "".join(lines[:2])
    if not notebook_like:
        output = "".join(lines[2 : starts[-1]])
        output = output[: -len(_SPACER)] if output.endswith(_SPACER) else output
        return mark, "".join(lines[starts[-1] :]), output
    if starts[0] != 2:
        return None
    last = 2
    for i in range(3, len(lines)):
        if not lines[i].strip():
            continue
        if lines[i][0] not in " \t":
            break
        last = i
    return mark, "".join(lines[2 : last + 1]), "".join(lines[last + 1 :])


def _join(mark: str, listing: str, output: str, notebook_like: bool) -> str:
    if notebook_like:
        return mark + listing + output
    spacer = _SPACER if "sphx-glr-script-out" in output else ""
    return mark + output + spacer + listing


def _code_segments(page: str, text: str):
    """(head, segments, footer, {segment index: (mark, listing, output)}, notebook-like)
    of a page made from ``text``."""
    parts = _parts(page)
    if parts is None:
        return None
    head, segments, footer = parts
    found = sourcekey.blocks(text)
    code = {b.lineno for b in found if b.type == "code"}
    notebook_like = len(found) > 2
    cut = {}
    for i, (line, segment) in enumerate(segments):
        if line in code:
            pieces = _listing_and_output(segment, notebook_like)
            if pieces is None:
                return None
            cut[i] = pieces
    return head, segments, footer, cut, notebook_like


def outputs(page: str, text: str) -> list[str] | None:
    """The output of each code cell of ``page`` (made from ``text``), in order."""
    found = _code_segments(page, text)
    if found is None:
        return None
    cut = found[3]
    return [cut[i][2] for i in sorted(cut)]


def splice(old_page: str, old_text: str, new_page: str, new_text: str) -> str | None:
    """``new_page`` (made from ``new_text`` without executing it) with the outputs and
    footer of ``old_page`` (made by executing ``old_text``); None if they do not fit."""
    old = _code_segments(old_page, old_text)
    new = _code_segments(new_page, new_text)
    if old is None or new is None or len(old[3]) != len(new[3]):
        return None
    runs = [old[3][i][2] for i in sorted(old[3])]
    head, segments, _, cut, notebook_like = new
    out = [head]
    for i, (_, segment) in enumerate(segments):
        if i in cut:
            mark, listing, _ = cut[i]
            segment = _join(mark, listing, runs.pop(0), notebook_like)
        out.append(segment)
    return "".join(out) + old[2]


def quotes_source(page: str, text: str, src: str, warnings: list[dict] = ()) -> bool:
    """Whether a run's outputs say where its code sits: its file name or a line number."""
    found = outputs(page, text)
    if found is None:
        return True  # unknown: take the safe side
    shown = "\n".join(found)
    name = Path(src).name
    return (
        name in shown
        or bool(_LINE_REF.search(shown))
        or any(w.get("file") == src for w in warnings)
    )


def render(section: Path, stem: str, src: Path, gallery_conf: dict, source_md5: str) -> bool:
    """Make the recipe's page in ``section`` (its stored files restored there) again from
    ``src``; False, leaving the page to be generated anew, if it cannot be done."""
    import hashlib

    from sphinx_gallery.gen_rst import generate_file_rst

    from . import layout

    page, copy = layout.page(section, stem), Path(section) / f"{stem}.py"
    try:
        old_page, old_text = page.read_text("utf-8"), copy.read_text("utf-8")
    except OSError:
        return False
    layout.mark_stale(section, stem)
    conf = dict(gallery_conf, plot_gallery=False)
    generate_file_rst(src.name, str(section), str(src.parent), conf)
    if hashlib.md5(copy.read_bytes()).hexdigest() != source_md5:
        return False  # saved again since the plan: its key may be another one
    new_text = copy.read_text("utf-8")
    spliced = splice(old_page, old_text, page.read_text("utf-8"), new_text)
    if spliced is None:
        return False
    page.write_text(spliced, encoding="utf-8")
    layout.mark_current(section, stem)
    return True
