"""The site's furniture, checked in the built HTML and in the helpers that make it.

Favicon, scripts and styles shipped with the site; sidebar downloads and the
Colab link; OpenGraph tags; ``sitemap.xml``; the 404 page; redirects; the
computation-times page; ``make new``. Behaviour in a browser is in
``test_browser.py``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import types
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlsplit

import docutils.utils
import pytest
from bs4 import BeautifulSoup
from conftest import REPO, build_env, make_project, sphinx_build
from conftest import recipe as recipe_source
from docutils import frontend, nodes
from recipes_site import furniture, links, meta, newrecipe, opengraph, sitemap, timespage
from sphinxext import opengraph as ogp

RECIPES = meta.find_recipes(REPO / "recipes")
SEED = "torch_compile_torch_function_modes"


def conf() -> types.SimpleNamespace:
    """The settings of conf.py, read the way Sphinx reads them."""
    namespace = {"__file__": str(REPO / "conf.py")}
    exec(compile((REPO / "conf.py").read_text(), str(REPO / "conf.py"), "exec"), namespace)
    return types.SimpleNamespace(**{k: v for k, v in namespace.items() if not k.startswith("__")})


CONF = conf()


def pages(site: Path) -> list[Path]:
    return sorted(
        p for p in site.rglob("*.html") if "_static" not in p.parts and "_sources" not in p.parts
    )


def soup(path: Path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def recipe_html(site: Path, path: Path) -> Path:
    return site / "recipes" / path.relative_to(REPO / "recipes").with_suffix(".html")


# The path the site is served under: /recipes/.
SITE_PATH = urlsplit(CONF.html_baseurl).path


def local_file(site: Path, page: Path, ref: str) -> Path:
    """The file of the site that ``ref`` on ``page`` links to or loads: a path
    relative to the page, or one from the host's root below ``SITE_PATH``."""
    path = urlsplit(ref).path
    if path.startswith("/"):
        assert path.startswith(SITE_PATH), (page, ref)
        return site / path[len(SITE_PATH) :]
    return (page.parent / path).resolve()


def is_redirect(page: Path) -> bool:
    return 'http-equiv="refresh"' in page.read_text(encoding="utf-8")


# Assets --------------------------------------------------------------------


def test_every_page_loads_only_files_the_site_ships(site):
    for page in pages(site):
        doc = soup(page)
        refs = [t.get("src") for t in doc.find_all(["script", "img"]) if t.get("src")]
        refs += [
            t["href"]
            for t in doc.find_all("link", href=True)
            if {"stylesheet", "icon", "preload"} & set(t.get("rel", []))
        ]
        for ref in refs:
            assert not urlsplit(ref).scheme and not ref.startswith("//"), (page, ref)
            assert local_file(site, page, ref).is_file(), (page.relative_to(site), ref)


def test_no_page_mentions_a_cdn(site):
    for page in pages(site):
        text = page.read_text(encoding="utf-8")
        for host in ("cdn.datatables.net", "code.jquery.com", "cdnjs.cloudflare.com"):
            assert host not in text, (page, host)


def test_favicon_and_scripts_are_on_every_themed_page(site):
    assert (site / "_static" / "favicon.svg").is_file()
    ET.parse(site / "_static" / "favicon.svg")  # well-formed SVG
    for page in pages(site):
        if is_redirect(page):
            continue
        doc = soup(page)
        assert doc.find("link", rel="icon", href=re.compile(r"_static/favicon\.svg$")), page
        srcs = [s.get("src", "") for s in doc.find_all("script")]
        assert any("_static/recipes.js" in s for s in srcs), page
        assert any("_static/copybutton.js" in s for s in srcs), page


def test_copy_buttons_target_code_cells_only():
    assert CONF.copybutton_selector == "div.highlight-Python pre"
    assert "sphinx_copybutton" in CONF.extensions
    pin = [
        ln
        for ln in (REPO / "requirements.txt").read_text().splitlines()
        if ln.startswith("sphinx-copybutton==")
    ]
    assert pin, "sphinx-copybutton is pinned"


