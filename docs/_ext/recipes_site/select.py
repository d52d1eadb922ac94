"""Which recipes a build executes: by name (``RECIPE=``) and by shard (``SHARD=i/N``)."""

from __future__ import annotations

import fnmatch
import hashlib
import heapq
import importlib.metadata

DEFAULT_SECONDS = 30.0


def matches(name: str, relpath: str, patterns: str) -> bool:
    """True if a recipe matches one of the comma-separated globs in ``patterns``.

    A glob is tried against the recipe's name (``graph_breaks``), its file name
    (``graph_breaks.py``) and its path below ``recipes/`` (``compile/graph_breaks.py``).
    An empty ``patterns`` matches everything.
    """
    globs = [g.strip() for g in patterns.split(",") if g.strip()]
    if not globs:
        return True
    candidates = (name, f"{name}.py", relpath, relpath.removesuffix(".py"))
    return any(fnmatch.fnmatchcase(c, g) for g in globs for c in candidates)


def parse_shard(text: str) -> tuple[int, int] | None:
    """``"2/4"`` -> ``(2, 4)``; empty -> None. Shards count from 1."""
    if not text:
        return None
    try:
        index, count = (int(p) for p in text.split("/"))
    except ValueError:
        raise ValueError(f"SHARD must look like i/N, got {text!r}") from None
    if not 1 <= index <= count:
        raise ValueError(f"SHARD {text!r}: i must be between 1 and N")
    return index, count


def assign_shards(durations: dict[str, float | None], count: int) -> list[list[str]]:
    """Split recipes into ``count`` shards of balanced total time, longest first.

    Unknown durations (None) count as :data:`DEFAULT_SECONDS`. Ties are broken
    by name so that every shard of a matrix computes the same assignment.
    """
    items = sorted(
        ((DEFAULT_SECONDS if d is None else float(d), name) for name, d in durations.items()),
        key=lambda item: (-item[0], item[1]),
    )
    heap = [(0.0, i) for i in range(count)]
    shards: list[list[str]] = [[] for _ in range(count)]
    for seconds, name in items:
        total, index = heapq.heappop(heap)
        shards[index].append(name)
        heapq.heappush(heap, (total + seconds, index))
    return [sorted(s) for s in shards]


def torch_release() -> str:
    """The installed torch's version without its build tag: ``2.13.0+cpu`` -> ``2.13.0``.

    CPU and CUDA builds of one release run the same recipe code; the device
    kind is a part of the key of its own.
    """
    try:
        return importlib.metadata.version("torch").split("+")[0]
    except importlib.metadata.PackageNotFoundError:
        return "none"


def staleness_key(
    rel: str,
    code: str,
    torch_version: str,
    device: str,
    requires: list[str],
    settings: str = "",
) -> str:
    """What a recipe's output depends on: the key of its output in the store.

    ``rel`` is the recipe's path below ``recipes/`` (pages name their images by
    it), ``code`` the hash of its code cells and declarations
    (:func:`sourcekey.code_key`: not its prose), ``device`` the device kind
    (``cpu`` or ``cuda``), and ``settings`` the site settings that shape every
    generated page and notebook (such as the notebooks' first cell).
    """
    parts = [rel, code, torch_version, device, ",".join(sorted(requires)), settings]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]
