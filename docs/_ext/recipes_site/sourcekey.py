"""The part of a recipe's key that comes from its file: what can change its output.

A recipe's output depends on the code it executes, not on the prose around
it. :func:`code_key` hashes exactly what sphinx-gallery executes and what
shapes the page it makes:

* the code cells, split as sphinx-gallery splits them (so a cell boundary
  that moves is a change), each reduced to its Python tokens: comments,
  blank lines and the spacing inside a line are left out, because the
  interpreter never sees them;
* every ``# sphinx_gallery_*`` declaration, including those that only shape
  the page (``thumbnail_number``), although they are comments.

Text cells and the docstring are not part of it: editing them re-renders the
page from the stored outputs (:mod:`.rerender`) instead of executing the
recipe. A cell that cannot be tokenized on its own counts as its raw text.

:func:`lines_key` is narrower: the code cells line by line, comments
included, at the lines where they sit. An output that quotes where its code
sits (a line number, a traceback) stays true exactly while it is unchanged.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import re
import tempfile
import tokenize
from pathlib import Path

# sphinx-gallery's own pattern for in-file settings.
_DECLARATION = re.compile(
    r"^[ \t]*#\s*sphinx_gallery_([A-Za-z0-9_]+)[ \t]*=[ \t]*(.+?)[ \t]*$", re.M
)
_SKIPPED = {tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER}


@functools.lru_cache(maxsize=256)  # a build asks for each recipe's blocks more than once
def blocks(text: str) -> tuple:
    """sphinx-gallery's blocks of ``text`` (label, content, first line), as it splits a file."""
    from sphinx_gallery.py_source_parser import split_code_and_text_blocks

    # sphinx-gallery's parser reads a file; give it this very text, not the file on
    # disk, which an author may have saved again since.
    with tempfile.TemporaryDirectory(prefix="recipes-key-") as tmp:
        path = Path(tmp, "recipe.py")
        path.write_text(text, encoding="utf-8")
        _, found = split_code_and_text_blocks(path)
    return tuple(found)


def code_tokens(cell: str) -> list[str]:
    """The tokens the interpreter sees in one code cell (its raw text if it does not tokenize)."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(cell).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return [cell]
    out = []
    for tok in tokens:
        if tok.type in _SKIPPED:
            continue
        out.append("\n" if tok.type == tokenize.NEWLINE else tok.string)
    return out


def declarations(text: str) -> list[str]:
    return [f"{m[1]}={m[2]}" for m in _DECLARATION.finditer(text)]


def code_key(text: str) -> str:
    """A hash of the code cells and declarations of a recipe's ``text``."""
    cells = [code_tokens(b.content) for b in blocks(text) if b.type == "code"]
    payload = json.dumps({"cells": cells, "declarations": declarations(text)})
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def lines_key(text: str) -> str:
    """A hash of every code cell's text and the line it starts at."""
    cells = [(b.lineno, b.content.rstrip()) for b in blocks(text) if b.type == "code"]
    return hashlib.sha256(json.dumps(cells).encode()).hexdigest()[:32]