# Recipe pages --------------------------------------------------------------


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_sidebar_has_downloads_colab_and_neighbours(site, path):
    page = recipe_html(site, path)
    doc = soup(page)
    downloads = doc.select(".bd-sidebar-secondary .recipe-downloads a")
    assert sorted(a["href"].rsplit(".", 1)[1] for a in downloads) == ["ipynb", "py", "zip"]
    for a in downloads:
        assert (page.parent / a["href"]).resolve().is_file(), a["href"]
    colab = doc.select_one(".bd-sidebar-secondary .recipe-colab a")["href"]
    rel = path.relative_to(REPO / "recipes").as_posix()
    assert colab == links.colab_url(CONF.recipes_repository, CONF.recipes_notebooks_branch, rel)
    assert colab == (
        f"https://colab.research.google.com/github/{CONF.recipes_repository}"
        f"/blob/{CONF.recipes_notebooks_branch}/{rel[:-3]}.ipynb"
    )
    assert doc.select_one(".prev-next-area a.left-prev")


def test_recipe_pages_link_to_their_neighbours(site):
    """Every recipe page links back, and on, except the last page of the site."""
    lacking = [
        p
        for p in RECIPES
        if not soup(recipe_html(site, p)).select_one(".prev-next-area a.right-next")
    ]
    assert len(lacking) <= 1


def test_pages_that_are_not_recipes_have_no_recipe_links(site):
    for rel in ("index.html", "recipes/index.html", "sg_execution_times.html", "search.html"):
        doc = soup(site / rel)
        assert not doc.select(".recipe-downloads, .recipe-colab"), rel


# OpenGraph -----------------------------------------------------------------


def og(doc) -> dict[str, str]:
    return {
        m["property"]: m["content"]
        for m in doc.find_all("meta", property=True)
        if m["property"].startswith("og:")
    }


# Pages Sphinx makes without a document: sphinxext-opengraph gives them no tags.
NO_DOCUMENT = {"search.html", "genindex.html"}


def test_every_page_has_opengraph_tags(site):
    base = CONF.html_baseurl
    recipe_pages = {recipe_html(site, p) for p in RECIPES}
    for page in pages(site):
        rel = page.relative_to(site).as_posix()
        if is_redirect(page) or rel in NO_DOCUMENT:
            continue
        tags = og(soup(page))
        for key in ("og:title", "og:description", "og:type", "og:url"):
            assert tags.get(key), (page, key)
        assert tags["og:url"] == base + rel
        if page not in recipe_pages:
            assert tags["og:description"] == CONF.recipes_description, rel
            assert tags["og:type"] == "website" and "og:image" not in tags, rel
    # no drawn preview images, no description taken from the page's text
    assert not (site / "_images" / "social_previews").exists()
    assert not soup(site / "index.html").find("meta", attrs={"name": "description"})


def cards(site: Path) -> dict[str, tuple[str, str]]:
    """Recipe page -> (thumbnail, summary) of its card on the landing page."""
    found = {}
    for card in soup(site / "index.html").select(".recipe-card"):
        href = card.select_one(".recipe-card-title a")["href"]
        thumb = card.select_one("img.recipe-card-thumb")["src"]
        found[href] = (thumb, card.select_one(".recipe-card-summary").get_text(" ", strip=True))
    return found


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_opengraph_uses_summary_and_thumbnail(site, path):
    page = recipe_html(site, path)
    tags = og(soup(page))
    recipe = meta.read_recipe(path)
    assert tags["og:type"] == "article"
    assert tags["og:title"] == recipe.title
    assert tags["og:description"] == recipe.summary
    thumb, summary = cards(site)[page.relative_to(site).as_posix()]
    assert " ".join(tags["og:description"].split()) == summary
    assert tags["og:image"] == CONF.html_baseurl + thumb
    assert (site / thumb).is_file()


