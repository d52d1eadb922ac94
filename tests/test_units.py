"""Unit tests of the extension's pure-Python pieces (no Sphinx build, no torch import)."""

from __future__ import annotations

import pytest
from recipes_site import meta, pages, report, select

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


@pytest.mark.parametrize(
    "text, line, message",
    [
        (b'"""\nT\n=\n"""\nprint("\xff")\n', 5, "not valid UTF-8"),
        ('"""\nTitle\n=====\n"""\nx = (\n', 5, "SyntaxError"),
        ("import torch\n", 1, "no title docstring"),
        ('"""\nno underline here\n"""\n', 1, "has no title"),
        ('"""\nLong title\n===\n"""\n', 2, "shorter than the title"),
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


def test_staleness_key_depends_on_torch_device_and_requirements():
    base = select.staleness_key("md5", "2.13.0", "cpu", [])
    assert base == select.staleness_key("md5", "2.13.0", "cpu", [])
    assert base != select.staleness_key("md5x", "2.13.0", "cpu", [])
    assert base != select.staleness_key("md5", "2.14.0", "cpu", [])
    assert base != select.staleness_key("md5", "2.13.0", "cuda (H200)", [])
    assert base != select.staleness_key("md5", "2.13.0", "cpu", ["cuda"])
    assert base != select.staleness_key("md5", "2.13.0", "cpu", [], "another first cell")


RST = """.. _sphx_glr_recipes_x.py:


Title
=====
**Author:** a

Body.

.. rst-class:: sphx-glr-timing

   **Total running time of the script:** (0 minutes 1.000 seconds)


.. _sphx_glr_download_recipes_x.py:
"""


def test_annotate_adds_verified_line_and_memory_footer():
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
    assert "**Peak memory:** 512 MB CPU (resident)\n\n.. _sphx_glr_download" in text
    assert "CUDA" not in text.split("Peak memory")[1]
    assert "in 0.04 s." in pages.banner({**record, "seconds": 0.04})


@pytest.mark.parametrize(
    "status, expected",
    [
        ("skipped", "Not executed in this build"),
        ("needs-cuda", "Needs CUDA"),
        ("not-run", "Not selected for execution"),
        ("failed", "This recipe failed in this build"),
        ("timed-out", "ran past its time limit"),
    ],
)
def test_banner_for_each_status(status, expected):
    record = {
        "status": status,
        "reason": "not selected for execution in this build",
        "error": {"line": 3, "message": "boom"},
    }
    assert expected in pages.banner(record)


def _row(**kw):
    row = {
        "recipe": "r",
        "src": "r.py",
        "path": "r.py",
        "status": "executed",
        "seconds": 1.0,
        "ran_in_this_build": True,
        "warnings": [],
        "leaks": [],
        "error": None,
    }
    row.update(kw)
    return row


def test_problems_classify_failures_by_strictness():
    needs = _row(status="needs-cuda", error={"file": "r.py", "line": 4, "message": "no cuda"})
    drift = _row(
        warnings=[
            {
                "category": "FutureWarning",
                "message": "old",
                "file": "r.py",
                "line": 2,
                "expected": False,
            }
        ]
    )
    expected = _row(
        warnings=[
            {
                "category": "FutureWarning",
                "message": "old",
                "file": "r.py",
                "line": 2,
                "expected": True,
            }
        ]
    )
    broken = _row(status="failed", error={"file": "r.py", "line": 9, "message": "boom"})
    fatal, notes = report.problems([needs, drift, expected], strict=False, outputs={})
    assert fatal == [] and len(notes) == 2
    fatal, _ = report.problems([needs, drift, expected], strict=True, outputs={})
    assert [loc for _, loc in fatal] == [("r.py", 4), ("r.py", 2)]
    fatal, _ = report.problems([broken], strict=False, outputs={})
    assert fatal == [("recipe failed: boom", ("r.py", 9))]


def test_problems_flag_zero_time_and_missing_output():
    fatal, _ = report.problems([_row(seconds=0.0)], strict=False, outputs={"r": True})
    assert "0 s" in fatal[0][0]
    fatal, _ = report.problems([_row()], strict=False, outputs={"r": False})
    assert "printed nothing" in fatal[0][0]


def test_cuda_is_ruled_out_without_importing_torch(monkeypatch):
    import sys

    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.setattr(meta.importlib.metadata, "version", lambda name: "2.13.0+cpu")
    assert meta.cuda_possible() is False
    assert meta.Host.detect() == meta.Host()
    assert "torch" not in sys.modules
    monkeypatch.setattr(meta.importlib.metadata, "version", lambda name: "2.13.0")
    monkeypatch.setattr(meta.Path, "exists", lambda self: True)
    assert meta.cuda_possible() is True
