"""Unit tests of the extension's pure-Python pieces (no Sphinx build, no torch import)."""

from __future__ import annotations

import os
import re
import types
from pathlib import Path

import pytest
from recipes_site import (
    cards,
    fate,
    images,
    layout,
    meta,
    outcome,
    outputs,
    pages,
    pipeline,
    plan,
    records,
    report,
    rerender,
    select,
    sourcekey,
    sourcemap,
    sourcetree,
    store,
    titles,
)

GOOD = '''"""
A good title
============
**Author:** someone

The summary of the recipe, with ``code``.

.. rubric:: What you will learn
"""

# %%
# Text
# ----

# sphinx_gallery_tags = ["a", "b"]
# sphinx_gallery_requires = ["cuda>=8.0", "gpus>=2", "package:numpy"]
# sphinx_gallery_timeout = 12
# sphinx_gallery_expected_warnings = ["FutureWarning: old"]
# sphinx_gallery_memory_limit = "1.5 GB"
import math

print(math.pi)
'''


def write(tmp_path, text, name="r.py"):
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_read_recipe_reads_declarations(tmp_path):
    m = meta.read_recipe(write(tmp_path, GOOD))
    assert m.title == "A good title"
    assert m.summary == "The summary of the recipe, with code."
    assert m.tags == ("a", "b")
    assert m.timeout == 12
    assert [r.text for r in m.requires] == ["cuda>=8.0", "gpus>=2", "package:numpy"]
    assert m.requires[0].min_capability == (8, 0)
    assert m.requires[1].min_gpus == 2
    assert m.expected_warnings == ("FutureWarning: old",)
    assert m.memory_limit == 1_500_000_000


# Every docstring sphinx-gallery 0.22 reads a title from, and where that title sits.
TITLE_FORMS = {
    "equals": ("Title here\n==========\n\nSummary.", "Title here", 0, 1),
    "stars": ("Title here\n**********\n\nSummary.", "Title here", 0, 1),
    "dashes": ("Title here\n----------", "Title here", 0, 1),
    "hashes": ("Title here\n##########", "Title here", 0, 1),
    "overline": ("==========\nTitle here\n==========\n\nSummary.", "Title here", 1, 2),
    "meta first": (
        ".. meta::\n   :description: words\n\nTitle here\n==========",
        "Title here",
        3,
        4,
    ),
    "comment first": (".. a comment\n\nTitle here\n==========", "Title here", 2, 3),
    "one column short": ("Title here\n=========", "Title here", 0, 1),
    "no underline": ("Title here\n\nSummary.", "Title here", 0, 0),
    "leading newline": ("\nTitle here\n==========", "Title here", 1, 2),
    "wide": ("Torch 入門です\n=======", "Torch 入門です", 0, 1),
}


@pytest.mark.parametrize("form", TITLE_FORMS)
def test_titles_are_found_where_sphinx_gallery_finds_them(form):
    from sphinx_gallery.gen_rst import extract_intro_and_title

    docstring, text, line, end = TITLE_FORMS[form]
    found = titles.find(docstring)
    assert (found.text, found.line, found.end) == (text, line, end)
    assert found.text == extract_intro_and_title("x.py", docstring)[1]


@pytest.mark.parametrize("form", TITLE_FORMS)
def test_every_title_form_is_a_valid_recipe_with_its_banner(tmp_path, form):
    docstring = TITLE_FORMS[form][0]
    path = write(tmp_path, f'"""\n{docstring}\n"""\n\nprint(1)\n')
    assert meta.read_recipe(path).title == TITLE_FORMS[form][1]
    marker = ".. GENERATED FROM PYTHON SOURCE LINES 5-6"
    page = f".. _sphx_glr_recipes_x.py:\n\n\n{docstring}\n\n{marker}\n"
    record = {"status": "executed", "date": "D", "torch": "T", "device": "cpu", "seconds": 1}
    text = pages.annotate_text(page, record)
    assert text.count("**Verified**") == 1
    lines = text.split("\n")
    title_at = lines.index(TITLE_FORMS[form][1])
    assert re.fullmatch(r"(\S)\1+", lines[title_at + 1]), "the title has no underline"
    assert text.index(TITLE_FORMS[form][1]) < text.index("**Verified**")


@pytest.mark.parametrize(
    "text, size",
    [("4GB", 4 * 10**9), ("512 MiB", 512 * 2**20), ("1.5 gb", 1_500_000_000), (1024, 1024)],
)
def test_sizes(text, size):
    assert meta.parse_size(text) == size


@pytest.mark.parametrize(
    "text, line, message",
    [
        (b'"""\nT\n=\n"""\nprint("\xff")\n', 5, "not valid UTF-8"),
        ('"""\nTitle\n=====\n"""\nx = (\n', 5, "SyntaxError"),
        ("import torch\n", 1, "no title docstring"),
        ('"""\n.. only a comment\n"""\nx = 1\n', 1, "has no title"),
        ('"""\n=====\n"""\nx = 1\n', 1, "has no title"),
        ('"""\nT\n===\n"""\n# sphinx_gallery_tags = ["two words"]\nx = 1\n', 5, "without spaces"),
        ('"""\nT\n===\n"""\n# sphinx_gallery_memory_limit = "lots"\nx = 1\n', 5, "a size"),
        ('"""\nT\n===\n"""\n# sphinx_gallery_timeout = -1\nx = 1\n', 5, "positive number"),
        (
            '"""\nT\n===\n"""\n# sphinx_gallery_requires = ["tpu"]\nx = 1\n',
            5,
            "unknown requirement",
        ),
        ('"""\nT\n===\n"""\n# sphinx_gallery_tags = [oops]\nx = 1\n', 5, "not a Python literal"),
        (
            '"""\nT\n===\n"""\n\n# sphinx_gallery_tags = ["a"]\n\n# %%\n# text\nx = 1\n',
            6,
            "must sit in a code cell",
        ),
    ],
)
def test_bad_recipes_name_file_and_line(tmp_path, text, line, message):
    path = write(tmp_path, text)
    with pytest.raises(meta.RecipeError) as info:
        meta.read_recipe(path)
    assert info.value.line == line
    assert message in info.value.message
    assert str(info.value).startswith(f"{path}:{line}: ")


def test_unmet_requirements():
    recipe = meta.RecipeMeta(
        path=meta.Path("x.py"),
        title="x",
        requires=(
            meta.parse_requirement("cuda>=9.0"),
            meta.parse_requirement("gpus>=2"),
            meta.parse_requirement("package:no_such_package_anywhere"),
        ),
    )
    cpu = meta.Host()
    assert meta.unmet(recipe, cpu) == [
        "needs CUDA (cuda>=9.0)",
        "needs CUDA (gpus>=2)",
        "needs the Python package no_such_package_anywhere",
    ]
    old_gpu = meta.Host(cuda_available=True, capability=(8, 0), gpu_count=1, gpu_name="g")
    assert meta.unmet(recipe, old_gpu)[:2] == [
        "needs CUDA compute capability 9.0 or newer (this GPU has 8.0)",
        "needs 2 GPUs (this machine has 1)",
    ]
    big = meta.Host(cuda_available=True, capability=(9, 0), gpu_count=8, gpu_name="g")
    assert meta.unmet(recipe, big) == ["needs the Python package no_such_package_anywhere"]


