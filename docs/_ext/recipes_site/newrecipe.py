"""``make new NAME=<name> SECTION=<section>``: start a recipe from the template.

Writes ``recipes/<section>/<name>.py`` from ``docs/_templates/recipe_template.py.txt``
(and the section's ``README.txt`` when the section is new). The result is a
valid recipe: it builds, runs with ``python`` and passes the tests as it is.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from . import meta

REPO = Path(__file__).resolve().parents[3]
TEMPLATE = REPO / "docs" / "_templates" / "recipe_template.py.txt"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def render(
    name: str, section: str = "", author: str = "Your Name", template: Path = TEMPLATE
) -> str:
    title = name.replace("_", " ").capitalize()
    tags = f'"{section}"' if section else ""
    return template.read_text(encoding="utf-8").format(
        title=title, underline="=" * len(title), author=author, tags=tags
    )


def create(root: Path, name: str, section: str = "", author: str = "Your Name") -> Path:
    """Write the new recipe below ``root`` (the ``recipes/`` folder); return its path."""
    if not _NAME.match(name):
        raise ValueError(
            f"NAME={name!r}: use lower-case letters, digits and '_', starting with a letter"
        )
    if section and not _NAME.match(section):
        raise ValueError(f"SECTION={section!r}: use lower-case letters, digits and '_'")
    taken = {p.stem: p for p in meta.find_recipes(root)}
    if name in taken:
        raise ValueError(f"a recipe named {name!r} already exists: {taken[name]}")
    folder = root / section if section else root
    folder.mkdir(parents=True, exist_ok=True)
    readme = folder / "README.txt"
    if not readme.exists():
        heading = section.replace("_", " ").capitalize()
        readme.write_text(
            f"{heading}\n{'=' * len(heading)}\n\nRecipes about {heading.lower()}.\n",
            encoding="utf-8",
        )
    path = folder / f"{name}.py"
    path.write_text(render(name, section, author), encoding="utf-8")
    meta.read_recipe(path)  # the template must give a valid recipe
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("section", nargs="?", default="")
    parser.add_argument("--author", default="Your Name")
    parser.add_argument("--root", type=Path, default=REPO / "recipes")
    args = parser.parse_args(argv)
    try:
        path = create(args.root, args.name, args.section, args.author)
    except ValueError as exc:
        print(f"make new: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}; check it with: make html RECIPE={args.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
