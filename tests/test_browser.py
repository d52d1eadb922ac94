"""The built site in a real browser (see browsers.py for which one), driven by Playwright.

The site is served from this machine only, under the same path as on GitHub
Pages (``/<name>/``, from ``html_baseurl``), with the 404 page answering for
missing files as GitHub Pages does. Every page must load without a console
error, without a request leaving 127.0.0.1 and without a serious or critical
axe-core violation; the features readers touch must work. A screenshot of
each page is saved under ``_build/screenshots/``.
"""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import urlsplit

import browsers
import pytest
from axe_playwright_python.sync_playwright import Axe
from conftest import FIXTURES, REPO, make_project, sphinx_build
from playwright.sync_api import sync_playwright
from recipes_site import meta

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SCREENSHOTS = REPO / "_build" / "screenshots"
SEED = "recipes/torch_compile_torch_function_modes.html"
PAGES = {
    "landing": "index.html",
    "recipe": SEED,
    "search": "search.html?q=function+modes",
    "computation-times": "sg_execution_times.html",
    "not-found": "no/such/recipe.html",
}


def site_prefix() -> str:
    """The path the site is served under, as on GitHub Pages: ``/recipes/``."""
    text = (REPO / "conf.py").read_text(encoding="utf-8")
    repo = re.search(r'^recipes_repository\s*=\s*"([^"]+)"', text, re.M)[1]
    return f"/{repo.split('/')[1]}/"


class _SiteHandler(http.server.SimpleHTTPRequestHandler):
    """Serves ``directory`` under ``prefix``; a missing file gets 404.html, status 404."""

    prefix = "/"

    def translate_path(self, path):
        path = urlsplit(path).path
        if not path.startswith(self.prefix):
            return str(Path(self.directory) / "__outside_the_site__")
        return super().translate_path("/" + path[len(self.prefix) :])

    def send_error(self, code, message=None, explain=None):
        page = Path(self.directory) / "404.html"
        if code != 404 or not page.is_file():
            return super().send_error(code, message, explain)
        body = page.read_bytes()
        self.send_response(404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format, *args):  # keep pytest's output clean
        pass


@pytest.fixture(scope="session")
def chromium() -> Path:
    """RECIPES_CHROMIUM, else a Chromium or Chrome found here, else Playwright's own."""
    found = browsers.find()
    if found is None:
        pytest.fail(browsers.MISSING)
    return found


@pytest.fixture(scope="session")
def base_url(site):
    handler = functools.partial(
        type("Handler", (_SiteHandler,), {"prefix": site_prefix()}), directory=str(site)
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}{site_prefix()}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def browser(chromium):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session", autouse=True)
def screenshots_dir():
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    return SCREENSHOTS


class Visit:
    """A page with everything it logged and requested."""

    def __init__(self, context, url: str):
        self.url = url
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page = context.new_page()
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.response = self.page.goto(url, wait_until="load")
        self.page.wait_for_load_state("networkidle")

    def _console(self, msg):
        if msg.type != "error":
            return
        # The 404 page is served with status 404; Chromium logs that for the document.
        if msg.location.get("url") == self.url and "404" in msg.text:
            return
        self.errors.append(f"console: {msg.text} ({msg.location.get('url')})")

    def foreign_requests(self, base_url: str) -> list[str]:
        origin = base_url[: base_url.index("/", len("http://"))] + "/"
        return [u for u in self.requests if not (u.startswith(origin) or u.startswith("data:"))]