def test_find_recipes_skips_helper_modules(tmp_path):
    write(tmp_path, "x = 1\n", "_helper.py")
    write(tmp_path, GOOD, "real.py")
    assert [p.name for p in meta.find_recipes(tmp_path)] == ["real.py"]


@pytest.mark.parametrize(
    "patterns, expected",
    [
        ("", True),
        ("graph_breaks", True),
        ("compile/*", True),
        ("graph_breaks.py", True),
        ("*breaks*", True),
        ("other, graph_*", True),
        ("perf*", False),
        ("compile/x", False),
    ],
)
def test_recipe_selection_globs(patterns, expected):
    assert select.matches("graph_breaks", "compile/graph_breaks.py", patterns) is expected


def test_parse_shard():
    assert select.parse_shard("") is None
    assert select.parse_shard("2/4") == (2, 4)
    for bad in ("0/4", "5/4", "x", "1-2"):
        with pytest.raises(ValueError):
            select.parse_shard(bad)


def test_shards_are_balanced_and_complete():
    durations = {f"r{i}": float(s) for i, s in enumerate([20, 18, 15, 9, 8, 8, 5, 4, 3, 2, 2, 1])}
    durations["new"] = None  # unknown: counted as the default
    for n in (2, 3, 4):
        shards = select.assign_shards(durations, n)
        assert sorted(sum(shards, [])) == sorted(durations)
        total = sum(select.DEFAULT_SECONDS if d is None else d for d in durations.values())
        longest = max(
            sum(select.DEFAULT_SECONDS if durations[x] is None else durations[x] for x in s)
            for s in shards
        )
        assert longest <= 1.15 * total / n or longest == select.DEFAULT_SECONDS
    assert select.assign_shards(durations, 3) == select.assign_shards(
        dict(reversed(list(durations.items()))), 3
    ), "every shard of a matrix must compute the same split"


def test_staleness_key_depends_on_what_the_output_depends_on():
    def key(**kw):
        args = dict(rel="a/x.py", md5="code", torch="2.13.0", device="cpu", requires=[], cell="")
        args.update(kw)
        return select.staleness_key(
            args["rel"], args["md5"], args["torch"], args["device"], args["requires"], args["cell"]
        )

    base = key()
    assert base == key()
    for change in (
        {"rel": "b/x.py"},
        {"md5": "other code"},
        {"torch": "2.14.0"},
        {"device": "cuda"},
        {"requires": ["cuda"]},
        {"cell": "another first cell"},
    ):
        assert key(**change) != base, change


def test_torch_release_drops_the_build_tag(monkeypatch):
    monkeypatch.setattr(select.importlib.metadata, "version", lambda name: "2.13.0+cpu")
    assert select.torch_release() == "2.13.0"
    monkeypatch.setattr(select.importlib.metadata, "version", lambda name: "2.13.0+cu128")
    assert select.torch_release() == "2.13.0"


RST = """.. _sphx_glr_recipes_x.py:


Title
=====
**Author:** a

Body.

.. rst-class:: sphx-glr-timing

   **Total running time of the script:** (0 minutes 1.000 seconds)

**Estimated memory usage:**  42 MB

.. _sphx_glr_download_recipes_x.py:
"""


def test_annotate_adds_verified_line_and_one_memory_figure():
    record = {
        "status": "executed",
        "date": "2026-01-01",
        "torch": "2.13.0",
        "device": "cpu (X)",
        "seconds": 1.25,
        "peak_rss_mb": 512.4,
        "peak_cuda_mb": 0,
    }
    text = pages.annotate_text(RST, record)
    assert (
        "=====\n\n.. rst-class:: recipe-verified\n\n**Verified** 2026-01-01 with PyTorch "
        "2.13.0 on cpu (X), in 1.2 s." in text
    )
    assert "Estimated memory usage" not in text
    assert text.count("Peak memory") == 1
    assert "**Peak memory:** 512 MB for the recipe's processes (PyTorch included; " in text
    assert text.index("Peak memory") < text.index(".. _sphx_glr_download")
    assert "CUDA" not in text.split("Peak memory")[1]
    cuda = pages.annotate_text(RST, {**record, "peak_cuda_mb": 300})
    assert "and 300 MB of CUDA memory allocated" in cuda
    assert "in 0.04 s." in pages.banner({**record, "seconds": 0.04})


@pytest.mark.parametrize(
    "status, expected",
    [
        ("skipped", "Not executed in this build"),
        ("needs-cuda", "Needs CUDA"),
        ("not-run", "Not selected for execution"),
        ("failed", "This recipe failed in this build at line 3"),
        ("timed-out", "ran past its time limit"),
        ("crashed", "This recipe crashed in this build at line 3"),
    ],
)
def test_banner_for_each_status(status, expected):
    record = {
        "status": status,
        "reason": "not selected for execution in this build",
        "error": {"line": 3, "message": "boom"},
    }
    assert expected in pages.banner(record)
    assert "Verified" not in pages.banner(record)


def test_banner_keeps_an_error_message_inside_its_literal():
    record = {"status": "failed", "error": {"line": 3, "message": "``\n.. raw:: html\n\n<b>"}}
    banner = pages.banner(record)
    assert banner.count("\n") == 3 and "\n.. raw::" not in banner


def _row(**kw):
    row = {
        "recipe": "r",
        "src": "r.py",
        "path": "r.py",
        "status": "executed",
        "seconds": 1.0,
        "fate": "cached",
        "ran_in_this_build": False,
        "warnings": [],
        "notes": [],
        "files_written": [],
        "error": None,
        "target_dir": "/nonexistent",
        "stem": "r",
    }
    row.update(kw)
    return row


def _warning(expected):
    return {"category": "FutureWarning", "message": "old", "file": "r.py", "line": 2, **expected}


def test_problems_classify_failures_by_strictness():
    needs = _row(status="needs-cuda", error={"file": "r.py", "line": 4, "message": "no cuda"})
    drift = _row(warnings=[_warning({"expected": False})])
    expected = _row(warnings=[_warning({"expected": True})])
    writes = _row(files_written=["out.txt"])
    fatal, notes = report.problems([needs, drift, expected, writes], strict=False)
    assert fatal == [] and len(notes) == 3
    assert "r.py:1: recipe wrote into the source tree: out.txt" in notes
    fatal, _ = report.problems([needs, drift, expected, writes], strict=True)
    assert [loc for _, loc in fatal] == [("r.py", 4), ("r.py", 2), ("r.py", 1)]


