"""sphinx-gallery's files on disk: the one place that knows their names.

For a recipe ``recipes/<section>/<stem>.py``, sphinx-gallery 0.22 writes into
the generated section folder ``docs/recipes/<section>/``:

``<stem>.rst``            the page
``<stem>.py``             the copy offered for download (its md5 decides reuse)
``<stem>.py.md5``         md5 of that copy, written once the recipe executed
``<stem>.ipynb``          the notebook; ``<stem>.zip`` holds both downloads
``<stem>.codeobj.json``   names used by the code (backreferences)
``<stem>.cost.json``      the last measured run time and memory
``images/sphx_glr_<stem>_<NNN>.<ext>``            figures, numbered from 001,
``images/sphx_glr_<stem>_<NNN>_<a>_<bb>x.<ext>``   with their high-DPI copies
``images/thumb/sphx_glr_<stem>_thumb.<ext>``      the card thumbnail (png, svg or gif)

and the site adds ``<stem>.record.json``, the recipe's record. Every other
module asks this one, so that a rename in sphinx-gallery is one edit here.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

RECORD = ".record.json"
MD5 = ".py.md5"
PAGE_SUFFIXES = (".rst", ".py", MD5, ".ipynb", ".zip", ".codeobj.json", ".cost.json")


def _figure(stem: str) -> re.Pattern[str]:
    # The number is what tells ``compile_001.png`` (recipe ``compile``) from
    # ``compile_cache_001.png`` (recipe ``compile_cache``).
    return re.compile(rf"sphx_glr_{re.escape(stem)}_\d{{3,}}(?:_\d+_\d+x)?\.[A-Za-z0-9]+")


def _thumb(stem: str) -> re.Pattern[str]:
    return re.compile(rf"sphx_glr_{re.escape(stem)}_thumb\.[A-Za-z0-9]+")


def page(section: Path | str, stem: str) -> Path:
    return Path(section) / f"{stem}.rst"


def record(section: Path | str, stem: str) -> Path:
    return Path(section) / f"{stem}{RECORD}"


def md5(section: Path | str, stem: str) -> Path:
    return Path(section) / f"{stem}{MD5}"


def figures(section: Path | str, stem: str) -> list[Path]:
    """The recipe's figures (not its thumbnail), in name order."""
    folder = Path(section) / "images"
    pattern = _figure(stem)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and pattern.fullmatch(p.name))


def thumbnail(section: Path | str, stem: str) -> Path | None:
    """The card thumbnail sphinx-gallery wrote for the recipe, whatever its format."""
    folder = Path(section) / "images" / "thumb"
    pattern = _thumb(stem)
    if not folder.is_dir():
        return None
    found = sorted(p for p in folder.iterdir() if p.is_file() and pattern.fullmatch(p.name))
    return found[0] if found else None


def files(section: Path | str, stem: str, with_record: bool = True) -> list[Path]:
    """Every file that belongs to the recipe, paths inside ``section``."""
    section = Path(section)
    suffixes = PAGE_SUFFIXES + ((RECORD,) if with_record else ())
    found = [section / f"{stem}{s}" for s in suffixes if (section / f"{stem}{s}").is_file()]
    found += figures(section, stem)
    thumb = thumbnail(section, stem)
    return found + ([thumb] if thumb else [])


def remove(section: Path | str, stem: str, keep_record: bool = False) -> None:
    for path in files(section, stem, with_record=not keep_record):
        path.unlink(missing_ok=True)


# Thumbnails removed before their recipe ran again: path -> (bytes, atime, mtime).
_removed_thumbnails: dict[Path, tuple[bytes, int, int]] = {}


def remove_images(section: Path | str, stem: str) -> None:
    """Before a recipe runs again: a run that draws fewer figures (or none) must not
    leave the old ones, or the old thumbnail, behind. The thumbnail is remembered,
    for :func:`keep_thumbnail_time`."""
    thumb = thumbnail(section, stem)
    if thumb is not None:
        with contextlib.suppress(OSError):
            st = thumb.stat()
            # Removed again (its author saved it while it ran): the first one counts.
            before = (thumb.read_bytes(), st.st_atime_ns, st.st_mtime_ns)
            _removed_thumbnails.setdefault(thumb, before)
    for path in figures(section, stem) + ([thumb] if thumb else []):
        path.unlink(missing_ok=True)


def keep_thumbnail_time(section: Path | str, stem: str) -> None:
    """After the run: a thumbnail drawn again with the same bytes gets its old time
    back. The pages that show it (the landing page, its section's) depend on its
    time, and would otherwise be read and written again for nothing."""
    thumb = thumbnail(section, stem)
    before = _removed_thumbnails.pop(thumb, None) if thumb else None
    if before is not None:
        data, atime, mtime = before
        with contextlib.suppress(OSError):
            if thumb.read_bytes() == data:
                os.utime(thumb, ns=(atime, mtime))


def is_current(section: Path | str, stem: str) -> bool:
    """True when sphinx-gallery will reuse the page instead of generating it again."""
    from sphinx_gallery.gen_rst import md5sum_is_current

    copy = Path(section) / f"{stem}.py"
    return md5(section, stem).is_file() and copy.is_file() and md5sum_is_current(copy, mode="t")


def mark_current(section: Path | str, stem: str) -> None:
    """Make sphinx-gallery keep the page it finds (one a recipe wrote, even if it failed)."""
    from sphinx_gallery.utils import get_md5sum

    copy = Path(section) / f"{stem}.py"
    md5(section, stem).write_text(get_md5sum(copy, mode="t"), encoding="utf-8")


def mark_stale(section: Path | str, stem: str) -> None:
    """Make sphinx-gallery generate the page again (with or without executing it)."""
    md5(section, stem).unlink(missing_ok=True)