def test_preview_text_is_escaped_once(tmp_path):
    """The extension escapes only '"' in what it writes: the values it is given are
    escaped before, so that a browser reads back the recipe's own text."""
    summary = 'Use "x < y" & <b>not</b> markup; &amp; stays as typed.'
    context = {"meta": {"orphan": ""}}
    original = context["meta"]
    app = types.SimpleNamespace(
        config=types.SimpleNamespace(
            sphinx_gallery_conf={"gallery_dirs": "recipes"}, recipes_description=summary
        )
    )
    opengraph.add_overrides(app, "index", "page.html", context, doctree=object())
    assert original == {"orphan": ""}, "the page's own metadata is left as it was"
    html = ogp.make_tag("og:description", context["meta"]["og:description"])
    assert BeautifulSoup(html, "html.parser").meta["content"] == summary
    search = {"meta": None}
    opengraph.add_overrides(app, "search", "search.html", search, doctree=None)
    assert search == {"meta": None}


def test_baseurl_comes_from_the_repository_setting():
    owner, name = CONF.recipes_repository.split("/")
    assert CONF.html_baseurl == f"https://{owner}.github.io/{name}/"


# sitemap.xml ---------------------------------------------------------------


def sitemap_locs(site: Path) -> list[str]:
    tree = ET.parse(site / "sitemap.xml")
    ns = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9"}
    return [e.text for e in tree.getroot().findall("s:url/s:loc", ns)]


def test_sitemap_lists_every_page_and_only_pages(site):
    locs = sitemap_locs(site)
    assert len(locs) == len(set(locs))
    base = CONF.html_baseurl
    rels = {loc[len(base) :] for loc in locs}
    assert all(loc.startswith(base) for loc in locs)
    assert all((site / rel).is_file() for rel in rels)
    for path in RECIPES:
        assert recipe_html(site, path).relative_to(site).as_posix() in rels
    assert {"index.html", "sg_execution_times.html", "recipes/index.html"} <= rels
    assert not {"404.html", "search.html", "genindex.html"} & rels
    assert not any(is_redirect(site / rel) for rel in rels)


@pytest.mark.slow
def test_sitemap_is_given_the_pages_this_build_kept_from_the_last(tmp_path):
    for doc in ("a", "b", "c"):
        (tmp_path / f"{doc}.html").write_text("<html></html>")
    app = types.SimpleNamespace(
        env=types.SimpleNamespace(found_docs={"a", "b", "c", "never_written"}),
        builder=types.SimpleNamespace(get_outfilename=lambda doc: str(tmp_path / f"{doc}.html")),
    )
    unwritten = sitemap.Unwritten()
    unwritten.start(app, app.builder)
    unwritten.resolved(app, None, "b")  # written by this build: sphinx-sitemap saw it
    assert unwritten.pages(app) == ["a", "c"]
    unwritten.start(app, app.builder)  # the next build starts from nothing
    assert unwritten.pages(app) == ["a", "b", "c"]


# 404 -----------------------------------------------------------------------


def test_not_found_page_names_every_url_from_the_hosts_root(site):
    """It is served at any missing URL, at any depth: no URL in it is relative."""
    page = site / "404.html"
    doc = soup(page)
    assert "Page not found" in doc.find("h1").get_text()
    assert CONF.notfound_urls_prefix == SITE_PATH == "/recipes/"
    refs = [t.get("href") or t.get("src") for t in doc.find_all(["a", "link", "script", "img"])]
    local = [r for r in refs if r and not urlsplit(r).scheme and not r.startswith("#")]
    for ref in local:
        assert ref.startswith(SITE_PATH), ref
        assert local_file(site, page, ref).is_file(), ref
    assert any("_static/styles/" in r for r in local)  # the theme's styles
    # the links in its own text (docs/404.rst) too
    text = [a["href"] for a in doc.select("article a[href]:not(.headerlink)")]
    assert f"{SITE_PATH}index.html" in text and set(text) <= set(local)
    # other pages keep their relative URLs
    other = soup(site / "recipes" / "index.html")
    assert other.select_one('link[rel="stylesheet"]')["href"].startswith("../_static/")
    assert not any(a["href"].startswith(SITE_PATH) for a in other.select("article a[href]"))