def test_a_failure_is_fatal_with_its_traceback_and_a_crash_with_its_output():
    broken = _row(
        status="failed",
        error={"file": "r.py", "line": 9, "message": "ValueError: boom"},
        traceback='  File "r.py", line 9, in <module>\n    boom()\nValueError: boom',
    )
    ((text, where),) = report.problems([broken], strict=False)[0]
    assert where == ("r.py", 9)
    assert text.startswith("recipe failed: ValueError: boom\n")
    assert "recipe's own frames" in text and '    File "r.py", line 9' in text
    crashed = _row(
        status="crashed",
        error={"file": "r.py", "line": 4, "message": "recipe crashed: Aborted (signal 6)"},
        log_tail=["terminate called after throwing an instance of 'c10::Error'"],
    )
    ((text, where),) = report.problems([crashed], strict=False)[0]
    assert text.startswith("recipe crashed: Aborted (signal 6)\n") and "c10::Error" in text


def test_a_slow_recipe_is_a_note_in_the_summary_not_a_failure():
    notes = outcome._notes("r.py", {"truncated": []}, seconds=31.5, budget=30)
    assert notes == ["ran 31.5 s, slower than the site's budget of 30 s"]
    assert outcome._notes("r.py", None, seconds=29.0, budget=30) == []
    fatal, shown = report.problems([_row(notes=notes)], strict=True)
    assert fatal == [] and shown == ["r.py: ran 31.5 s, slower than the site's budget of 30 s"]


def test_a_recipe_planned_to_run_without_a_record_of_this_build_is_fatal():
    row = _row(fate="execute", ran_in_this_build=False)
    ((text, where),) = report.problems([row], strict=False)[0]
    assert "planned to execute" in text
    assert report.problems([_row(fate="execute", ran_in_this_build=True)], strict=False) == (
        [],
        [],
    )


def test_a_merge_needs_output_for_every_recipe():
    fatal, _ = report.problems([_row(status="not-run")], strict=False, require_all=True)
    assert "no output for its current source" in fatal[0][0]
    assert report.problems([_row(status="skipped")], strict=False, require_all=True)[0] == []


def test_collect_knows_what_this_build_ran(tmp_path):
    entry = {"src": "x.py", "rel": "x.py", "docname": "recipes/x", "target_dir": str(tmp_path)}
    entry.update(stem="x", key="k", fate="execute")
    records.write(entry, records.new_record("x", "x.py", "executed", "k", "m", build="b1"))
    manifest = {"recipes": {"x": entry}}
    assert report.collect(manifest, "b1")[0]["ran_in_this_build"] is True
    assert report.collect(manifest, "b2")[0]["ran_in_this_build"] is False


def test_cuda_is_ruled_out_without_importing_torch(monkeypatch, tmp_path):
    import sys

    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.setattr(meta.importlib.metadata, "version", lambda name: "2.13.0+cpu")
    assert meta.cuda_possible() is False
    assert meta.Host.detect() == meta.Host()
    assert "torch" not in sys.modules
    monkeypatch.setattr(meta.importlib.metadata, "version", lambda name: "2.13.0")
    monkeypatch.setattr(meta, "NVIDIA_PROC", (tmp_path / "nvidia", tmp_path / "nvidiactl"))
    assert meta.cuda_possible() is (sys.platform != "linux")
    (tmp_path / "nvidiactl").touch()
    assert meta.cuda_possible() is True


# ---------------------------------------------------------------- a recipe's fate


def F(**kw):
    return fate.Facts(key="k", **kw)


@pytest.mark.parametrize(
    "facts, expected",
    [
        # a build that executes
        (F(unmet=("needs CUDA",)), ("skipped", "needs CUDA")),
        (
            F(unmet=("needs CUDA",), old_status="executed", old_key="k", output_current=True),
            ("skipped", "needs CUDA"),
        ),
        (F(old_status="executed", old_key="k", output_current=True), ("cached", "")),
        (F(old_status="executed", old_key="k", output_current=False), ("execute", "")),
        (F(old_status="executed", old_key="old", output_current=True), ("execute", "")),
        (F(stored="executed"), ("restore", "")),
        (F(stored="executed", stored_same_text=False), ("rerender", "")),
        (F(stored="executed", stored_same_text=False, selected=False), ("rerender", "")),
        (
            F(old_status="executed", old_key="k", output_current=True, old_same_text=False),
            ("execute", ""),
        ),
        (
            F(
                old_status="executed",
                old_key="k",
                output_current=True,
                old_same_text=False,
                stored="executed",
                stored_same_text=False,
            ),
            ("rerender", ""),
        ),  # fmt: skip
        (F(stored="executed", selected=False), ("restore", "")),
        (F(stored="skipped"), ("execute", "")),  # a host that executes checks for itself
        (F(), ("execute", "")),
        (F(old_status="failed", old_key="k"), ("execute", "")),
        (F(old_status="crashed", old_key="k", output_current=True), ("execute", "")),
        (F(old_status="failed", old_key="k", selected=False), ("failed", "")),
        (F(old_status="timed-out", old_key="k", selected=False), ("failed", "")),
        (F(old_status="needs-cuda", old_key="k", selected=False), ("failed", "")),
        (F(old_status="failed", old_key="old", selected=False), ("not-run", fate.NOT_SELECTED)),
        (
            F(old_status="executed", old_key="old", output_current=True, selected=False),
            ("not-run", fate.NOT_SELECTED),
        ),
        (F(selected=False), ("not-run", fate.NOT_SELECTED)),
        # a build that executes nothing (html-noplot, the merge of shards)
        (F(executing=False, unmet=("needs CUDA",)), ("not-run", fate.NOT_EXECUTING)),
        (
            F(executing=False, old_status="executed", old_key="k", output_current=True),
            ("cached", ""),
        ),
        (F(executing=False, stored="executed"), ("restore", "")),
        (F(executing=False, stored="executed", stored_same_text=False), ("rerender", "")),
        (F(executing=False, stored="skipped"), ("restore", "")),
        (F(executing=False, old_status="failed", old_key="k"), ("failed", "")),
        (
            F(executing=False, old_status="executed", old_key="old", output_current=True),
            ("not-run", fate.NOT_EXECUTING),
        ),
        (F(executing=False), ("not-run", fate.NOT_EXECUTING)),
    ],
)
def test_fate_table(facts, expected):
    decided = fate.decide(facts)
    assert (decided.name, decided.reason) == expected


# ---------------------------------------------------------------- sphinx-gallery's files


def lay_out(section, stem, figures=1, thumb="png"):
    """Files as sphinx-gallery 0.22.1 writes them for an executed recipe."""
    (section / "images" / "thumb").mkdir(parents=True, exist_ok=True)
    for suffix in (".rst", ".py", ".py.md5", ".ipynb", ".zip", ".codeobj.json", ".cost.json"):
        (section / f"{stem}{suffix}").write_text(suffix)
    (section / f"{stem}.record.json").write_text("{}")
    for i in range(1, figures + 1):
        (section / "images" / f"sphx_glr_{stem}_{i:03d}.png").write_text("png")
        (section / "images" / f"sphx_glr_{stem}_{i:03d}_2_00x.png").write_text("png")
    if thumb:
        (section / "images" / "thumb" / f"sphx_glr_{stem}_thumb.{thumb}").write_text(thumb)


