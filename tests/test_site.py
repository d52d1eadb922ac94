"""Checks on the site that ``make html`` built: pages, labels, downloads, notebooks, index."""

from __future__ import annotations

import json
import re

import nbformat
import pytest
from bs4 import BeautifulSoup
from conftest import REPO
from recipes_site import meta

RECIPES = meta.find_recipes(REPO / "recipes")
SEED = "torch_compile_torch_function_modes"


def rel_html(path):
    return path.relative_to(REPO / "recipes").with_suffix(".html").as_posix()


def soup(site, rel):
    return BeautifulSoup((site / rel).read_text(encoding="utf-8"), "html.parser")


def test_seed_page_keeps_the_seed_structure(site):
    page = soup(site, f"recipes/{SEED}.html")
    html = str(page)
    assert page.find(id=f"sphx-glr-recipes-{SEED.replace('_', '-')}-py")
    assert page.find(id=f"sphx-glr-download-recipes-{SEED.replace('_', '-')}-py")
    assert page.find("h1").get_text().startswith("Using torch function modes with torch.compile")
    sections = [h.get_text().rstrip("#") for h in page.find_all("h2")]
    assert sections[:2] == [
        "Choosing where to run",
        "A mode that turns additions into multiplications",
    ]
    assert "Conclusion" in sections
    # each code cell that prints is followed by its real output
    outputs = page.select("div.sphx-glr-script-out pre")
    assert any("torch 2.13.0" in o.get_text() for o in outputs)
    assert any("result with the mode inside the function" in o.get_text() for o in outputs)
    assert "Total running time of the script" in html
    for suffix in (".py", ".ipynb", ".zip"):
        assert page.find("a", href=re.compile(rf"_downloads/.*/{SEED}\{suffix}$")), suffix


def test_seed_page_reports_a_positive_run_time(site):
    page = soup(site, f"recipes/{SEED}.html")
    timing = page.select_one("p.sphx-glr-timing").get_text()
    minutes, seconds = map(float, re.search(r"\((\d+) minutes ([\d.]+) seconds\)", timing).groups())
    assert minutes * 60 + seconds > 0
    assert page.select_one("p.recipe-verified")


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_every_recipe_page_has_downloads_that_exist(site, path):
    page = soup(site, f"recipes/{rel_html(path)}")
    links = [a["href"] for a in page.select("div.sphx-glr-download a")]
    assert {link.rsplit(".", 1)[-1] for link in links} == {"py", "ipynb", "zip"}
    base = (site / "recipes" / rel_html(path)).parent
    for link in links:
        assert (base / link).resolve().is_file(), link


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_every_notebook_validates(site, path):
    notebooks = list((site / "_downloads").rglob(f"{path.stem}.ipynb"))
    assert len(notebooks) == 1
    nb = nbformat.read(notebooks[0], as_version=4)
    nbformat.validate(nb)
    assert any(c.cell_type == "code" for c in nb.cells)


def test_index_links_every_recipe(site):
    for index in ("index.html", "recipes/index.html"):
        page = soup(site, index)
        hrefs = {a["href"].split("#")[0] for a in page.find_all("a", href=True)}
        prefix = "recipes/" if index == "index.html" else ""
        for path in RECIPES:
            assert prefix + rel_html(path) in hrefs, (index, path)


def test_computation_times_pages_exist(site):
    assert (site / "sg_execution_times.html").is_file()
    assert (site / "recipes" / "sg_execution_times.html").is_file()
    landing = soup(site, "index.html")
    assert landing.find("a", href="sg_execution_times.html")


def test_timings_json_lists_every_recipe(site):
    data = json.loads((site / "recipes" / "timings.json").read_text())
    rows = {r["recipe"]: r for r in data["recipes"]}
    assert set(rows) == {
        p.relative_to(REPO / "recipes").with_suffix("").as_posix() for p in RECIPES
    }
    for row in rows.values():
        assert row["status"] in ("executed", "skipped"), row
        if row["status"] == "executed":
            assert row["seconds"] > 0 and row["peak_rss_mb"] > 0
            assert row["torch"].startswith("2.13.0")


def test_theme_has_project_name_dark_mode_and_github_link(site):
    page = soup(site, "index.html")
    assert "PyTorch Recipes" in page.title.get_text()
    assert page.select_one(".theme-switch-button")
    assert page.find("a", href="https://github.com/pytorch-recipes/recipes")


def test_no_recipe_writes_into_the_source_tree(site):
    """``git status`` stays clean after ``make html``: no recipe leaves files behind."""
    rows = json.loads((site / "recipes" / "timings.json").read_text())["recipes"]
    assert {r["recipe"]: r["files_written"] for r in rows if r["files_written"]} == {}


def test_built_files_stay_small(site):
    """Pages under 1 MB and images under 500 kB: the site stays quick to load."""
    too_big = [
        (p.relative_to(site).as_posix(), p.stat().st_size)
        for p in site.rglob("*")
        if (p.suffix == ".html" and p.stat().st_size > 1_000_000)
        or (p.suffix in (".png", ".svg", ".jpg") and p.stat().st_size > 500_000)
    ]
    assert too_big == []
