"""Report problems in a recipe's text at the recipe's own file and line.

docutils reads the page sphinx-gallery generated (``docs/recipes/x.rst``), so
its complaints ("Unexpected indentation") name a file that is overwritten on
every build. sphinx-gallery marks each block of that page with the source
lines it came from (``.. GENERATED FROM PYTHON SOURCE LINES 12-20``); a
filter on Sphinx's warning handler uses the marks to rewrite each message's
location to ``recipes/x.py:<line>`` and keeps the problem for the summary.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from . import pages, records

_MARK = re.compile(r"^\.\. GENERATED FROM PYTHON SOURCE LINES (\d+)-(\d+)\s*$")
_NEXT = re.compile(rf"^\.\. {pages.NEXT_LINE} (\d+)\s*$")
_LABEL = re.compile(r"^\.\. _sphx_glr_\S+:\s*$")
_LOCATION = re.compile(r"^(?P<path>.+\.rst):(?P<line>\d+)$")
_found: dict[int, list[str]] = {}  # id(app) -> problems, as "file:line: message"


def shown_path(path: str) -> str:
    """``recipes/x.py`` rather than an absolute path, when it is below the current folder."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def source_line(rst_lines: list[str], line: int) -> int | None:
    """The source line of line ``line`` (1-based) of a generated page, or None.

    Below a mark (sphinx-gallery's ``GENERATED FROM PYTHON SOURCE LINES a-b``
    or the annotation's ``recipe-source-line a``) a blank line follows, then
    the block's text line by line from source line ``a``. Above every mark is
    the docstring, which starts two lines below the page's label.
    """
    for number in range(min(line, len(rst_lines)), 0, -1):
        text = rst_lines[number - 1]
        m = _MARK.match(text) or _NEXT.match(text)
        if m:
            return int(m[1]) + line - (number + 2)
        if _LABEL.match(text):
            return max(1, line - number - 1)
    return None


class RecipeLocations(logging.Filter):
    """Rewrites ``docs/recipes/.../x.rst:N`` locations to the recipe's source line."""

    def __init__(self, app, pages: dict[str, dict]):
        super().__init__()
        self.app = app
        self.pages = pages  # generated page (absolute) -> its recipe's manifest entry
        self.lines: dict[str, list[str]] = {}

    def _read(self, page: str, entry: dict) -> list[str]:
        """The page as docutils read it: annotated by :func:`pages.annotate_text`."""
        if page not in self.lines:
            text = Path(page).read_text(encoding="utf-8")
            record = records.read(entry)
            self.lines[page] = (pages.annotate_text(text, record) if record else text).split("\n")
        return self.lines[page]

    def _recipe_of(self, arg, args: tuple):
        """A generated page named in a message, as its recipe's file and the line of the
        label the message names (the first argument), if it holds it."""
        if not isinstance(arg, (str, os.PathLike)) or not str(arg).endswith(".rst"):
            return arg
        page = str(Path(arg).resolve())
        entry = self.pages.get(page)
        if entry is None:
            return arg
        lines = self._read(page, entry)
        label = f".. _{args[0]}:" if args and isinstance(args[0], str) else None
        at = next((i for i, ln in enumerate(lines) if label and ln.strip() == label), None)
        line = source_line(lines, at + 1) if at is not None else None
        return f"{shown_path(entry['src'])}:{line or 1}"

    def filter(self, record: logging.LogRecord) -> bool:
        location = getattr(record, "location", None)
        m = _LOCATION.match(location) if isinstance(location, str) else None
        page = m and str(Path(m["path"]).resolve())
        entry = page and self.pages.get(page)
        if not entry:
            return True
        src = entry["src"]
        line = source_line(self._read(page, entry), int(m["line"])) or 1
        record.location = f"{shown_path(src)}:{line}"
        if isinstance(record.args, tuple):  # "other instance in docs/recipes/b.rst"
            record.args = tuple(self._recipe_of(arg, record.args) for arg in record.args)
        message = record.msg % record.args if record.args else record.msg
        _found.setdefault(id(self.app), []).append(f"{record.location}: {message}")
        return True


def install(app, manifest: dict) -> None:
    """Attach the filter to the handlers of Sphinx's logger (after its own filters)."""
    pages = {
        str((Path(e["target_dir"]) / f"{e['stem']}.rst").resolve()): e
        for e in manifest["recipes"].values()
        if e.get("fate") != "invalid"
    }
    rewrite = RecipeLocations(app, pages)
    for handler in logging.getLogger("sphinx").handlers:
        handler.addFilter(rewrite)


def problems(app) -> list[str]:
    return list(dict.fromkeys(_found.get(id(app), [])))