def test_layout_tells_recipes_with_a_common_prefix_apart(tmp_path):
    lay_out(tmp_path, "compile", figures=1)
    lay_out(tmp_path, "compile_cache_cold_warm", figures=2, thumb="svg")
    mine = {p.relative_to(tmp_path).as_posix() for p in layout.files(tmp_path, "compile")}
    assert mine == {
        "compile.rst", "compile.py", "compile.py.md5", "compile.ipynb", "compile.zip",
        "compile.codeobj.json", "compile.cost.json", "compile.record.json",
        "images/sphx_glr_compile_001.png", "images/sphx_glr_compile_001_2_00x.png",
        "images/thumb/sphx_glr_compile_thumb.png",
    }  # fmt: skip
    assert layout.thumbnail(tmp_path, "compile_cache_cold_warm").name.endswith("_thumb.svg")
    layout.remove(tmp_path, "compile")
    left = {p.name for p in tmp_path.rglob("*") if p.is_file()}
    assert "sphx_glr_compile_cache_cold_warm_001.png" in left
    assert "sphx_glr_compile_cache_cold_warm_thumb.svg" in left
    assert not any(n.startswith("compile.") or "glr_compile_0" in n for n in left)
    assert (tmp_path / "compile_cache_cold_warm.record.json").exists()


def test_layout_knows_when_sphinx_gallery_reuses_a_page(tmp_path):
    (tmp_path / "x.py").write_text("print(1)\n")
    assert not layout.is_current(tmp_path, "x")
    layout.mark_current(tmp_path, "x")
    assert layout.is_current(tmp_path, "x")
    (tmp_path / "x.py").write_text("print(2)\n")
    assert not layout.is_current(tmp_path, "x")
    layout.mark_current(tmp_path, "x")
    layout.mark_stale(tmp_path, "x")
    assert not layout.is_current(tmp_path, "x")


def test_removing_images_before_a_run_keeps_the_page(tmp_path):
    lay_out(tmp_path, "x", figures=3)
    layout.remove_images(tmp_path, "x")
    assert layout.figures(tmp_path, "x") == [] and layout.thumbnail(tmp_path, "x") is None
    assert (tmp_path / "x.rst").exists()


# ---------------------------------------------------------------- the output store


def test_store_keeps_whole_outputs_by_key(tmp_path):
    section, root = tmp_path / "section", tmp_path / "store"
    lay_out(section, "x", figures=2)
    record = records.new_record("s/x", "x.py", "executed", "k1", "m")
    store.put(root, "k1", "s/x", section, "x", record)
    assert store.get(root, "k1")["record"]["status"] == "executed"
    assert store.get(root, "k2") is None
    layout.remove(section, "x")
    assert store.restore(root, "k1", section, "x") == record
    assert (section / "images" / "sphx_glr_x_002_2_00x.png").read_text() == "png"
    assert (section / "x.rst").read_text() == ".rst"
    with pytest.raises(ValueError):
        store.put(root, "k3", "s/x", section, "x", {**record, "status": "failed"})


def test_store_ingests_fresh_entries_prunes_and_hashes_its_content(tmp_path):
    section = tmp_path / "section"
    lay_out(section, "x")
    main, shard = tmp_path / "store", tmp_path / "shard"
    store.put(main, "old", "x", section, "x", records.new_record("x", "", "executed", "old", ""))
    before = store.content_id(main)
    assert store.content_id(main) == before  # stable
    (section / "x.rst").write_text("fresh")
    store.put(shard, "new", "x", section, "x", records.new_record("x", "", "executed", "new", ""))
    store.put(shard, "old", "x", section, "x", records.new_record("x", "", "executed", "old", ""))
    assert sorted(store.ingest([tmp_path / "shard"], main)) == ["new", "old"]
    assert (main / "old" / "files" / "x.rst").read_text() == "fresh"  # fresh over cached
    assert store.content_id(main) != before
    assert store.prune(main, {"new"}) == ["old"]
    assert [e["key"] for e in store.entries(main)] == ["new"]


def test_store_keeps_a_few_outputs_per_recipe(tmp_path):
    section = tmp_path / "section"
    lay_out(section, "x")
    for i in range(store.KEEP_PER_RECIPE + 2):
        store.put(tmp_path / "s", f"k{i}", "x", section, "x",
                  records.new_record("x", "", "executed", f"k{i}", ""))  # fmt: skip
    assert len(store.entries(tmp_path / "s")) == store.KEEP_PER_RECIPE


# ---------------------------------------------------------------- bounded output


def _page_with_output(lines: int, width: int = 60) -> str:
    body = "".join(f"    {i:>6} {'y' * width}\n" for i in range(lines))
    return (
        ".. GENERATED FROM PYTHON SOURCE LINES 10-12\n\n.. code-block:: Python\n\n"
        "    print('x')\n\n.. rst-class:: sphx-glr-script-out\n\n .. code-block:: none\n\n"
        f"{body}\n\n.. GENERATED FROM PYTHON SOURCE LINES 13-14\n\nText after.\n"
    )


def test_output_is_cut_per_cell_with_a_note():
    text, cuts = outputs.bound_text(_page_with_output(10_000), cell_limit=10_000)
    assert len(text.encode()) < 12_000
    assert cuts == [{"line": 10, "shown": cuts[0]["shown"], "total": cuts[0]["total"]}]
    assert cuts[0]["shown"] <= 10_000 < cuts[0]["total"]
    assert "**Output truncated:** this cell printed 720.0 kB" in text
    assert text.rstrip().endswith("Text after.")
    small = _page_with_output(3)
    assert outputs.bound_text(small) == (small, [])


def test_one_long_line_keeps_its_start_and_pages_have_a_budget():
    one_line = _page_with_output(1, width=5_000_000)
    text, cuts = outputs.bound_text(one_line, cell_limit=1000)
    assert 900 < cuts[0]["shown"] <= 1000 and "y" * 500 in text
    two = _page_with_output(1000) + _page_with_output(1000)
    text, cuts = outputs.bound_text(two, cell_limit=50_000, page_limit=70_000)
    assert len(cuts) == 2 and cuts[0]["shown"] + cuts[1]["shown"] <= 70_000


# ---------------------------------------------------------------- where problems are


GENERATED = """
.. _sphx_glr_recipes_x.py:


Title
=====
**Author:** a

.. GENERATED FROM PYTHON SOURCE LINES 9-14

.. code-block:: Python

    x = 1

.. GENERATED FROM PYTHON SOURCE LINES 15-19

First text line
second text line
  badly indented
"""


@pytest.mark.parametrize(
    "rst_line, source", [(4, 1), (5, 2), (6, 3), (7, 4), (11, 9), (17, 15), (19, 17)]
)
def test_generated_lines_map_to_source_lines(rst_line, source):
    assert sourcemap.source_line(GENERATED.splitlines(), rst_line) == source


