"""Sphinx configuration: declarative settings only; logic lives in docs/_ext."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "docs" / "_ext"))

from recipes_site import child, furniture, notebooks  # noqa: E402

project = "PyTorch Recipes"
author = "PyTorch Recipes maintainers"
copyright = "2026, PyTorch Recipes maintainers"

# The one place that names the repository: GitHub link, "Open in Colab", edit links.
recipes_repository = "pytorch-recipes/recipes"
recipes_branch = "main"
# The deploy job publishes each generated notebook to this branch, at its path
# below recipes/ (compile/graph_breaks.ipynb); "Open in Colab" links point there.
recipes_notebooks_branch = "notebooks"
html_baseurl = "https://{}.github.io/{}/".format(*recipes_repository.split("/"))
recipes_description = "Short, runnable PyTorch recipes, executed when the site is built."
# sphinx-reredirects: old page name (no .html) -> its page now, relative to the
# old page; each old name stays a page that sends the browser on.
redirects = {
    # sphinx-gallery's per-gallery computation-times page; the site has one for all.
    "recipes/sg_execution_times": "../sg_execution_times.html",
}

extensions = [
    "sphinx_gallery.gen_gallery",
    "recipes_site",
    "sphinx_copybutton",
    "sphinx_sitemap",
    "sphinx_reredirects",
    "notfound.extension",
    "sphinxext.opengraph",
]

# sitemap.xml: every page as <html_baseurl><page>.html (no language or version
# folder), without the pages that are not content.
sitemap_url_scheme = "{link}"
sitemap_excludes = ["404.html", "search.html", "genindex.html"]

# GitHub Pages serves 404.html (docs/404.rst) at whatever URL was missing: every
# link and file of that page starts with the site's path (/recipes/) instead.
notfound_urls_prefix = furniture.site_path(html_baseurl)

# Link previews (sphinxext-opengraph); recipes_site/opengraph.py gives recipe pages
# their summary and card thumbnail, and other pages recipes_description.
ogp_site_url = html_baseurl
ogp_social_cards = {"enable": False}  # no drawn preview images
ogp_enable_meta_description = False

html_static_path = ["docs/_static"]
templates_path = ["docs/_templates"]
# Sphinx's own template bridge, keeping Jinja's compiled templates in .cache/recipes/.
template_bridge = "recipes_site.templates.CachedTemplates"
html_favicon = "docs/_static/favicon.svg"
exclude_patterns = ["_build", "**.ipynb_checkpoints", "recipes/**/*.record.json"]

sphinx_gallery_conf = {
    "examples_dirs": "../recipes",
    "gallery_dirs": "recipes",
    "within_subsection_order": "FileNameSortKey",
    # Each recipe runs in a process of its own (recipes_site/executor.py), so no
    # state needs resetting between recipes; this hook times each code cell.
    "show_memory": child.BlockRunner(),
    "remove_config_comments": True,
    "only_warn_on_example_error": True,
    "download_all_examples": False,
    "show_signature": False,
    "min_reported_time": 0,
    "capture_repr": ("__repr__",),
    "backreferences_dir": "recipes/_backreferences",
    # Its page loads scripts from CDNs; recipes_site/timespage.py writes ours.
    "write_computation_times": False,
    # Installs the pinned packages when a notebook is opened in Colab, else does nothing.
    "first_notebook_cell": notebooks.first_cell(),
}
# Recipe failures are reported once, by name, file and line, in the recipes
# summary at the end of the build (docs/_ext/recipes_site/report.py).
suppress_warnings = [
    "sphinx_gallery.example_error",
    # Two recipes may share a file name in different sections: records are kept
    # by path and figures are copied under names that include the section.
    "sphinx_gallery.duplicate_filename",
]

html_theme = "pydata_sphinx_theme"
html_title = project
html_theme_options = {
    "github_url": f"https://github.com/{recipes_repository}",
    "navbar_end": ["theme-switcher", "navbar-icon-links"],
    "show_toc_level": 2,
    "navigation_with_keys": False,
    # Templates that render nothing are dropped, so only recipe pages show the last two.
    "secondary_sidebar_items": ["page-toc", "recipe-downloads", "colab-link", "source-link"],
}
# Pages link to their real source on GitHub (source-link.html), not to a copy
# of the reST that the build generated.
html_copy_source = False
html_show_sourcelink = False
# Copy buttons on code cells only, not on their printed output.
copybutton_selector = "div.highlight-Python pre"
html_context = {"default_mode": "auto"}
html_last_updated_fmt = None
