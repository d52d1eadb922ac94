"""Sphinx's template bridge, with Jinja's compiled templates kept on disk.

Each build is a new process (``make html``, and each rebuild of ``make
serve``), and Jinja compiles every template it renders from source again: for
this theme, about half a second before the first page is written. Jinja can
keep what it compiled (``FileSystemBytecodeCache``, keyed by the template's
name and checked against its source), and Sphinx lets a project choose its
template bridge (the ``template_bridge`` setting): this is Sphinx's own bridge
with that cache switched on, in ``.cache/recipes/templates`` beside the store.
"""

from __future__ import annotations

from pathlib import Path

from jinja2 import FileSystemBytecodeCache
from sphinx.jinja2glue import BuiltinTemplateLoader

FOLDER = ".cache/recipes/templates"


class CachedTemplates(BuiltinTemplateLoader):
    def init(self, builder, theme=None, dirs=None) -> None:
        super().init(builder, theme, dirs)
        folder = Path(builder.confdir, FOLDER)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:  # a read-only checkout: compile in memory, as Sphinx does
            return
        self.environment.bytecode_cache = FileSystemBytecodeCache(str(folder))
