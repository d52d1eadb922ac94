"""What a build does with one recipe: the whole decision, as a pure function.

The planner gathers the facts (:class:`Facts`) and :func:`decide` returns the
recipe's :class:`Fate`. Nothing here touches a file, so the whole table is
unit-tested in ``tests/test_units.py``.

========== ============================================================
fate       what happens
========== ============================================================
execute    the recipe runs in this build
cached     its output in ``docs/recipes`` is current: nothing runs
restore    the store holds output (or a skip) for its key: copied in
rerender   the store holds output for its code, made from other prose:
           copied in, and the page made again from the new text
skipped    the host lacks what it declares: code only, with a note
failed     its last run, with this very key, failed: re-reported
not-run    not selected and no current output: code only, with a note
========== ============================================================

A recipe whose last run failed is never "cached": it runs again when it is
selected, and is reported again otherwise, until its key changes and it passes.
"""

from __future__ import annotations

from dataclasses import dataclass

# Outcomes of a run that must not be reused as if the recipe worked.
FAILURES = frozenset({"failed", "timed-out", "crashed", "needs-cuda"})


@dataclass(frozen=True)
class Facts:
    key: str  # the recipe's staleness key in this build
    executing: bool = True  # False for html-noplot and the merge of shards
    selected: bool = True  # by RECIPE=, by the shard, or by the plan
    unmet: tuple[str, ...] = ()  # why this host cannot run it (checked only when executing)
    old_status: str | None = None  # the record in docs/recipes, if any
    old_key: str | None = None
    output_current: bool = False  # sphinx-gallery would reuse the page as it is
    stored: str | None = None  # status of the store's entry for ``key``, if any
    old_same_text: bool = True  # the record in docs/recipes is of this very text
    stored_same_text: bool = True  # and the store's entry


@dataclass(frozen=True)
class Fate:
    name: str
    reason: str = ""


NOT_SELECTED = "not selected for execution in this build"
NOT_EXECUTING = "built without executing recipes"


def decide(f: Facts) -> Fate:
    same_key = f.old_key == f.key
    if f.executing and f.unmet:
        return Fate("skipped", "; ".join(f.unmet))
    if same_key and f.old_status == "executed" and f.output_current and f.old_same_text:
        return Fate("cached")
    if f.stored == "executed":
        return Fate("restore" if f.stored_same_text else "rerender")
    # A host that executes checks requirements itself; a stored skip serves the others.
    if f.stored == "skipped" and not f.executing:
        return Fate("restore")
    if f.executing and f.selected:
        return Fate("execute")
    if same_key and f.old_status in FAILURES:
        return Fate("failed")
    return Fate("not-run", NOT_SELECTED if f.executing else NOT_EXECUTING)