@pytest.fixture
def context(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context
    context.close()


def visit(context, base_url: str, name: str) -> Visit:
    v = Visit(context, base_url + PAGES[name])
    if name == "search":
        v.page.wait_for_selector("#search-results ul.search li", timeout=15_000)
    return v


def _every_recipe_page() -> list[str]:
    """Each recipe page and section index, derived from the sources (not the build)."""
    recipes = meta.find_recipes(REPO / "recipes")
    pages = {
        f"recipes/{p.relative_to(REPO / 'recipes').with_suffix('.html').as_posix()}"
        for p in recipes
    }
    pages |= {
        f"recipes/{p.parent.relative_to(REPO / 'recipes').as_posix()}/index.html"
        for p in recipes
        if p.parent != REPO / "recipes"
    }
    return sorted(pages | {"recipes/index.html"})


@pytest.mark.parametrize("rel", _every_recipe_page())
def test_every_recipe_page_is_clean_offline_and_accessible(context, base_url, rel):
    v = Visit(context, base_url + rel)
    assert v.response.status == 200
    assert v.errors == []
    assert v.foreign_requests(base_url) == []
    violations = [
        (x["id"], x["impact"], [n["target"] for n in x["nodes"]][:3])
        for x in Axe().run(v.page).response["violations"]
        if x["impact"] in ("serious", "critical")
    ]
    assert violations == []


@pytest.mark.parametrize("name", list(PAGES))
def test_page_loads_cleanly_offline_and_accessibly(context, base_url, name):
    v = visit(context, base_url, name)
    v.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    assert v.response.status == (404 if name == "not-found" else 200)
    assert v.errors == []
    assert v.foreign_requests(base_url) == []
    failed = [
        u
        for u in v.requests
        if u != v.url and not u.startswith("data:") and v.page.request.get(u).status != 200
    ]
    assert failed == [], "every file a page loads is shipped with the site"
    violations = [
        (x["id"], x["impact"], x["help"], [n["target"] for n in x["nodes"]][:5])
        for x in Axe().run(v.page).response["violations"]
        if x["impact"] in ("serious", "critical")
    ]
    assert violations == []


def test_not_found_page_works_at_any_depth(context, base_url):
    v = visit(context, base_url, "not-found")
    assert "Page not found" in v.page.inner_text("h1")
    # The theme's fonts, not the browser's default serif: the page found its CSS.
    family = v.page.evaluate("getComputedStyle(document.body).fontFamily")
    assert "times" not in family.lower() and "serif" != family.strip().lower(), family
    theme = v.page.evaluate(
        "getComputedStyle(document.documentElement).getPropertyValue('--pst-font-family-base')"
    )
    assert theme.strip(), "the theme's stylesheet did not load"
    # its links lead into the site, wherever the missing page was
    v.page.click("article a:has-text('list of recipes')")
    v.page.wait_for_load_state("load")
    assert v.page.url == base_url + "index.html"


def test_an_old_page_name_leads_to_its_page_now(context, base_url):
    # conf.py's redirects: sphinx-gallery's old computation-times page
    v = Visit(context, base_url + "recipes/sg_execution_times.html")
    v.page.wait_for_url(base_url + "sg_execution_times.html")
    assert "Computation times" in v.page.inner_text("h1")
    assert v.errors == []


def test_search_finds_the_seed_recipe_by_words_in_its_text(context, base_url):
    v = visit(context, base_url, "search")
    hrefs = v.page.eval_on_selector_all(
        "#search-results ul.search li a", "links => links.map(a => a.href)"
    )
    assert base_url + SEED in hrefs
    # a word that appears only in the recipe's text, not in any title
    page = v.page
    page.goto(base_url + "search.html?q=BaseTorchFunctionMode")
    page.wait_for_selector("#search-results ul.search li", timeout=15_000)
    hrefs = page.eval_on_selector_all(
        "#search-results ul.search li a", "links => links.map(a => a.href)"
    )
    assert base_url + SEED in hrefs


def test_tag_filter_shows_only_cards_with_the_selected_tag(context, base_url):
    page = visit(context, base_url, "landing").page
    cards = page.locator("div.recipe-card")
    total = cards.count()
    assert total > 1 and page.locator("div.recipe-card[hidden]").count() == 0
    # the rarest tag hides the most cards
    tags = page.eval_on_selector_all("button.recipe-tag-button", "bs => bs.map(b => b.dataset.tag)")
    counts = {t: page.locator(f'div.recipe-card[data-tags~="{t}"]').count() for t in tags}
    tag = min(counts, key=counts.get)
    button = page.locator(f'button.recipe-tag-button[data-tag="{tag}"]')
    button.click()
    assert button.get_attribute("aria-pressed") == "true"
    hidden = page.locator("div.recipe-card[hidden]").count()
    assert 0 < hidden < total
    visible = page.eval_on_selector_all(
        "div.recipe-card:not([hidden])", "cs => cs.map(c => c.dataset.tags.split(/\\s+/))"
    )
    assert visible and all(tag in tags_of_card for tags_of_card in visible)
    clear = page.locator("button.recipe-tag-clear")
    assert clear.is_visible()
    clear.click()
    assert page.locator("div.recipe-card[hidden]").count() == 0
    assert button.get_attribute("aria-pressed") == "false"
    assert clear.is_hidden()


def test_copy_button_copies_the_code(browser, base_url):
    context = browser.new_context()
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    try:
        page = visit(context, base_url, "recipe").page
        block = page.locator("div.highlight-Python").first
        code = block.locator("pre").inner_text()
        block.hover()
        block.locator("button.copybtn").click()
        copied = page.evaluate("navigator.clipboard.readText()")
        assert copied.strip() == code.strip() and "import torch" in copied
        # the printed output has no copy button
        assert page.locator("div.sphx-glr-script-out button.copybtn").count() == 0
    finally:
        context.close()


def test_theme_switch_changes_the_theme(context, base_url):
    page = visit(context, base_url, "recipe").page
    for mode in ("dark", "light", "dark"):
        page.locator(".theme-switch-button").first.click()
        page.locator(f'.theme-change-button[data-mode="{mode}"]').first.click()
        assert page.get_attribute("html", "data-theme") == mode
    page.screenshot(path=str(SCREENSHOTS / "recipe-dark.png"), full_page=True)


def test_recipe_page_downloads_colab_and_neighbours(context, base_url):
    page = visit(context, base_url, "recipe").page
    links = page.eval_on_selector_all(".recipe-downloads a", "as => as.map(a => a.href)")
    assert sorted(u.rsplit(".", 1)[1] for u in links) == ["ipynb", "py", "zip"]
    for url in links:
        response = page.request.get(url)
        assert response.status == 200 and len(response.body()) > 0, url
    colab = page.get_attribute(".recipe-colab a", "href")
    assert colab.startswith("https://colab.research.google.com/github/")
    assert colab.endswith("/torch_compile_torch_function_modes.ipynb")
    assert page.locator(".prev-next-area a.left-prev").count() == 1
    assert page.locator(".prev-next-area a.right-next").count() == 1


def test_computation_times_table_sorts_without_a_library(context, base_url):
    page = visit(context, base_url, "computation-times").page
    assert page.locator("svg.recipe-chart rect.recipe-chart-bar").count() >= 1
    header = page.locator("table.recipe-sortable th", has_text="Time (s)")

    def times():
        cells = page.eval_on_selector_all(
            "table.recipe-sortable tbody tr td:nth-child(3)", "cs => cs.map(c => c.textContent)"
        )
        return [float(c) if c.strip() != "–" else -1.0 for c in cells]

    header.locator("button").click()
    assert header.get_attribute("aria-sort") == "ascending"
    assert times() == sorted(times())
    header.locator("button").click()
    assert header.get_attribute("aria-sort") == "descending"
    assert times() == sorted(times(), reverse=True)


@pytest.mark.slow
def test_markup_in_recipe_output_never_runs_in_the_browser(browser, tmp_path):
    """A figure titled like markup, built into a page and opened: no script runs."""
    root = make_project(tmp_path, recipes={})
    shutil.copy(FIXTURES / "faults" / "d_markup_in_title.py", root / "recipes")
    proc = sphinx_build(root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    html = root / "_build" / "html"
    handler = functools.partial(_SiteHandler, directory=str(html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        page = browser.new_page()
        dialogs = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(f"http://127.0.0.1:{server.server_port}/recipes/d_markup_in_title.html")
        page.wait_for_load_state("networkidle")
        alt = page.locator("img.sphx-glr-single-img").get_attribute("alt")
        injected = page.locator("main script").count()
        page.close()
    finally:
        server.shutdown()
        server.server_close()
    assert dialogs == []
    assert alt == 'F"><script>alert(1)</script>'
    assert injected == 0


def test_every_card_shows_a_picture_of_its_own(context, base_url):
    page = visit(context, base_url, "landing").page
    sources = page.eval_on_selector_all(
        "div.recipe-card img", "imgs => imgs.map(i => i.currentSrc || i.src)"
    )
    assert len(sources) == page.locator("div.recipe-card").count() > 1
    pictures = [page.request.get(src).body() for src in sources]
    assert all(pictures), "a card image did not load"
    assert len(set(pictures)) == len(pictures), "two cards show the same picture"
