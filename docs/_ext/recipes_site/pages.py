"""Annotate generated recipe pages with what the build knows about each run."""

from __future__ import annotations

import re

from . import records

_TITLE = re.compile(r"^(\.\. _sphx_glr_[^\n]*:\n\n+[^\n]+\n=+\n)", re.M)
_DOWNLOAD = re.compile(r"^\.\. _sphx_glr_download_", re.M)


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
    what = "ran past its time limit" if status == "timed-out" else "failed"
    return (
        ".. error::\n\n"
        f"   This recipe {what} in this build{where}: ``{error.get('message', '')}``\n"
    )


def footer(record: dict) -> str:
    if record.get("status") not in ("executed", "failed", "timed-out", "needs-cuda"):
        return ""
    cuda = f", {record['peak_cuda_mb']:.0f} MB CUDA" if record.get("peak_cuda_mb") else ""
    return (
        ".. rst-class:: sphx-glr-timing recipe-memory\n\n"
        f"   **Peak memory:** {record['peak_rss_mb']:.0f} MB CPU (resident){cuda}\n\n"
    )


def annotate_text(text: str, record: dict) -> str:
    text = _TITLE.sub(lambda m: m[1] + "\n" + banner(record) + "\n", text, count=1)
    extra = footer(record)
    if extra:
        text = _DOWNLOAD.sub(lambda m: extra + m[0], text, count=1)
    return text


def annotate(app, docname: str, source: list[str]) -> None:
    """Sphinx ``source-read`` handler for generated recipe pages."""
    entry = records.recipe_entry(app.config.sphinx_gallery_conf, docname)
    if entry is None:
        return
    path = records.record_path(entry["target_dir"], entry["name"])
    record = records.read_json(path)
    if record is None:
        return
    app.env.note_dependency(str(path))
    source[0] = annotate_text(source[0], record)
