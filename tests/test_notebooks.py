"""The generated notebooks and the kernel that runs them.

Every notebook is executed top to bottom by ``tests/test_recipes.py`` (one
test per recipe); this file checks what those runs rely on: the kernel runs
this interpreter with the build's environment (``MPLBACKEND=Agg``, the shared
``TORCHINDUCTOR_CACHE_DIR``), and each notebook starts with the cell that
installs the pinned packages in Colab only.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import nbformat
import pytest
from conftest import REPO, build_env, run_notebook
from recipes_site import notebooks

TIMEOUT = 600


@pytest.mark.slow
def test_the_kernel_runs_this_interpreter_with_the_build_environment(tmp_path):
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                "import os, sys\nprint(sys.executable)\nprint(os.environ['MPLBACKEND'])\n"
                "print(os.environ['TORCHINDUCTOR_CACHE_DIR'])\nprint(os.getcwd())"
            )
        ]
    )
    out = run_notebook(nb, tmp_path).cells[0].outputs[0]["text"].splitlines()
    assert Path(out[0]).resolve() == Path(sys.executable).resolve()
    assert out[1:] == ["Agg", build_env()["TORCHINDUCTOR_CACHE_DIR"], str(tmp_path)]


def test_every_notebook_starts_with_the_colab_install_cell(site):
    torch_pin = next(
        ln.strip() for ln in (REPO / "requirements.txt").read_text().splitlines()
        if ln.startswith("torch==")
    )  # fmt: skip
    notebooks_found = list((site / "_downloads").rglob("*.ipynb"))
    assert notebooks_found
    for path in notebooks_found:
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert 'if "google.colab" in sys.modules:' in code[0].source, path.name
        assert repr(torch_pin) in code[0].source, path.name


def test_the_first_cell_installs_the_pins_in_colab_only(monkeypatch):
    calls = []
    fake = types.SimpleNamespace(run=lambda args, **kw: calls.append(args))
    monkeypatch.setitem(sys.modules, "subprocess", fake)
    exec(notebooks.first_cell(), {})
    assert calls == []  # not in Colab: nothing happens
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    exec(notebooks.first_cell(), {})
    (args,) = calls
    assert args[:4] == [sys.executable, "-m", "pip", "install"]
    # The expected pins come from requirements.txt itself, read here, not from the
    # function under test.
    lines = (REPO / "requirements.txt").read_text().splitlines()
    wanted = {ln.split("==")[0].strip(): ln.strip() for ln in lines if "==" in ln}
    expected = {wanted[name] for name in ("torch", "numpy", "matplotlib")}
    assert {a for a in args if "==" in a} == expected
