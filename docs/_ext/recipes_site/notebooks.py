"""The first cell of every generated notebook (sphinx-gallery's ``first_notebook_cell``).

A downloaded notebook must run where it is opened. In Google Colab the cell
installs the versions of the packages this site was built with; anywhere else
(Jupyter, VS Code, the tests) it does nothing, so a local environment is never
changed behind the reader's back. It is plain Python, valid in any kernel.
"""

from __future__ import annotations

import re
from pathlib import Path

# The packages a recipe imports at run time; the Sphinx tools are not needed.
RUNTIME_PACKAGES = ("torch", "numpy", "matplotlib")
REQUIREMENTS = Path(__file__).resolve().parents[3] / "requirements.txt"

_PIN = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s#;]+)")


def pins(requirements: Path | str = REQUIREMENTS, packages=RUNTIME_PACKAGES) -> list[str]:
    """``NAME==VERSION`` for each of ``packages``, read from a requirements file."""
    found = {}
    for line in Path(requirements).read_text(encoding="utf-8").splitlines():
        m = _PIN.match(line)
        if m:
            found[m[1].lower()] = f"{m[1]}=={m[2]}"
    missing = [p for p in packages if p.lower() not in found]
    if missing:
        raise ValueError(f"{requirements} pins none of: {', '.join(missing)}")
    return [found[p.lower()] for p in packages]


def first_cell(requirements: Path | str = REQUIREMENTS, packages=RUNTIME_PACKAGES) -> str:
    """Python source of the cell that installs ``packages`` in Colab only."""
    args = ", ".join(repr(p) for p in pins(requirements, packages))
    return (
        "# In Google Colab, install the package versions this recipe was verified with.\n"
        "# Anywhere else this cell does nothing.\n"
        "import sys\n\n"
        'if "google.colab" in sys.modules:\n'
        "    import subprocess\n\n"
        f'    subprocess.run([sys.executable, "-m", "pip", "install", "-q", {args}], check=True)\n'
    )
