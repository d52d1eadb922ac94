"""What a generated page shows of a recipe's output, and how much of it.

sphinx-gallery writes each cell's captured output as a literal block after
``.. rst-class:: sphx-glr-script-out``. A cell that prints megabytes would
make a page of megabytes, so :func:`bound_text` keeps the first part of each
block (at most ``cell_limit`` bytes, and ``page_limit`` for the whole page)
and says below it how much was cut.
"""

from __future__ import annotations

import re
from pathlib import Path

from .meta import format_size

CELL_LIMIT = 200_000  # bytes of output shown per code cell
PAGE_LIMIT = 1_500_000  # bytes of output shown per page
_OUTPUT = ".. rst-class:: sphx-glr-script-out"
_GENERATED = re.compile(r"^\.\. GENERATED FROM PYTHON SOURCE LINES (\d+)-(\d+)")


def has_output(rst: str) -> bool:
    """True when the page shows something the recipe printed or drew."""
    markers = ("sphx-glr-script-out", "sphx-glr-single-img", "sphx-glr-multi-img")
    return any(marker in rst for marker in markers)


def _block_end(lines: list[str], start: int) -> int:
    """Index after the literal block that starts at ``start`` (its directive line)."""
    i = start + 1
    while i < len(lines) and (not lines[i].strip() or lines[i].startswith("    ")):
        i += 1
    # Trailing blank lines belong to what follows.
    while i > start + 1 and not lines[i - 1].strip():
        i -= 1
    return i


def bound_text(rst: str, cell_limit: int = CELL_LIMIT, page_limit: int = PAGE_LIMIT):
    """``(rst, cuts)``: the page with each output block cut to its share, and one
    ``{"line", "shown", "total"}`` (bytes; ``line`` the cell's first source line)
    per block that was cut."""
    lines = rst.split("\n")
    out, cuts, budget, source_line, i = [], [], page_limit, 0, 0
    while i < len(lines):
        m = _GENERATED.match(lines[i])
        if m:
            source_line = int(m[1])
        if lines[i] != _OUTPUT:
            out.append(lines[i])
            i += 1
            continue
        directive = next((j for j in range(i + 1, len(lines)) if lines[j].strip()), len(lines))
        end = _block_end(lines, directive) if directive < len(lines) else len(lines)
        body = lines[directive + 1 : end]
        kept, total = _keep(body, min(cell_limit, budget))
        budget -= sum(len(x.encode()) + 1 for x in kept)
        out += lines[i : directive + 1] + kept
        shown = sum(len(x.encode()) + 1 for x in kept)
        if shown < total:
            cuts.append({"line": source_line, "shown": shown, "total": total})
            out += ["", ".. rst-class:: recipe-output-truncated", "", _note(shown, total)]
        i = end
    return "\n".join(out), cuts


def _keep(body: list[str], limit: int) -> tuple[list[str], int]:
    total = sum(len(x.encode()) + 1 for x in body)
    if total <= limit:
        return body, total
    kept, used = [], 0
    for line in body:
        cost = len(line.encode()) + 1
        if used + cost > limit:
            room = limit - used - 1
            if room > 80:  # a very long line: keep its start
                kept.append(line.encode()[:room].decode(errors="ignore"))
            break
        kept.append(line)
        used += cost
    while kept and not kept[-1].strip():
        kept.pop()
    return kept, total


def _note(shown: int, total: int) -> str:
    return (
        f"**Output truncated:** this cell printed {format_size(total)}; the first "
        f"{format_size(shown)} are shown and {format_size(total - shown)} were cut."
    )


def bound_file(path: Path, cell_limit: int = CELL_LIMIT, page_limit: int = PAGE_LIMIT) -> list:
    """Bound the output on the generated page at ``path`` in place; return the cuts."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return []
    bounded, cuts = bound_text(text, cell_limit, page_limit)
    if cuts:
        path.write_text(bounded, encoding="utf-8")
    return cuts