def test_lines_below_the_banner_still_map_to_their_source(tmp_path):
    record = {"status": "executed", "date": "d", "torch": "t", "device": "cpu", "seconds": 1}
    lines = pages.annotate_text(GENERATED, record).split("\n")
    author = lines.index("**Author:** a") + 1
    assert author > 7  # the banner moved it down
    assert sourcemap.source_line(lines, author) == 4
    assert sourcemap.source_line(lines, lines.index("second text line") + 1) == 16
    assert sourcemap.source_line(lines, lines.index("=====") + 1) == 3


def test_a_crash_is_blamed_on_the_recipe_line_faulthandler_saw():
    log = (
        "Thread 0x01 (most recent call first):\n"
        '  File "/r/x.py", line 14 in forever\n'
        '  File "/usr/lib/python3.11/threading.py", line 982 in run\n\n'
        "Current thread 0x02 (most recent call first):\n"
        '  File "/usr/lib/python3.11/threading.py", line 1590 in _shutdown\n'
        '  File "/usr/lib/python3.11/multiprocessing/process.py", line 332 in _bootstrap\n'
    )
    assert outcome.blamed_line(log, "/r/x.py", prefer_other_threads=True) == 14
    crash = (
        "Fatal Python error: Segmentation fault\n\n"
        "Current thread 0x02 (most recent call first):\n"
        '  File "/usr/lib/python3.11/ctypes/__init__.py", line 519 in string_at\n'
        '  File "/r/x.py", line 11 in <module>\n'
        '  File "/usr/lib/python3.11/multiprocessing/process.py", line 108 in run\n'
    )
    assert outcome.blamed_line(crash, "/r/x.py") == 11
    assert outcome.blamed_line("no dump here", "/r/x.py") == 0


def test_a_line_maps_to_the_start_of_its_code_cell(tmp_path):
    src = tmp_path / "r.py"
    src.write_text('"""\nT\n=\n"""\n\nimport os\n\nprint(1)\n# %%\n# text\n\nx = 1\ny = 2\n')
    assert outcome.cell_start(str(src), 8) == 6
    assert outcome.cell_start(str(src), 13) == 12


def test_stopped_children_get_named_failures():
    def child(stopping="", exitcode=None):
        return types.SimpleNamespace(
            stopping=stopping, process=types.SimpleNamespace(exitcode=exitcode), peak_rss=2e9
        )

    job = types.SimpleNamespace(entry={"timeout": 3.0})
    assert outcome.stopped(child(exitcode=-11), job, 8, None) == (
        "crashed",
        "recipe crashed: Segmentation fault (signal 11), in the code cell starting at line 8",
    )
    assert outcome.stopped(child(exitcode=3), job, 0, None) == (
        "crashed",
        "recipe exited with status 3",
    )
    assert outcome.stopped(child("time", -9), job, 5, None)[0] == "timed-out"
    status, text = outcome.stopped(child("memory", -9), job, 5, 10**9)
    assert status == "failed" and "memory limit of 1.0 GB (2.0 GB in use)" in text
    assert "run out of memory" in outcome.stopped(child(exitcode=-9), job, 0, None)[1]


# ---------------------------------------------------------------- markup and files


def test_figure_attributes_are_escaped_and_named_by_section(tmp_path):
    srcdir, outdir = tmp_path / "docs", tmp_path / "html"
    image = srcdir / "recipes" / "compile" / "images" / "sphx_glr_x_001.png"
    image.parent.mkdir(parents=True)
    image.write_bytes(b"png")
    uri = "/recipes/compile/images/sphx_glr_x_001.png"
    writer = types.SimpleNamespace(
        body=[],
        builder=types.SimpleNamespace(
            outdir=str(outdir), srcdir=str(srcdir), imagedir="_images", name="html",
            current_docname="recipes/compile/x",
        ),
    )  # fmt: skip
    node = {"srcset": uri, "uri": uri, "alt": 'F"><script>alert(1)</script>', "class": ["c"]}
    images.visit_image_sg(writer, node)
    (tag,) = writer.body
    assert "<script>" not in tag and 'alt="F&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in tag
    assert 'src="../../_images/compile-sphx_glr_x_001.png"' in tag
    assert (outdir / "_images" / "compile-sphx_glr_x_001.png").read_bytes() == b"png"
    assert images.image_name("/recipes/images/sphx_glr_y_001.png") == "sphx_glr_y_001.png"
    assert images.parse_srcset("/a.png, /b.png 2.00x") == {0.0: "/a.png", 2.0: "/b.png"}


def test_tag_filter_escapes_tags():
    writer = types.SimpleNamespace(body=[])
    with pytest.raises(cards.nodes.SkipNode):
        cards.visit_tag_filter(writer, {"tags": ['a"><b>x']})
    assert "<b>" not in writer.body[0] and 'data-tag="a&quot;&gt;&lt;b&gt;x"' in writer.body[0]


def test_source_tree_changes(tmp_path):
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "a.py").write_text("1")
    (tmp_path / "_build").mkdir()
    before = sourcetree.snapshot(tmp_path)
    (tmp_path / "recipes" / "out.csv").write_text("x")
    (tmp_path / "_build" / "ignored").write_text("x")
    (tmp_path / "recipes" / "a.py").unlink()
    assert sourcetree.difference(before, sourcetree.snapshot(tmp_path)) == [
        "recipes/a.py",
        "recipes/out.csv",
    ]


def test_no_function_of_the_extension_reaches_60_lines():
    import ast
    from pathlib import Path

    package = Path(meta.__file__).parent
    long = []
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length >= 60:
                    long.append(f"{path.name}:{node.lineno} {node.name} ({length} lines)")
    assert long == []


# ---------------------------------------------------------------- one plan per run


def test_the_plan_gives_every_stale_recipe_to_exactly_one_shard(tmp_path):
    keys = {f"r{i}": (f"k{i}", f"lines{i}") for i in range(7)}
    section = tmp_path / "section"
    lay_out(section, "r0")
    store.put(tmp_path / "s", "k0", "r0", section, "r0",
              records.new_record("r0", "", "executed", "k0", "", seconds=3.0,
                                 quotes_lines=False))  # fmt: skip
    first = pipeline.make_plan(keys, tmp_path / "s", 3)
    assert first == pipeline.make_plan(dict(reversed(list(keys.items()))), tmp_path / "s", 3)
    assert sorted(sum(first["shards"], [])) == [f"r{i}" for i in range(1, 7)]
    assert len(first["shards"]) == 3


def test_local_shards_share_one_split_whatever_ran_before(tmp_path):
    """Shards computing their own split from their own state disagree once one of
    them has run; ``SHARD=i/N`` keeps the first split for the same sources."""
    recipes_dir = tmp_path / "recipes"
    recipes_dir.mkdir()
    recipes = {}
    for name in "abcdef":
        path = write(recipes_dir, f'"""\n{name}\n===\n"""\nprint(1)\n', f"{name}.py")
        recipes[name] = meta.read_recipe(path)

    def context(index):
        return plan.Context(
            examples=recipes_dir, root=tmp_path / "docs" / "recipes", docs_prefix="recipes",
            store=tmp_path / "store", executing=True, host=meta.Host(), device="cpu",
            torch="2.13.0", settings="", select="", shard=(index, 2), plan_file="", build="b",
        )  # fmt: skip

    entries = {rid: plan.new_entry(context(1), rid, m) for rid, m in recipes.items()}
    first = plan.selection(context(1), entries, recipes)
    entry = entries[sorted(first)[0]]  # as if shard 1 had run one of its recipes
    section = Path(entry["target_dir"])
    lay_out(section, entry["stem"])
    record = records.new_record(entry["id"], "", "executed", entry["key"], "")
    store.put(tmp_path / "store", entry["key"], entry["id"], section, entry["stem"], record)
    second = plan.selection(context(2), entries, recipes)
    assert first | second == set(recipes) and not first & second


