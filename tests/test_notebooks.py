"""Every generated notebook runs as a reader downloads it.

The notebooks come from the built site's ``_downloads``. Each one whose recipe
executed in the build (status ``executed`` in ``timings.json``: all of them
after a full build) is run top to bottom with nbclient in an ipykernel that
uses this interpreter, with the build's environment (``MPLBACKEND=Agg``, the
shared ``TORCHINDUCTOR_CACHE_DIR``).
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import nbformat
import pytest
from conftest import REPO, build_env
from nbclient import NotebookClient
from recipes_site import notebooks

TIMEOUT = 600


def run(nb, workdir: Path):
    client = NotebookClient(
        nb, kernel_name="python3", timeout=TIMEOUT, resources={"metadata": {"path": str(workdir)}}
    )
    client.execute(env=build_env())
    return nb


def executed_notebooks(site: Path) -> dict[str, Path]:
    rows = json.loads((site / "recipes" / "timings.json").read_text())["recipes"]
    found = {}
    for row in rows:
        if row["status"] == "executed":
            (path,) = (site / "_downloads").rglob(f"{row['recipe']}.ipynb")
            found[row["recipe"]] = path
    return found


def test_the_kernel_runs_this_interpreter_with_the_build_environment(tmp_path):
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                "import os, sys\nprint(sys.executable)\nprint(os.environ['MPLBACKEND'])\n"
                "print(os.environ['TORCHINDUCTOR_CACHE_DIR'])\nprint(os.getcwd())"
            )
        ]
    )
    out = run(nb, tmp_path).cells[0].outputs[0]["text"].splitlines()
    assert Path(out[0]).resolve() == Path(sys.executable).resolve()
    assert out[1:] == ["Agg", build_env()["TORCHINDUCTOR_CACHE_DIR"], str(tmp_path)]


def test_every_notebook_starts_with_the_colab_install_cell(site):
    cell = notebooks.first_cell()
    for path in (site / "_downloads").rglob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code[0].source.strip() == cell.strip(), path.name


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
    pins = set(notebooks.pins(REPO / "requirements.txt"))
    assert pins == {a for a in args if "==" in a}
    assert {p.split("==")[0] for p in pins} == set(notebooks.RUNTIME_PACKAGES)


def test_executed_notebooks_run_as_downloaded(site, tmp_path):
    found = executed_notebooks(site)
    assert found, "the build executed no recipe, so no notebook can be checked"
    failures = {}
    for name, path in sorted(found.items()):
        workdir = tmp_path / name
        workdir.mkdir()
        nb = nbformat.read(path, as_version=4)
        try:
            run(nb, workdir)
        except Exception as exc:  # noqa: BLE001 - report every failing notebook
            failures[name] = f"{type(exc).__name__}: {str(exc)[-2000:]}"
            continue
        assert any(
            o.get("output_type") == "stream"
            for c in nb.cells
            if c.cell_type == "code"
            for o in c.get("outputs", [])
        ), name
    assert failures == {}


@pytest.mark.parametrize("status", ["executed", "not-run"])
def test_only_executed_recipes_are_chosen(tmp_path, status):
    downloads = tmp_path / "_downloads" / "abc"
    downloads.mkdir(parents=True)
    (downloads / "r.ipynb").write_text("{}")
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "timings.json").write_text(
        json.dumps({"recipes": [{"recipe": "r", "status": status}]})
    )
    assert list(executed_notebooks(tmp_path)) == (["r"] if status == "executed" else [])
