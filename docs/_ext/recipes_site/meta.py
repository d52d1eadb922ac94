"""Read and validate a recipe's source and its declarations.

A recipe declares what it needs in comment lines, with sphinx-gallery's in-file
configuration syntax (so the build strips them from the rendered page)::

    # sphinx_gallery_tags = ["torch.compile", "modes"]
    # sphinx_gallery_requires = ["cuda>=8.0", "gpus>=2", "package:triton"]
    # sphinx_gallery_timeout = 120
    # sphinx_gallery_expected_warnings = ["FutureWarning: .*foo is deprecated"]
    # sphinx_gallery_parallel = False
    # sphinx_gallery_memory_limit = "4 GB"

Requirement strings:

``cuda``            a CUDA device is present
``cuda>=X.Y``       a CUDA device of compute capability X.Y or newer
``gpus>=N``         at least N CUDA devices
``package:NAME``    the module NAME can be imported

Everything here is pure Python and never imports torch, so it is cheap to call
from tests, from the Makefile's helpers and from the Sphinx main process.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from . import sourcekey, titles

DEFAULT_TIMEOUT = 600.0
# On Linux, one of these is present exactly when the NVIDIA driver is loaded.
NVIDIA_PROC = (Path("/proc/driver/nvidia"), Path("/dev/nvidiactl"))
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(|B|[KMGT]B|[KMGT]iB)\s*$", re.I)
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_UNITS.update({"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40})

# The same pattern sphinx-gallery uses for in-file settings.
_CONFIG_LINE = re.compile(
    r"^[ \t]*#\s*sphinx_gallery_([A-Za-z0-9_]+)[ \t]*=[ \t]*(.+?)[ \t]*$", re.M
)
_REQUIREMENT = re.compile(
    r"^(?:(?P<cuda>cuda)(?:>=(?P<cap>\d+\.\d+))?|gpus>=(?P<gpus>\d+)|package:(?P<pkg>[A-Za-z_][\w.]*))$"
)


class RecipeError(Exception):
    """A recipe that cannot be built, with the file and line to blame."""

    def __init__(self, path: Path | str, line: int, message: str):
        super().__init__(f"{path}:{line}: {message}")
        self.path = str(path)
        self.line = line
        self.message = message

    def as_dict(self) -> dict:
        return {"file": self.path, "line": self.line, "message": self.message}


@dataclass(frozen=True)
class Requirement:
    text: str
    cuda: bool = False
    min_capability: tuple[int, int] | None = None
    min_gpus: int = 0
    package: str | None = None


@dataclass(frozen=True)
class RecipeMeta:
    path: Path
    title: str
    summary: str = ""
    tags: tuple[str, ...] = ()
    requires: tuple[Requirement, ...] = ()
    timeout: float = DEFAULT_TIMEOUT
    expected_warnings: tuple[str, ...] = ()
    parallel: bool = True
    memory_limit: int | None = None  # bytes
    source_md5: str = ""  # of the whole text: what the page shows
    code_key: str = ""  # of what can change the output (:mod:`.sourcekey`)
    lines_key: str = ""  # of the code cells where they sit

    @property
    def name(self) -> str:
        return self.path.stem


def parse_requirement(text: str) -> Requirement:
    m = _REQUIREMENT.match(text.strip())
    if not m:
        raise ValueError(
            f"unknown requirement {text!r}; use 'cuda', 'cuda>=X.Y', 'gpus>=N' or 'package:NAME'"
        )
    if m["cuda"]:
        cap = tuple(int(p) for p in m["cap"].split(".")) if m["cap"] else None
        return Requirement(text, cuda=True, min_capability=cap)
    if m["gpus"]:
        return Requirement(text, cuda=True, min_gpus=int(m["gpus"]))
    return Requirement(text, package=m["pkg"])


def _line_of_offset(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def read_source(path: Path) -> str:
    """Return the recipe's text, or raise RecipeError for bytes that are not UTF-8."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise RecipeError(
            path, line, f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None


def docstring(tree: ast.Module) -> str | None:
    """The module docstring as sphinx-gallery reads it (cleaned, a leading newline kept)."""
    node = tree.body[0] if tree.body else None
    if not (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    ):
        return None
    text = ast.get_docstring(tree) or ""
    return "\n" + text if node.value.value[:1] == "\n" else text


