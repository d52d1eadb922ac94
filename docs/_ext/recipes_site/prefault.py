"""Copy, ahead of time, the warm parent's pages that a recipe process is about to write.

A recipe process is a fork of the warm parent: it shares the parent's memory
until it writes to it, and its first write to each page costs a fault and a
copy of the page. Running sphinx-gallery and ``torch.compile`` writes to a few
thousand of the parent's pages (about 7,000, 28 MB, for a small compile: some
30 ms here, paid again by every recipe process).

The next recipe's process is forked while the current one runs, and waits for
its recipe. Meanwhile it copies the pages that a recipe of the same kind
("plain", or "compile" for one that calls the compiler) wrote, so that its
recipe does not wait for them. Which pages those are is learned once per warm
parent by a scout process that runs a small recipe of each kind and lists
the pages it no longer shares (:func:`written_pages`). A page is copied ahead
only while it is still shared with the parent, and the copying stops as soon
as the recipe arrives. The pages copied are pages a recipe of that kind
writes anyway, so the memory a recipe is seen using barely changes.

Linux only (``/proc/self/pagemap``); elsewhere nothing is copied ahead.
"""

from __future__ import annotations

import array
import bisect
import ctypes
import json
import os
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_PRESENT = 1 << 63
_EXCLUSIVE = 1 << 56  # mapped by this process only: written since the fork, or new
CHUNK = 256  # pages copied between two looks for the arriving recipe
LARGEST = 1 << 30  # larger mappings are reserved address space, not Python's heaps


def _mappings(maps: str = "/proc/self/maps") -> list[tuple[int, int]]:
    """The private, writable, anonymous mappings (the heaps): where Python objects live."""
    found = []
    with open(maps) as f:
        for line in f:
            fields = line.split()
            perms = fields[1]
            name = fields[5] if len(fields) > 5 else ""
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            heap = perms.startswith("rw") and perms[3] == "p" and name in ("", "[heap]")
            if heap and hi - lo <= LARGEST:
                found.append((lo, hi))
    return found


def _flags(pagemap, lo: int, hi: int) -> array.array:
    """One 64-bit word per page from ``lo`` to ``hi`` (see the kernel's pagemap docs)."""
    pagemap.seek(lo // PAGE * 8)
    flags = array.array("Q")
    flags.frombytes(pagemap.read((hi - lo) // PAGE * 8))
    return flags


def written_pages() -> list[int]:
    """Addresses of the heap pages this process holds alone: those it wrote since it
    was forked (or allocated itself)."""
    pages = []
    with open("/proc/self/pagemap", "rb") as pagemap:
        for lo, hi in _mappings():
            for i, flags in enumerate(_flags(pagemap, lo, hi)):
                if flags & _PRESENT and flags & _EXCLUSIVE:
                    pages.append(lo + i * PAGE)
    return pages


def save(path: Path | str, learned: dict[str, list[int]]) -> None:
    """Write what the scout learned, whole or not at all."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(learned))
    os.replace(tmp, path)


def _shared(pages: list[int]) -> list[int]:
    """Those of ``pages`` (sorted) that lie in this process's heaps and are still shared."""
    keep = []
    with open("/proc/self/pagemap", "rb") as pagemap:
        for lo, hi in _mappings():
            inside = pages[bisect.bisect_left(pages, lo) : bisect.bisect_left(pages, hi)]
            if not inside:
                continue
            first = inside[0]
            flags = _flags(pagemap, first, inside[-1] + PAGE)
            for p in inside:
                f = flags[(p - first) // PAGE]
                if f & _PRESENT and not f & _EXCLUSIVE:
                    keep.append(p)
    return keep


def copy_ahead(path: Path | str, kind: str, arrived) -> int:
    """Copy the pages a recipe of ``kind`` wrote, as learned in ``path``, until
    ``arrived()`` says the recipe is here; return how many were copied."""
    try:
        learned = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return 0
    # What any recipe writes, where nothing was learned of compiling (none on a GPU host).
    pages = learned.get(kind) or learned.get("plain") or []
    if arrived():
        return 0
    pages = _shared(sorted(pages))
    byte = ctypes.c_ubyte.from_address
    done = 0
    for start in range(0, len(pages), CHUNK):
        if arrived():
            break
        for page in pages[start : start + CHUNK]:
            b = byte(page)
            b.value = b.value  # a write of what is there: the page becomes this process's
        done += len(pages[start : start + CHUNK])
    return done
