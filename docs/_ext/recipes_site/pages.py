"""Annotate generated recipe pages with what the build knows about each run."""

from __future__ import annotations

import re

from . import records, titles

# The comment annotate_text leaves after the banner: which source line comes next
# (:mod:`sourcemap` reads it; it imports this module, never the other way round).
NEXT_LINE = "recipe-source-line"

_LABEL = re.compile(r"^\.\. _sphx_glr_(?!download_)\S*:\s*$")
_GENERATED = ".. GENERATED FROM PYTHON SOURCE LINES"
_DOWNLOAD = re.compile(r"^\.\. _sphx_glr_download_", re.M)
# sphinx-gallery's own figure: the growth of memory during the run. The page
# shows one figure, the peak (see :func:`footer`), so this line goes.
_ESTIMATED = re.compile(r"^\*\*Estimated memory usage:\*\*[^\n]*\n\n?", re.M)


def _fmt_seconds(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds:.2f} s"
    return f"{seconds:.1f} s" if seconds < 60 else f"{int(seconds // 60)} min {seconds % 60:.0f} s"


def banner(record: dict) -> str:
    """reST shown under a recipe's title: how it was verified, or why it was not."""
    status = record.get("status")
    if status == "executed":
        return (
            ".. rst-class:: recipe-verified\n\n"
            f"**Verified** {record['date']} with PyTorch {record['torch']} on "
            f"{record['device']}, in {_fmt_seconds(record['seconds'])}.\n"
        )
    if status == "skipped":
        return (
            ".. admonition:: Not executed in this build\n   :class: warning recipe-not-executed\n\n"
            f"   This recipe {record['reason']}, which this build did not have. "
            "Its code is shown without output.\n"
        )
    if status == "needs-cuda":
        return (
            ".. admonition:: Needs CUDA\n   :class: warning recipe-not-executed\n\n"
            "   This recipe uses a CUDA GPU and this build ran without one, so it was "
            "not executed to the end. The error it stopped at is shown below.\n"
        )
    if status == "not-run":
        return (
            ".. admonition:: Not executed in this build\n   :class: note recipe-not-executed\n\n"
            f"   {record['reason'][0].upper()}{record['reason'][1:]}. "
            "Its code is shown without output.\n"
        )
    error = record.get("error") or {}
    where = f" at line {error['line']}" if error.get("line") else ""
    what = {
        "timed-out": "ran past its time limit",
        "crashed": "crashed",
    }.get(status, "failed")
    text = (
        ".. error::\n\n"
        f"   This recipe {what} in this build{where}: ``{_literal(error.get('message', ''))}``\n"
    )
    printed = (record.get("printed") or "").rstrip()
    if printed.strip():
        body = "\n".join("      " + line for line in printed.splitlines())
        text += f"\n   Before the end, the cell that {what} printed:\n\n   ::\n\n{body}\n"
    return text


def _literal(text: str) -> str:
    """Text that is safe inside an inline literal on one line."""
    return " ".join(text.split()).replace("``", "` `") or "no message"


def footer(record: dict) -> str:
    """One memory figure: the peak memory of the recipe's processes (:mod:`.memory`)."""
    if record.get("status") not in ("executed", "failed", "timed-out", "needs-cuda", "crashed"):
        return ""
    if not record.get("peak_rss_mb"):
        return ""
    cuda = (
        f", and {record['peak_cuda_mb']:.0f} MB of CUDA memory allocated"
        if record.get("peak_cuda_mb")
        else ""
    )
    return (
        ".. rst-class:: sphx-glr-timing recipe-memory\n\n"
        f"   **Peak memory:** {record['peak_rss_mb']:.0f} MB for the recipe's processes "
        f"(PyTorch included; shared pages counted once){cuda}\n\n"
    )


def _under_title(lines: list[str], record: dict) -> list[str]:
    """``lines`` with the banner under the recipe's title, wherever and however it is
    written (:mod:`titles`); a title sphinx-gallery reads without an underline gets
    one, so that the page has a title for the table of contents and search."""
    label = next((i for i, ln in enumerate(lines) if _LABEL.match(ln)), None)
    if label is None:
        return lines
    start = label + 2  # the docstring's first line; it is the recipe's line 1
    stop = next((i for i in range(start, len(lines)) if lines[i].startswith(_GENERATED)),
                len(lines))  # fmt: skip
    found = titles.find("\n".join(lines[start:stop]))
    if found is None:
        return lines
    end = start + found.end
    added = []
    if not found.underlined:
        added = ["=" * max(4, column_width(lines[end]))]
    following = found.end + 2  # the recipe's line that comes after the title
    mark = [*added, "", *banner(record).split("\n"), f".. {NEXT_LINE} {following}", ""]
    return lines[: end + 1] + mark + lines[end + 1 :]


def column_width(text: str) -> int:
    """Width of ``text`` as docutils measures a title (East Asian wide characters count 2)."""
    from docutils.utils import column_width as docutils_width

    return docutils_width(text)


def annotate_text(text: str, record: dict) -> str:
    """The page as readers see it: the banner under the title, one memory figure.

    The banner shifts the lines below it, so a comment after it says which
    source line comes next (:mod:`sourcemap` reads it to report problems in
    the recipe's text at the recipe's own line).
    """
    text = "\n".join(_under_title(text.split("\n"), record))
    text = _ESTIMATED.sub("", text)
    extra = footer(record)
    if extra:
        text = _DOWNLOAD.sub(lambda m: extra + m[0], text, count=1)
    return text


def annotate(app, docname: str, source: list[str]) -> None:
    """Sphinx ``source-read`` handler for generated recipe pages."""
    entry = records.recipe_entry(app.config.sphinx_gallery_conf, docname)
    if entry is None:
        return
    path = records.record_path(entry)
    record = records.read_json(path)
    if record is None:
        return
    app.env.note_dependency(str(path))
    source[0] = annotate_text(source[0], record)