def test_links_in_the_not_found_page_text_start_with_the_site_path():
    def document(*uris):
        doctree = docutils.utils.new_document("404", frontend.get_default_settings())
        para = nodes.paragraph()
        for uri in uris:
            para += nodes.reference("", "link", refuri=uri)
        para += nodes.reference("", "same page", refid="here")
        doctree += para
        return doctree

    app = types.SimpleNamespace(
        config=types.SimpleNamespace(notfound_urls_prefix="/n/", notfound_pagename="404"),
        builder=types.SimpleNamespace(format="html", get_target_uri=lambda d: f"{d}.html"),
    )
    uris = ["index.html", "recipes/a.html#step", "https://pytorch.org/", "#top", "mailto:x@y"]
    doctree = document(*uris)
    furniture.absolute_not_found_links(app, doctree, "404")
    found = [r.get("refuri") for r in doctree.findall(nodes.reference)]
    assert found == ["/n/index.html", "/n/recipes/a.html#step", *uris[2:], None]
    other = document(*uris)  # any other page is left as it is
    furniture.absolute_not_found_links(app, other, "index")
    assert [r.get("refuri") for r in other.findall(nodes.reference)] == [*uris, None]


def test_site_path_of_a_baseurl():
    assert furniture.site_path("https://o.github.io/name/") == "/name/"
    assert furniture.site_path("https://example.org") == "/"


# Redirects -----------------------------------------------------------------


def test_configured_redirects_lead_to_existing_pages(site):
    assert CONF.redirects
    for source, target in CONF.redirects.items():
        page = site / f"{source}.html"
        doc = soup(page)
        # A browser without scripts follows the refresh; with them, the same URL.
        refresh = doc.find("meta", attrs={"http-equiv": "refresh"})["content"]
        href = refresh.split("url=", 1)[1]
        assert f'"{href}"' in doc.find("script").get_text()
        landing = (page.parent / href).resolve()
        assert landing == (page.parent / target).resolve()
        assert landing.is_file() and not is_redirect(landing), href


def _uri(docname: str) -> str:
    return f"{docname}.html"


DOCS = {"index", "recipes/index", "recipes/compile/new"}


@pytest.mark.parametrize(
    "redirects",
    [
        {"gone": "index.html", "recipes/old": "compile/new.html#section"},
        {"old/deep/page": "../../recipes/index.html", "recipes/old": "/recipes/index.html"},
        {"old": "https://pytorch.org/docs/"},  # another site: not checked
        {"recipes/*": "https://example.org/$source.html"},  # existing pages, on purpose
    ],
)
def test_redirects_to_pages_of_the_site_are_accepted(redirects):
    assert furniture.problems(redirects, DOCS, _uri, "https://o.github.io/n/") == []


@pytest.mark.parametrize(
    "redirects, problem",
    [
        ({"index": "recipes/index.html"}, "'index' is a page of this site"),
        ({"old": "recipes/missing.html"}, "'recipes/missing.html', which is not a page"),
        ({"recipes/old": "recipes/index.html"}, "which is not a page"),  # not relative to it
        ({"old/page": "../../index.html"}, "which is not a page"),  # above the site
        # From a page at the root, sphinx-reredirects keeps "/..." as it is: the host's
        # root, above a site served under /n/.
        ({"old": "/index.html"}, "which is not a page"),
    ],
)
def test_bad_redirects_are_reported(redirects, problem):
    (found,) = furniture.problems(redirects, DOCS, _uri, "https://o.github.io/n/")
    assert problem in found


def test_a_site_at_the_hosts_root_takes_root_targets_from_root_pages():
    assert furniture.problems({"old": "/index.html"}, DOCS, _uri, "https://o.org/") == []