def _title(path: Path, tree: ast.Module) -> str:
    doc = docstring(tree)
    if doc is None:
        raise RecipeError(
            path,
            1,
            "no title docstring: a recipe starts with a docstring whose first line is "
            "the title, underlined with '='",
        )
    found = titles.find(doc)
    if found is None:
        raise RecipeError(
            path,
            tree.body[0].lineno,
            "the docstring has no title: sphinx-gallery takes the first line of its first "
            "paragraph that is not a directive or a comment",
        )
    return found.text


def parse_size(value) -> int:
    """``"4 GB"``, ``"512MiB"`` or a number of bytes -> bytes; ValueError otherwise."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return int(value)
    m = _SIZE.match(value) if isinstance(value, str) else None
    if not m or float(m[1]) <= 0:
        raise ValueError(f'{value!r} is not a size such as "4 GB" or "512 MiB"')
    return int(float(m[1]) * _UNITS[m[2].lower()])


def format_size(size: float) -> str:
    for unit, factor in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size:.0f} B"


def summary(docstring: str) -> str:
    """The first plain paragraph after the title and the author line."""
    found = titles.find(docstring)
    body = "\n".join(docstring.split("\n")[found.end + 1 :]) if found else ""
    for para in re.split(r"\n\s*\n", body):
        lines = [
            ln.strip()
            for ln in para.strip().splitlines()
            if ln.strip() and not ln.strip().startswith("**Author")
        ]
        if lines and not lines[0].startswith(".. "):
            text = " ".join(lines)
            return re.sub(r"``([^`]+)``", r"\1", text)
    return ""


def _check_cells(path: Path, text: str, tree: ast.Module) -> None:
    """Declarations must share a cell with code, or the page shows an empty code cell."""
    lines = text.splitlines()
    start = tree.body[0].end_lineno if tree.body else 0
    cell: list[tuple[int, str]] = []

    def flush():
        has_code = any(ln.strip() and not ln.lstrip().startswith("#") for _, ln in cell)
        for number, ln in cell:
            if _CONFIG_LINE.match(ln) and not has_code:
                raise RecipeError(
                    path,
                    number,
                    "a sphinx_gallery_ declaration must sit in a "
                    "code cell that also holds code (put it above the first import)",
                )

    for number, line in enumerate(lines[start:], start + 1):
        if line.startswith("# %%"):
            flush()
            cell = []
        else:
            cell.append((number, line))
    flush()


def _declarations(path: Path, text: str) -> tuple[dict, dict]:
    """``sphinx_gallery_<name> = <literal>`` lines: (name -> value, name -> line)."""
    values: dict[str, object] = {}
    lines: dict[str, int] = {}
    for m in _CONFIG_LINE.finditer(text):
        key, raw = m[1], m[2]
        line = _line_of_offset(text, m.start())
        try:
            values[key] = ast.literal_eval(raw)
        except (SyntaxError, ValueError):
            raise RecipeError(
                path, line, f"sphinx_gallery_{key}: {raw!r} is not a Python literal"
            ) from None
        lines[key] = line
    return values, lines


def _str_list(v) -> bool:
    return isinstance(v, (list, tuple)) and all(isinstance(s, str) for s in v)


# name -> (test, what the value must be)
_CHECKS = (
    ("tags", _str_list, "a list of strings"),
    (
        "tags",
        lambda v: all(t.strip() and not re.search(r"\s", t) for t in v),
        "a list of tags without spaces (use '-' between words: \"graph-breaks\")",
    ),
    ("requires", _str_list, "a list of strings"),
    ("expected_warnings", _str_list, "a list of regular expressions"),
    (
        "timeout",
        lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0,
        "a positive number of seconds",
    ),
    ("parallel", lambda v: isinstance(v, bool), "True or False"),
)


def _checked(path: Path, values: dict, lines: dict) -> dict:
    """The declarations, validated and converted; RecipeError at the offending line."""
    for key, ok, expected in _CHECKS:
        if key in values and not ok(values[key]):
            raise RecipeError(path, lines[key], f"sphinx_gallery_{key} must be {expected}")
    out = dict(values)
    try:
        if "memory_limit" in values:
            out["memory_limit"] = parse_size(values["memory_limit"])
    except ValueError as exc:
        raise RecipeError(
            path, lines["memory_limit"], f"sphinx_gallery_memory_limit: {exc}"
        ) from None
    try:
        out["requires"] = tuple(parse_requirement(r) for r in values.get("requires", ()))
    except ValueError as exc:
        raise RecipeError(path, lines["requires"], str(exc)) from None
    for pattern in values.get("expected_warnings", ()):
        try:
            re.compile(pattern)
        except re.error as exc:
            raise RecipeError(
                path, lines["expected_warnings"], f"bad pattern {pattern!r}: {exc}"
            ) from None
    return out


def read_recipe(path: Path | str) -> RecipeMeta:
    """Parse a recipe file; raise RecipeError naming file and line on bad input."""
    import hashlib

    path = Path(path)
    text = read_source(path)
    try:
        tree = ast.parse(text, filename=str(path))
    except SyntaxError as exc:
        raise RecipeError(path, exc.lineno or 1, f"SyntaxError: {exc.msg}") from None
    title = _title(path, tree)
    values = _checked(path, *_declarations(path, text))
    _check_cells(path, text, tree)
    return RecipeMeta(
        path=path,
        title=title,
        summary=summary(docstring(tree) or ""),
        tags=tuple(values.get("tags", ())),
        requires=values["requires"],
        timeout=float(values.get("timeout", DEFAULT_TIMEOUT)),
        expected_warnings=tuple(values.get("expected_warnings", ())),
        parallel=bool(values.get("parallel", True)),
        memory_limit=values.get("memory_limit"),
        source_md5=hashlib.md5(text.encode("utf-8")).hexdigest(),
        code_key=sourcekey.code_key(text),  # one parse for both: sourcekey.blocks is cached
        lines_key=sourcekey.lines_key(text),
    )


def find_recipes(root: Path | str) -> list[Path]:
    """Every recipe script below ``root``, in a stable order."""
    root = Path(root)
    return sorted(p for p in root.rglob("*.py") if not p.name.startswith("_"))


# Run in a process of its own by Host.detect: what CUDA offers here.
_PROBE = """
import json, torch
ok = torch.cuda.is_available()
print(json.dumps({
    "available": ok,
    "capability": list(torch.cuda.get_device_capability()) if ok else None,
    "count": torch.cuda.device_count() if ok else 0,
    "name": torch.cuda.get_device_name() if ok else "",
}))
"""


@dataclass(frozen=True)
class Host:
    """What the machine running the recipes offers."""

    cuda_available: bool = False
    capability: tuple[int, int] | None = None
    gpu_count: int = 0
    gpu_name: str = ""

    @classmethod
    def detect(cls) -> Host:
        """What this machine offers, asked of a short-lived process: the process that
        asks (Sphinx, which starts the warm parent) never initialises CUDA itself."""
        if not cuda_possible():
            return cls()  # no need to import torch (seconds) to know that
        import json
        import subprocess

        try:
            done = subprocess.run(
                [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=300
            )
            found = json.loads(done.stdout.strip().splitlines()[-1])
        except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
            return cls()
        if not found.get("available"):
            return cls()
        return cls(
            cuda_available=True,
            capability=tuple(found["capability"]),
            gpu_count=found["count"],
            gpu_name=found["name"],
        )

    @property
    def device(self) -> str:
        return f"cuda ({self.gpu_name})" if self.cuda_available else "cpu"

    @property
    def kind(self) -> str:
        """What a recipe's output depends on: ``cuda`` or ``cpu`` (not the GPU model)."""
        return "cuda" if self.cuda_available else "cpu"