# ---------------------------------------------------------------- test tools


def test_the_browser_comes_from_recipes_chromium_first(tmp_path, monkeypatch):
    import browsers

    fake = tmp_path / "chrome"
    fake.write_text("")
    monkeypatch.setenv("RECIPES_CHROMIUM", str(fake))
    assert browsers.find() == fake
    monkeypatch.setenv("RECIPES_CHROMIUM", str(tmp_path / "missing"))
    assert browsers.find() is None
    for way in ("RECIPES_CHROMIUM=", "apt-get install chromium", "playwright install chromium"):
        assert way in browsers.MISSING


def test_make_serve_needs_no_test_tools():
    import subprocess

    from conftest import REPO

    done = subprocess.run(
        ["make", "-n", "-B", "serve", "PY=python"], cwd=REPO, capture_output=True, text=True
    )
    assert "requirements-serve.txt" in done.stdout
    assert "requirements-test.txt" not in done.stdout and "browsers.py" not in done.stdout


def test_make_test_installs_what_the_serve_tests_start():
    import subprocess

    from conftest import REPO

    done = subprocess.run(
        ["make", "-n", "-B", ".venv/.stamp-test", "PY=python"],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert "-r requirements-serve.txt" in done.stdout, done.stdout


def test_a_site_older_than_its_sources_is_stale(tmp_path, monkeypatch):
    import os

    import conftest

    (tmp_path / "recipes").mkdir()
    (tmp_path / "docs" / "recipes").mkdir(parents=True)
    (tmp_path / "conf.py").write_text("")
    (tmp_path / "recipes" / "a.py").write_text("")
    os.utime(tmp_path / "recipes" / "a.py", (1000, 1000))
    os.utime(tmp_path / "conf.py", (1000, 1000))
    (tmp_path / "docs" / "recipes" / "generated.rst").write_text("")  # newer, but generated
    monkeypatch.setattr(conftest, "REPO", tmp_path)
    assert conftest.newest_source() == 1000
    os.utime(tmp_path / "recipes" / "a.py", (2000, 2000))
    assert conftest.newest_source() == 2000


# ---------------------------------------------------------------- what keys a recipe's output

KEYED = '''"""
Title
=====

A summary.
"""

# %%
# Some prose.

import math  # a comment inside code

print(math.pi)

# %%
# More prose.
# sphinx_gallery_thumbnail_number = 1

print("done")
'''


@pytest.mark.parametrize(
    "old, new",
    [
        ("A summary.", "A longer summary, with a second sentence."),  # docstring
        ("Title\n=====", "New title\n========="),  # title
        ("# Some prose.", "# Some prose.\n# Another sentence, a line longer."),  # text cell
        ("# More prose.", "# Reworded prose."),
        ("# a comment inside code", "# another comment"),  # comments in code do not run
        ("import math  # a comment inside code\n", "import math\n\n\n# a new comment line\n"),
        ("print(math.pi)", "print( math.pi )"),  # spacing inside a line
    ],
)
def test_prose_and_comments_keep_the_code_key(old, new):
    assert old in KEYED
    assert sourcekey.code_key(KEYED.replace(old, new)) == sourcekey.code_key(KEYED)


@pytest.mark.parametrize(
    "old, new",
    [
        ("print(math.pi)", "print(math.e)"),  # a code line
        ("print(math.pi)\n", "print(math.pi)\n\n# %%\n# A new boundary.\n\nprint(1)\n"),
        ("import math  # a comment inside code\n\nprint", "import math\n\n# %%\n# Cut.\n\nprint"),
        ("number = 1", "number = 2"),  # a declaration that only shapes the page
        ('print("done")', 'print("done")\n# sphinx_gallery_timeout = 9'),
    ],
)
def test_code_cells_and_declarations_change_the_code_key(old, new):
    assert old in KEYED
    assert sourcekey.code_key(KEYED.replace(old, new)) != sourcekey.code_key(KEYED)


def test_the_lines_key_follows_where_code_sits():
    same_lines = KEYED.replace("# Some prose.", "# Other prose.")
    assert sourcekey.lines_key(same_lines) == sourcekey.lines_key(KEYED)
    below = KEYED + "\n# %%\n# A closing paragraph.\n#\n"
    assert sourcekey.lines_key(below) == sourcekey.lines_key(KEYED)
    shifted = KEYED.replace("# Some prose.", "# Some prose.\n# One more line.")
    assert sourcekey.lines_key(shifted) != sourcekey.lines_key(KEYED)
    commented = KEYED.replace("# a comment inside code", "# changed")
    assert sourcekey.lines_key(commented) != sourcekey.lines_key(KEYED)
    assert sourcekey.code_key(commented) == sourcekey.code_key(KEYED)


def test_the_store_key_leaves_prose_out_but_not_requirements_or_torch(tmp_path):
    def key(text, torch="2.13.0", device="cpu"):
        path = tmp_path / "x.py"
        path.write_text(text)
        m = meta.read_recipe(path)
        return plan.recipe_key(tmp_path, m, torch, device, "")

    base = key(KEYED)
    assert key(KEYED.replace("# More prose.", "# Other words.")) == base
    assert (
        key(
            KEYED.replace(
                'print("done")', 'print("done")\n# sphinx_gallery_requires = ["package:math"]'
            )
        )
        != base
    )  # noqa: E501
    assert key(KEYED, torch="2.14.0") != base
    assert key(KEYED, device="cuda") != base


def _page(text: str, outputs: list[str]) -> str:
    """A page shaped as sphinx-gallery 0.22 makes one from ``text``."""
    from sphinx_gallery.gen_rst import codestr2rst

    page = ".. _sphx_glr_x.py:\n\n" + sourcekey.blocks(text)[0].content + "\n\n"
    runs = iter(outputs)
    for block in sourcekey.blocks(text)[1:]:
        end = block.lineno + block.content.count("\n")
        page += f".. GENERATED FROM PYTHON SOURCE LINES {block.lineno}-{end}\n\n"
        if block.type == "code" and len(sourcekey.blocks(text)) <= 2:  # output first
            out = next(runs, "")
            page += out + ("\n\n|\n\n" if "script-out" in out else "")
            page += codestr2rst(block.content, lang="Python") + "\n"
        elif block.type == "code":
            page += codestr2rst(block.content, lang="Python") + "\n" + next(runs, "")
        else:
            page += block.content + "\n"
    return page + "\n.. rst-class:: sphx-glr-timing\n\n   **Total running time:** 7 s\n"


OUT_PI = "\n\n\n.. rst-class:: sphx-glr-script-out\n\n .. code-block:: none\n\n    3.14159\n\n\n\n"
OUT_DONE = "\n.. image-sg:: /x/images/sphx_glr_x_001.png\n   :alt: x\n\n\n\n"


def test_a_page_is_made_again_from_new_prose_and_stored_outputs():
    executed = _page(KEYED, [OUT_PI, OUT_DONE])
    new_text = KEYED.replace("# Some prose.", "# Fresh prose.\n# Two lines of it.").replace(
        "# a comment inside code", "# a fresh comment"
    )
    code_only = _page(new_text, []).replace("7 s", "0 s")
    spliced = rerender.splice(executed, KEYED, code_only, new_text)
    assert spliced is not None
    assert "Fresh prose." in spliced and "Some prose." not in spliced
    assert "a fresh comment" in spliced  # the listing is the new one
    assert spliced.count("3.14159") == 1 and spliced.count("sphx_glr_x_001.png") == 1
    assert spliced.index("print(math.pi)") < spliced.index("3.14159") < spliced.index("More prose")
    assert spliced.endswith("**Total running time:** 7 s\n")  # the run's footer
    found = rerender.outputs(spliced, new_text)
    assert [o.strip() for o in found] == [OUT_PI.strip(), OUT_DONE.strip()]


def test_a_page_that_does_not_fit_is_not_spliced():
    executed = _page(KEYED, [OUT_PI, OUT_DONE])
    more_cells = KEYED.replace('print("done")', 'print("done")\n\n# %%\n# x\n\nprint(2)')
    assert rerender.splice(executed, KEYED, _page(more_cells, []), more_cells) is None
    assert rerender.splice("no marks at all", KEYED, _page(KEYED, []), KEYED) is None


@pytest.mark.parametrize(
    "output, quotes",
    [
        ("    3.14159\n", False),
        ("    break 1 in score, line 61: print(x)\n", True),
        ('    File "/src/x.py", line 12, in <module>\n', True),
        ("    /src/x.py:12: UserWarning: careful\n", True),
        ("    a timeline of 3 steps\n", False),
    ],
)
def test_outputs_that_quote_where_code_sits_are_noticed(output, quotes):
    block = f"\n.. rst-class:: sphx-glr-script-out\n\n .. code-block:: none\n\n{output}\n"
    page = _page(KEYED, [block, "\n"])
    assert rerender.quotes_source(page, KEYED, "/src/x.py") is quotes
    warned = [{"file": "/src/x.py", "line": 3}]
    assert rerender.quotes_source(_page(KEYED, ["\n", "\n"]), KEYED, "/src/x.py", warned)


def test_a_stored_run_that_quotes_lines_serves_only_code_where_it_sat():
    quoting = {"status": "executed", "record": {"quotes_lines": True, "run_lines": "L1"}}
    assert store.covers(quoting, "L1") and not store.covers(quoting, "L2")
    plain = {"status": "executed", "record": {"quotes_lines": False, "run_lines": "L1"}}
    assert store.covers(plain, "L2")
    assert not store.covers(None, "L1")


def test_an_authors_save_during_a_build_is_not_blamed_on_a_recipe():
    assert outcome.authors_file("recipes/compile/graph_breaks.py")
    assert outcome.authors_file("recipes/compile/.graph_breaks.py.swp")
    assert outcome.authors_file("README.md") and outcome.authors_file("recipes/4913")
    assert not outcome.authors_file("recipes/compile/model.pt")


def test_a_two_block_page_keeps_its_output_above_the_code_and_can_grow():
    short = '"""\nTitle\n=====\n\nA summary.\n"""\n\nprint(math.pi)\n'
    executed = _page(short, [OUT_PI])
    reworded = short.replace("A summary.", "Another summary.")
    spliced = rerender.splice(executed, short, _page(reworded, []), reworded)
    assert spliced is not None and "Another summary." in spliced
    assert spliced.index("3.14159") < spliced.index("print(math.pi)")  # sphinx-gallery's order
    grown = short + "\n# %%\n# A closing text cell makes three blocks.\n"
    spliced = rerender.splice(executed, short, _page(grown, []), grown)
    assert spliced.index("print(math.pi)") < spliced.index("3.14159") < spliced.index("closing")


def test_figures_too_large_for_a_page_are_named_with_their_sizes(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images/sphx_glr_r_001.png").write_bytes(b"x" * 6_000_000)
    (tmp_path / "images/sphx_glr_r_002.png").write_bytes(b"x" * 5_000_000)
    row = _row(target_dir=str(tmp_path), fate="execute", ran_in_this_build=True)
    fatal, notes = report.problems([row], strict=False)
    assert fatal == []
    assert any("sphx_glr_r_001.png (6.0 MB)" in n and "002" not in n for n in notes), notes
    assert any("its figures weigh 11.0 MB, over the page budget of 10.0 MB" in n for n in notes)
    fatal, _ = report.problems([row], strict=True)
    assert len(fatal) == 2


def test_a_long_message_is_cut_and_kept_whole_in_a_file(tmp_path):
    text = "boom " * 10_000 + "\n" + "\n".join(f"line {i}" for i in range(100))
    short = report.bounded(text, "group/r", tmp_path)
    assert len(short) < report.MESSAGE_LIMIT + 300
    (log,) = tmp_path.glob("*.log")
    assert log.read_text() == text and str(log) in short
    assert report.bounded("short", "r", tmp_path) == "short"


def test_a_cut_message_keeps_the_error_at_its_end_and_the_lines_naming_one(tmp_path):
    # A compiler's output: pages of warnings, one error in the middle, the fatal end.
    warnings = [f"vec512_int.h:{n}:7: warning: overflow in conversion" for n in range(2000)]
    fatal = "g++: fatal error: Killed signal terminated program cc1plus\ncompilation terminated."
    text = "\n".join(["CppCompileError: C++ compile error", "Command:", "g++ x.cpp"]
                     + warnings[:1000] + ["x.cpp:12:3: error: 'y' was not declared"]
                     + warnings[1000:] + [fatal])  # fmt: skip
    short = report.bounded(text, "r", tmp_path)
    assert short.startswith("CppCompileError: C++ compile error\nCommand:")
    assert "x.cpp:12:3: error: 'y' was not declared" in short
    assert fatal in short
    assert "lines cut" in short and len(short) < report.MESSAGE_LIMIT + 300


def test_a_store_entry_missing_a_file_is_no_entry_and_leftovers_are_swept(tmp_path):
    section = tmp_path / "section"
    lay_out(section, "r0")
    record = records.new_record("r0", "", "executed", "k0", "")
    store.put(tmp_path / "s", "k0", "r0", section, "r0", record)
    assert store.get(tmp_path / "s", "k0") is not None
    (tmp_path / "s/k0/files/r0.ipynb").unlink()  # a removal killed halfway, as before
    assert store.get(tmp_path / "s", "k0") is None
    dead = tmp_path / "s/.old-k9-999999999"
    dead.mkdir()
    mine = tmp_path / f"s/.tmp-k8-{os.getpid()}"  # still being written by a live build
    mine.mkdir()
    assert store.sweep(tmp_path / "s") == [dead.name]
    assert mine.exists() and not dead.exists()


def test_only_solo_timings_balance_shards(tmp_path):
    section = tmp_path / "section"
    for stem, beside in (("solo", 0), ("crowded", 1)):
        lay_out(section, stem)
        record = records.new_record(stem, "", "executed", f"k-{stem}", "", seconds=4.0,
                                    beside=beside)  # fmt: skip
        store.put(tmp_path / "s", f"k-{stem}", stem, section, stem, record)
    assert plan.recorded_durations(tmp_path / "s") == {"solo": 4.0}


def test_the_warm_parent_check_catches_an_initialised_cuda_driver(tmp_path):
    from recipes_site import warm

    # What an H200 showed: importing torch maps libcuda.so, NVML maps libnvidia-ml;
    # only an initialised driver maps its device files.
    maps = tmp_path / "maps"
    maps.write_text(
        "7f00-7f01 r-xp 00000000 08:01 1 /usr/local/nvidia/lib64/libcuda.so.580.159.04\n"
        "7f02-7f03 r-xp 00000000 08:01 2 /usr/local/nvidia/lib64/libnvidia-ml.so.580.159.04\n"
        "7f04-7f05 rw-p 00000000 00:00 0 \n"
    )
    warm.check(str(maps))  # imported, asked through NVML: fine
    maps.write_text(maps.read_text() + "7f06-7f07 rw-s 00000000 00:05 3 /dev/nvidiactl\n")
    with pytest.raises(RuntimeError, match="initialised the CUDA driver"):
        warm.check(str(maps))


def test_the_site_names_the_devices_its_outputs_were_made_on():
    rows = [
        _row(status="executed", device="cuda (NVIDIA H200)"),
        _row(status="executed", device="cpu (CUDA not used)"),
        _row(status="skipped", device="cpu"),
    ]
    assert report.devices(rows, {"host": "cpu"}) == "cpu (CUDA not used), cuda (NVIDIA H200)"
    assert report.devices([], {"host": "cpu"}) == "cpu"
    gpu = {"host": "cuda (NVIDIA H200)"}
    assert outcome.ran_on(gpu, {"cuda_used": True}) == "cuda (NVIDIA H200)"
    assert outcome.ran_on(gpu, {"cuda_used": False}) == "cpu (CUDA not used)"
    assert outcome.ran_on({"host": "cpu"}, {"cuda_used": False}) == "cpu"


def test_needs_cuda_follows_what_an_error_was_raised_from_not_what_it_handled(monkeypatch):
    from recipes_site import child

    monkeypatch.setattr(child.sys.modules["torch"].cuda, "is_available", lambda: False)
    try:
        raise RuntimeError("Found no NVIDIA driver on your system")
    except RuntimeError as cuda_error:
        try:
            raise ValueError("a genuine mistake")  # while handling it
        except ValueError as handling:
            assert not child._needs_cuda(handling)
        try:
            raise ValueError("no GPU here") from cuda_error
        except ValueError as caused:
            assert child._needs_cuda(caused)


def test_several_gpus_are_shared_out_one_per_recipe_process(monkeypatch):
    from recipes_site import executor

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert executor.visible_gpus(1) == []
    assert executor.visible_gpus(2) == ["0", "1"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert executor.visible_gpus(2) == ["3", "5"]
    supervisor = types.SimpleNamespace(
        settings={"gpus": ["3", "5"]}, running=[types.SimpleNamespace(gpu="3")]
    )
    assert executor.Supervisor._free_gpu(supervisor) == "5"


def test_a_stored_skip_is_asked_of_the_runner_again(tmp_path):
    section = tmp_path / "section"
    lay_out(section, "r0")
    record = records.new_record("r0", "", "skipped", "k0", "", reason="needs 2 GPUs")
    store.put(tmp_path / "s", "k0", "r0", section, "r0", record)
    plan_ = pipeline.make_plan({"r0": ("k0", "")}, tmp_path / "s", 1)
    assert plan_["stale"] == ["r0"]  # the plan cannot tell whether the runner has 2 GPUs
    assert pipeline.covered(tmp_path / "s", "k0")  # the merge still renders the skip


def test_a_recipe_without_a_figure_gets_a_thumbnail_of_its_own(tmp_path):
    from recipes_site import thumbs

    code = "import torch\n\nx = torch.ones(3)\nprint(x.sum())\n"
    assert thumbs.ensure(tmp_path, "a", "First recipe", code, "compile")
    first = layout.thumbnail(tmp_path, "a")
    assert first.name == "sphx_glr_a_thumb.png" and thumbs.drawn_key(first)
    assert not thumbs.ensure(tmp_path, "a", "First recipe", code, "compile")  # kept
    assert thumbs.ensure(tmp_path, "b", "Second recipe", code, "compile")
    assert first.read_bytes() != layout.thumbnail(tmp_path, "b").read_bytes()
    assert thumbs.ensure(tmp_path, "a", "First recipe, renamed", code, "compile")  # drawn again
    from PIL import Image

    with Image.open(layout.thumbnail(tmp_path, "a")) as image:
        assert image.size == thumbs.SIZE
    lay_out(tmp_path / "figs", "c")  # a recipe with a figure keeps sphinx-gallery's thumbnail
    assert not thumbs.ensure(tmp_path / "figs", "c", "Plots", code, "compile")
    assert thumbs.code_lines(code) == ["x = torch.ones(3)", "print(x.sum())"]


@pytest.mark.parametrize(
    "rst, shown",
    [
        (".. rst-class:: sphx-glr-script-out\n\n .. code-block:: none\n\n    42\n", True),
        (".. image-sg:: /x.png\n   :class: sphx-glr-single-img\n", True),
        (
            ".. rst-class:: sphx-glr-horizontal\n\n    * .. image-sg:: /a.png\n"
            "         :class: sphx-glr-multi-img\n",
            True,
        ),  # fmt: skip
        (".. code-block:: Python\n\n    x = 1\n", False),  # the code alone is no output
    ],
)
def test_output_is_what_the_recipe_printed_or_drew(rst, shown):
    assert outputs.has_output(rst) is shown


def test_every_test_tests_readme_names_exists():
    """tests/README.md says which test proves each guarantee: a renamed or removed
    test must not leave a guarantee pointing at nothing."""
    tests = Path(__file__).parent
    named = []
    for row in (tests / "README.md").read_text().splitlines():
        if not row.startswith("| ") or row.startswith(("| ---", "| guarantee")):
            continue
        module = None
        for m in re.finditer(r"`(test_\w+\.py)?(?:::)?(\w+)?`", row.rsplit("|", 2)[-2]):
            module = m[1] or module
            if m[2]:
                named.append((module, m[2]))
    assert len(named) > 30
    missing = [
        f"{module}::{name}"
        for module, name in named
        if not re.search(rf"^def {name}\(", (tests / module).read_text(), re.M)
    ]
    assert missing == []