@pytest.mark.slow
def test_the_build_fails_on_bad_redirects(tmp_path):
    root = make_project(tmp_path, recipes={"one.py": recipe_source("One", "print(1)")})
    with (root / "conf.py").open("a") as conf:
        conf.write('redirects = {"index": "recipes/one.html", "old": "missing.html"}\n')
    built = sphinx_build(root)
    assert built.returncode != 0
    assert "redirects: 'index' is a page of this site" in built.stderr
    assert "redirects: 'old' points to 'missing.html', which is not a page" in built.stderr


# Computation times ---------------------------------------------------------


def test_computation_times_page_lists_every_recipe_from_timings(site):
    rows = json.loads((site / "recipes" / "timings.json").read_text())["recipes"]
    doc = soup(site / "sg_execution_times.html")
    table = doc.select_one("table.recipe-sortable")
    headers = [th.get_text(strip=True) for th in table.select("thead th")]
    assert headers == [
        "Recipe",
        "Status",
        "Time (s)",
        "Peak CPU memory (MB)",
        "Peak CUDA memory (MB)",
        "Device",
    ]
    body = table.select("tbody tr")
    assert len(body) == len(rows)
    by_href = {}
    for tr in body:
        cells = tr.find_all("td")
        by_href[cells[0].a["href"]] = [c.get_text(strip=True) for c in cells]
    for row in rows:
        cells = by_href[f"recipes/{row['path'][:-3]}.html"]
        assert cells[1] == row["status"]
        if row["status"] == "executed":
            assert cells[2] == f"{row['seconds']:.1f}"
            assert cells[3] == f"{row['peak_rss_mb']:.0f}"
            assert cells[5] == row["device"]
    # one bar per executed recipe, inline, no script
    executed = [r for r in rows if r["status"] == "executed" and r["seconds"]]
    svg = doc.select_one("svg.recipe-chart")
    assert svg and svg.get("role") == "img" and svg.find("title")
    assert len(svg.select("rect.recipe-chart-bar")) == len(executed)
    assert not svg.find("script")
    # sphinx-gallery's own pages (with CDN scripts) are not generated any more
    assert CONF.sphinx_gallery_conf["write_computation_times"] is False
    assert not (REPO / "docs" / "recipes" / "sg_execution_times.rst").exists()


def test_chart_bars_scale_with_time():
    rows = [
        {"recipe": "a", "status": "executed", "seconds": 2.0},
        {"recipe": "b", "status": "executed", "seconds": 8.0},
        {"recipe": "c", "status": "not-run", "seconds": 0.0},
    ]
    svg = BeautifulSoup(timespage.chart(rows), "html.parser")
    widths = {
        r.find("title").get_text().split(":")[0]: float(r["width"]) for r in svg.select("rect")
    }
    assert widths == {"b": 300.0, "a": 75.0}
    assert timespage.chart(rows[2:]) == ""


# make new ------------------------------------------------------------------


