"""Pages copied ahead of a recipe (recipes_site.prefault), seen from a forked process.

Each test forks this process, as the warm parent forks a recipe process, and
looks at the child's pages through the same /proc files the module reads.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os

import pytest
from recipes_site import prefault

PAGE = prefault.PAGE

pytestmark = pytest.mark.skipif(
    not os.path.exists("/proc/self/pagemap"), reason="pages are copied ahead on Linux only"
)


def _buffer(pages: int) -> tuple[bytearray, list[int]]:
    """A heap buffer, every page written (present) before the fork; its whole pages."""
    buf = bytearray(os.urandom((pages + 1) * PAGE))
    start = ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf))
    first = -(-start // PAGE) * PAGE
    return buf, [first + i * PAGE for i in range(pages)]


def _in_child(body) -> dict:
    """Run ``body()`` in a forked child; return what it returned (a JSON dict)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(write, json.dumps(body()).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        data = f.read()
    os.waitpid(pid, 0)
    return json.loads(data)


def test_written_pages_are_those_the_process_wrote_since_its_fork():
    buf, pages = _buffer(16)

    def child():
        before = set(prefault.written_pages())
        view = (ctypes.c_char * (len(pages) * PAGE)).from_address(pages[0])
        view[3 * PAGE] = b"x"  # one write into page 3, one into page 10
        view[10 * PAGE + 5] = b"y"
        after = set(prefault.written_pages())
        return {"before": sorted(before & set(pages)), "after": sorted(after & set(pages))}

    seen = _in_child(child)
    assert seen["before"] == []  # all shared with this process just after the fork
    assert seen["after"] == [pages[3], pages[10]]
    assert len(buf) > 0  # alive until here


def test_copy_ahead_copies_the_learned_shared_pages_and_changes_nothing(tmp_path):
    buf, pages = _buffer(600)
    learned = tmp_path / "learned"
    # The learned list may hold pages that are gone or not in a heap: they are skipped.
    prefault.save(learned, {"plain": [*pages, 0x1000, id(None) // PAGE * PAGE]})
    digest = hashlib.sha256(buf).hexdigest()

    def child():
        done = prefault.copy_ahead(learned, "compile", arrived=lambda: False)  # falls back
        written = set(prefault.written_pages()) & set(pages)
        return {"done": done, "written": len(written), "same": hashlib.sha256(buf).hexdigest()}

    seen = _in_child(child)
    assert seen["written"] == len(pages)
    assert seen["done"] >= len(pages)  # its own pages, and perhaps others of this heap
    assert seen["same"] == digest


def test_copy_ahead_stops_when_the_recipe_arrives(tmp_path):
    _, pages = _buffer(3 * prefault.CHUNK)
    learned = tmp_path / "learned"
    prefault.save(learned, {"plain": pages})
    looks = []

    def arrives_after_one_chunk():
        looks.append(1)
        return len(looks) > 2  # the look before any copying, then one per chunk

    def child():
        done = prefault.copy_ahead(learned, "plain", arrived=arrives_after_one_chunk)
        at_once = prefault.copy_ahead(learned, "plain", arrived=lambda: True)
        return {"done": done, "at_once": at_once}

    assert _in_child(child) == {"done": prefault.CHUNK, "at_once": 0}


def test_copy_ahead_without_a_learned_list_copies_nothing(tmp_path):
    assert prefault.copy_ahead(tmp_path / "missing", "plain", arrived=lambda: False) == 0
    (tmp_path / "bad").write_text("{not json")
    assert prefault.copy_ahead(tmp_path / "bad", "plain", arrived=lambda: False) == 0
