"""The title of a recipe, as sphinx-gallery reads it: the one owner of that fact.

sphinx-gallery (``gen_rst.extract_intro_and_title``, at the version we pin)
takes the first paragraph of the docstring that does not start with ``.. ``
(so a ``.. meta::`` block or a comment may come first) and, in it, the first
line that is not an adornment of four or more repeated punctuation marks (so
an overline is skipped, and any character may underline). A title without an
underline is still a title to it. :func:`find` gives that title and where it
sits, and everything that needs a recipe's title asks it: the validation of a
recipe, the banner under the title, the cards, OpenGraph and search. A title
that docutils would complain about (an underline too short) is a problem in
the recipe's text, reported at its line, never a reason not to execute.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# sphinx-gallery's test for a line that is not the title (an adornment).
_NOT_TITLE = re.compile(r"^([\W _])\1{3,}")
# A line docutils takes as an adornment: one punctuation character, repeated.
_ADORNMENT = re.compile(r"""^([!-/:-@\[-`{-~])\1*\s*$""")


@dataclass(frozen=True)
class Title:
    text: str  # as sphinx-gallery shows it (cards, links)
    line: int  # index of the title's line in the docstring's lines
    end: int  # index of its underline, or of the title's line when it has none

    @property
    def underlined(self) -> bool:
        return self.end > self.line


def find(docstring: str) -> Title | None:
    """The title sphinx-gallery reads in ``docstring``, or None when it finds none."""
    from sphinx_gallery.gen_rst import extract_intro_and_title

    try:
        _, text = extract_intro_and_title("recipe", docstring)
    except Exception:  # sphinx-gallery's own "no title" error
        return None
    stripped = docstring.lstrip()
    line = docstring[: len(docstring) - len(stripped)].count("\n")
    for paragraph in stripped.split("\n\n"):
        if paragraph and not paragraph.startswith(".. "):
            lines = paragraph.split("\n")
            for k, candidate in enumerate(lines):
                if candidate and not _NOT_TITLE.match(candidate):
                    below = lines[k + 1] if k + 1 < len(lines) else ""
                    end = line + k + (1 if below and _ADORNMENT.match(below) else 0)
                    return Title(text, line + k, end)
            return None
        line += paragraph.count("\n") + 2
    return None