@pytest.mark.slow
def test_make_new_writes_a_recipe_that_builds_and_runs(tmp_path):
    project = tmp_path / "project"
    (project / "docs").mkdir(parents=True)
    shutil.copy(REPO / "Makefile", project / "Makefile")
    (project / ".github").symlink_to(REPO / ".github")  # the Makefile includes lint.mk
    for name in ("_ext", "_templates"):
        (project / "docs" / name).symlink_to(REPO / "docs" / name)
    (project / "recipes").mkdir()
    done = subprocess.run(
        ["make", "new", "NAME=my_first_recipe", "SECTION=basics", f"PY={sys.executable}"],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    path = project / "recipes" / "basics" / "my_first_recipe.py"
    recipe = meta.read_recipe(path)
    assert recipe.title == "My first recipe" and recipe.tags == ("basics",)
    assert recipe.summary
    assert (project / "recipes" / "basics" / "README.txt").is_file()
    ran = subprocess.run(
        [sys.executable, str(path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=build_env(),
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr
    assert "torch " in ran.stdout
    # ...and it builds as a page with no problem, even with every problem fatal
    site = make_project(tmp_path / "site", recipes={
        "basics/README.txt": (project / "recipes/basics/README.txt").read_text(),
        "basics/my_first_recipe.py": path.read_text(),
    })  # fmt: skip
    built = sphinx_build(site, "-D", "recipes_strict=1")
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    timings = json.loads((site / "_build/html/recipes/timings.json").read_text())
    assert [r["status"] for r in timings["recipes"]] == ["executed"]
    # a second recipe of the same name is refused
    again = subprocess.run(
        ["make", "new", "NAME=my_first_recipe", f"PY={sys.executable}"],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert again.returncode != 0 and "already exists" in again.stderr


@pytest.mark.parametrize("name", ["Bad-Name", "_helper", "1st"])
def test_make_new_refuses_bad_names(tmp_path, name):
    with pytest.raises(ValueError):
        newrecipe.create(tmp_path, name)


def test_make_serve_watches_sources_and_ignores_generated_pages():
    done = subprocess.run(
        ["make", "-n", "serve", "PY=python", "VENV=/nonexistent"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    lines = done.stdout.replace("\\\n", " ").splitlines()
    # sphinx-autobuild, under the wrapper that keeps one warm parent per session.
    command = next(ln for ln in lines if "-m recipes_site.serve" in ln)
    for flag in (
        "-W",
        "--keep-going",
        "--watch recipes",
        "--watch docs/_ext",
        "--ignore docs/recipes",
        "-D recipes_select=",
    ):
        assert flag in command, flag


def test_old_computation_times_pages_are_removed(tmp_path):
    from recipes_site import records

    src, out = tmp_path / "docs", tmp_path / "html"
    for rel in ("recipes/sg_execution_times", "recipes/compile/sg_execution_times"):
        (src / f"{rel}.rst").parent.mkdir(parents=True, exist_ok=True)
        (src / f"{rel}.rst").write_text("old")
        (out / f"{rel}.html").parent.mkdir(parents=True, exist_ok=True)
        (out / f"{rel}.html").write_text("<script src='https://code.jquery.com/x.js'>")
    records.write_manifest(
        src / "recipes", {"recipes": {}, "torch": "2.13.0", "host": "cpu"}, build="b"
    )
    app = types.SimpleNamespace(
        srcdir=str(src),
        outdir=str(out),
        config=types.SimpleNamespace(
            sphinx_gallery_conf={"gallery_dirs": "recipes", "src_dir": str(src)}
        ),
    )
    timespage.write(app)
    assert not list(src.rglob("recipes/**/sg_execution_times.rst"))
    assert not list(out.rglob("sg_execution_times.html"))
    assert "Computation times" in (src / "sg_execution_times.rst").read_text()


# Source links ---------------------------------------------------------------


def test_every_page_links_to_the_file_it_is_made_from(site):
    prefix = f"https://github.com/{CONF.recipes_repository}/blob/{CONF.recipes_branch}/"
    linked = {}
    for page in pages(site):
        if is_redirect(page):
            continue
        anchors = soup(page).select("div.recipe-source a")
        assert len(anchors) <= 1, page
        if anchors:
            href = anchors[0]["href"]
            assert href.startswith(prefix), (page, href)
            path = href[len(prefix) :]
            assert (REPO / path).is_file(), (page, path)
            linked[page.relative_to(site).as_posix()] = path
        assert "_sources/" not in page.read_text(encoding="utf-8"), page
    for recipe in RECIPES:
        rel = recipe_html(site, recipe).relative_to(site).as_posix()
        assert linked.get(rel) == recipe.relative_to(REPO).as_posix(), rel
    assert linked["index.html"] == "docs/index.rst"
    assert linked["recipes/index.html"] == "recipes/README.txt"
    assert "sg_execution_times.html" not in linked  # generated: no file to link to