def cuda_possible() -> bool:
    """False when CUDA certainly cannot work here, decided without importing torch.

    A CPU build of torch says so in its version (``2.13.0+cpu``), and a Linux
    machine without the NVIDIA driver has neither ``/proc/driver/nvidia`` nor
    ``/dev/nvidiactl``.
    """
    try:
        version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return False
    if version.endswith("+cpu"):
        return False
    return sys.platform != "linux" or any(p.exists() for p in NVIDIA_PROC)


def unmet(meta: RecipeMeta, host: Host) -> list[str]:
    """Human-readable reasons why ``host`` cannot run the recipe (empty: it can)."""
    reasons = []
    for req in meta.requires:
        if req.package:
            if importlib.util.find_spec(req.package.split(".")[0]) is None:
                reasons.append(f"needs the Python package {req.package}")
            continue
        if not host.cuda_available:
            reasons.append(f"needs CUDA ({req.text})" if req.text != "cuda" else "needs CUDA")
        elif req.min_capability and (host.capability or (0, 0)) < req.min_capability:
            have = ".".join(map(str, host.capability or (0, 0)))
            want = ".".join(map(str, req.min_capability))
            reasons.append(f"needs CUDA compute capability {want} or newer (this GPU has {have})")
        elif req.min_gpus and host.gpu_count < req.min_gpus:
            reasons.append(f"needs {req.min_gpus} GPUs (this machine has {host.gpu_count})")
    return list(dict.fromkeys(reasons))
