"""The GPU check in one command: ``make check-gpu`` (``python tests/check_gpu.py``).

For a machine with an NVIDIA GPU and a CUDA build of torch. In copies of the
project under a temporary folder (the checkout is never written to), it runs
one step after another, each under its own time limit, so that the whole
stays within ``--budget`` seconds (9.5 minutes by default); a step that fails
or runs out of time does not stop the others:

``env``       a virtual environment over the interpreter that holds torch
              (``python3 -m venv --system-site-packages``); with ``--wheels DIR``
              it installs requirements.txt and requirements-test.txt there,
              without torch, from DIR alone (no network);
``gpu``       the GPUs (nvidia-smi and torch), MIG mode, CUDA_VISIBLE_DEVICES,
              and the device kind the site gives recipes here;
``fork``      a parent preloaded as the fork server preloads
              (``recipes_site.warm_compile``) has not loaded the CUDA driver
              (no ``/dev/nvidia*`` device file in its ``/proc/self/maps``), and a child forked
              from it allocates on the GPU and synchronises;
``compile``   a first and a second ``torch.compile`` of a small function, in a
              child forked from such a parent, with an empty inductor cache, then
              in another child with that cache warm;
``site``      the whole site: ``make html DEVICE=cuda STRICT=1``;
``pipeline``  a distributed build of two shards: ``make plan SHARDS=2``,
              ``make shard SHARD=1/2`` and ``2/2`` (each in a copy of its own, as
              on two runners), then ``make merge`` over the shards' stores;
``tests``     the recipes' own tests and the engine's fixtures:
              ``pytest tests/test_recipes.py`` and ``tests/test_engine_builds.py``
              (side by side, to fit the budget), on the site built above.

It ends with one table (recipe, status, seconds, peak CUDA memory, device, from
the site's ``timings.json``), then the problems found, each with the last lines
of its output, and exits 1 if any step failed. Where there is no GPU it says
what it looked for and exits 2 at once, building nothing.

Usage (``--help`` lists every option)::

    python3 tests/check_gpu.py                # python3 holds a CUDA torch and the requirements
    python3 tests/check_gpu.py --wheels .whl  # no network: the requirements come as wheels
    python3 tests/check_gpu.py --device cpu --steps env,site  # rehearse a step here, no GPU

``python3`` is the interpreter that holds the machine's CUDA build of torch (or
name it with ``--python``); the venv sees its packages even where it is itself
a venv. ``--wheels DIR`` takes wheels built for that interpreter (``pip
download --only-binary=:all: --python-version 3.12 --platform ...``), in DIR or
its subfolders. The shards execute the four quickest recipes of the site build
(``--shard-recipes``), the merge renders the rest from the site build's store.

Its parts that need no GPU (parsing nvidia-smi, the commands run without make,
deciding "no GPU here", the table, the time limits) are tested in
``tests/test_check_gpu.py``; the script imports nothing outside the standard
library, so it runs under the machine's own ``python3``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NO_GPU = 2  # the exit status where there is no GPU to check
DEFAULT_BUDGET = 570.0  # seconds for every step together
# On Linux, one of these exists exactly when the NVIDIA driver is loaded.
DRIVER_FILES = ("/dev/nvidiactl", "/proc/driver/nvidia")
SMI_FIELDS = ("index", "name", "memory.total", "compute_cap", "mig.mode.current", "driver_version")
# Requirements the environment step does not install from the wheels, and why.
LEFT_OUT = {
    "torch": "the machine's own CUDA build is used",
    "playwright": "only the browser tests use it, and this check does not run them",
    "axe-playwright-python": "only the browser tests use it, and this check does not run them",
}
REQUIREMENT_FILES = ("requirements.txt", "requirements-test.txt")
# What a copy of the project leaves out: what builds and tools make (as .gitignore
# says), the version control, and folders of wheels or graphics libraries.
SKIPPED_NAMES = {".git", "__pycache__", ".pytest_cache", ".ruff_cache", ".whl", ".gl"}
SKIPPED_PATHS = {
    ".venv",
    "_build",
    ".cache",
    "docs/recipes",
    "docs/sg_execution_times.rst",
    "docs/sg_api_usage.rst",
}
# Variables of the caller that must not reach the builds: make's own (a `make
# check-gpu FOO=1` would pass FOO to every build), a `make serve` session's
# warm parent, an activated environment, and compile caches (each step sets its own).
DROPPED_ENV = (
    "MAKEFLAGS",
    "MFLAGS",
    "MAKELEVEL",
    "MAKEOVERRIDES",
    "RECIPES_SERVE_PID",
    "VIRTUAL_ENV",
    "PYTHONHOME",
    "TORCHINDUCTOR_CACHE_DIR",
    "TRITON_CACHE_DIR",
)
TAIL_LINES = 25  # lines of output shown for each problem
MIN_STEP = 10.0  # seconds: a step given less is not started


# ------------------------------------------------------------------- the machine's facts


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    memory_mib: int | None = None
    capability: str | None = None
    mig: str | None = None
    driver: str | None = None

    def describe(self) -> str:
        parts = [f"GPU {self.index}: {self.name}"]
        if self.memory_mib is not None:
            parts.append(f"{self.memory_mib} MiB")
        if self.capability:
            parts.append(f"compute capability {self.capability}")
        parts.append(f"MIG {self.mig or 'not supported'}")
        if self.driver:
            parts.append(f"driver {self.driver}")
        return ", ".join(parts)


def _value(text: str) -> str | None:
    """An nvidia-smi field, or None for what it cannot tell (``[N/A]``, ``N/A``, empty)."""
    text = text.strip()
    return None if text.strip("[]").lower() in ("", "n/a", "not supported") else text


def parse_smi_csv(text: str, fields: tuple[str, ...] = SMI_FIELDS) -> list[Gpu]:
    """The GPUs in ``nvidia-smi --query-gpu=<fields> --format=csv,noheader,nounits`` output."""
    gpus = []
    for row in csv.reader(io.StringIO(text), skipinitialspace=True):
        if not row or not "".join(row).strip():
            continue
        if len(row) != len(fields):
            raise ValueError(f"nvidia-smi gave {len(row)} fields, not {len(fields)}: {row!r}")
        values = dict(zip(fields, (_value(v) for v in row), strict=True))
        memory = values.get("memory.total")
        gpus.append(
            Gpu(
                index=int(values["index"]),
                name=values.get("name") or "unknown GPU",
                memory_mib=int(float(memory)) if memory else None,
                capability=values.get("compute_cap"),
                mig=values.get("mig.mode.current"),
                driver=values.get("driver_version"),
            )
        )
    return gpus


@dataclass(frozen=True)
class Facts:
    """What decides whether there is a GPU to check, each found without importing torch."""

    driver_files: dict[str, bool]  # path -> exists
    nvidia_smi: str | None  # its path, None when it is not on PATH
    gpus: list[Gpu] | None  # what nvidia-smi listed; None when it was not asked
    smi_error: str  # why nvidia-smi gave no list
    python: str  # the interpreter whose torch is used
    torch: str | None  # its torch's version, None when it has none
    visible: str | None  # CUDA_VISIBLE_DEVICES, None when unset


def no_gpu_reasons(facts: Facts) -> list[str]:
    """Why no GPU can be checked here (empty: there is one)."""
    reasons = []
    if not any(facts.driver_files.values()):
        reasons.append("the NVIDIA driver is not loaded")
    elif facts.gpus is not None and not facts.gpus:
        reasons.append("nvidia-smi lists no GPU")
    if facts.torch is None:
        reasons.append(f"{facts.python} has no torch")
    elif facts.torch.endswith("+cpu"):
        reasons.append(f"the torch of {facts.python} is a CPU build ({facts.torch})")
    if facts.visible is not None and (
        not facts.visible.strip() or facts.visible.strip().startswith("-")
    ):
        reasons.append(f"CUDA_VISIBLE_DEVICES={facts.visible!r} hides every GPU")
    return reasons


def no_gpu_message(facts: Facts, reasons: list[str]) -> str:
    """One paragraph: there is no GPU here, what was looked for, and what was found."""
    files = ", ".join(
        f"{p} ({'present' if ok else 'absent'})" for p, ok in facts.driver_files.items()
    )
    if facts.nvidia_smi is None:
        smi = "the nvidia-smi command (not on PATH)"
    elif facts.gpus is None:
        smi = f"{facts.nvidia_smi} (not asked: no driver)"
        if facts.smi_error:
            smi = f"{facts.nvidia_smi} ({facts.smi_error})"
    else:
        smi = f"{facts.nvidia_smi} ({len(facts.gpus)} GPU(s) listed)"
    torch = facts.torch or "none installed"
    visible = "unset" if facts.visible is None else repr(facts.visible)
    return (
        f"No GPU here: {'; '.join(reasons)}. This check needs an NVIDIA GPU with its driver "
        f"loaded and a CUDA build of torch; it looked for the driver's files {files}, for "
        f"{smi}, and at the torch of {facts.python} ({torch}); CUDA_VISIBLE_DEVICES is "
        f"{visible}. Nothing was built. Run it on a machine with a GPU, or pass --device cpu "
        "to rehearse its steps here (that proves nothing about CUDA)."
    )


def torch_version(python: str) -> str | None:
    """The version of the torch ``python`` would import, read from its metadata (fast)."""
    code = "import importlib.metadata as m\ntry: print(m.version('torch'))\nexcept Exception: pass"
    try:
        out = subprocess.run(
            [python, "-c", code], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def query_smi(smi: str, fields: tuple[str, ...] = SMI_FIELDS) -> tuple[list[Gpu] | None, str]:
    """(the GPUs nvidia-smi lists, or None, and why not); older drivers lack compute_cap."""
    error = ""
    for asked in (fields, tuple(f for f in fields if f != "compute_cap")):
        cmd = [smi, f"--query-gpu={','.join(asked)}", "--format=csv,noheader,nounits"]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"could not run: {exc}"
        if out.returncode == 0:
            try:
                return parse_smi_csv(out.stdout, asked), ""
            except ValueError as exc:
                return None, str(exc)
        error = (out.stdout + out.stderr).strip().splitlines()[-1:] or [f"status {out.returncode}"]
        error = f"failed: {error[0]}"
    return None, error


def gather_facts(python: str) -> Facts:
    driver_files = {path: Path(path).exists() for path in DRIVER_FILES}
    smi = shutil.which("nvidia-smi")
    gpus, smi_error = None, ""
    if smi and any(driver_files.values()):
        gpus, smi_error = query_smi(smi)
    return Facts(
        driver_files=driver_files,
        nvidia_smi=smi,
        gpus=gpus,
        smi_error=smi_error,
        python=python,
        torch=torch_version(python),
        visible=os.environ.get("CUDA_VISIBLE_DEVICES"),
    )


# ------------------------------------------------------------------- pure helpers


def requirements(texts: list[str], left_out=LEFT_OUT) -> list[str]:
    """The requirement lines of ``texts`` (requirements files), without ``left_out``'s."""
    lines = []
    for text in texts:
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            name = re.split(r"[<>=!~;\[ ]", line, maxsplit=1)[0].lower().replace("_", "-")
            if line and name not in left_out:
                lines.append(line)
    return lines


def pins(lines: list[str]) -> dict[str, str]:
    """name -> version for the ``name==version`` lines."""
    found = {}
    for line in lines:
        m = re.match(r"^([A-Za-z0-9_.-]+)\s*==\s*([^\s;]+)", line)
        if m:
            found[m[1].lower().replace("_", "-")] = m[2]
    return found


def step_limit(default: float, left: float, reserved_later: float) -> float:
    """A step's time limit: its own, cut to what the budget leaves once later steps'
    reserves are set aside; 0 when that is under :data:`MIN_STEP` (it is not started)."""
    limit = min(default, left - reserved_later)
    return limit if limit >= MIN_STEP else 0.0


def choose_stale(rows: list[dict], count: int | None) -> list[str]:
    """The recipes a shard test leaves stale: the ``count`` quickest that executed
    (all of them for None), so that two shards execute a few and the merge the rest."""
    ran = sorted(
        (r.get("seconds") or 0.0, r["recipe"]) for r in rows if r.get("status") == "executed"
    )
    names = [name for _, name in ran]
    return names if count is None else names[:count]


def _cell(value, spec: str) -> str:
    if value is None or value == "":
        return "-"
    try:
        return format(float(value), spec)
    except (TypeError, ValueError):
        return str(value)


def format_table(rows: list[dict]) -> str:
    """One line per recipe: recipe, status, seconds, peak CUDA memory (MB), device."""
    head = ("recipe", "status", "seconds", "peak CUDA MB", "device")
    body = [
        (
            str(r.get("recipe", "?")),
            str(r.get("status") or "-"),
            _cell(r.get("seconds"), ".2f"),
            _cell(r.get("peak_cuda_mb"), ".1f"),
            str(r.get("device") or "-"),
        )
        for r in rows
    ]
    total = sum(float(r.get("seconds") or 0) for r in rows)
    body.append(("total", f"{len(rows)} recipes", f"{total:.2f}", "", ""))
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]
    right = {2, 3}

    def line(cells) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(head), rule, *(line(b) for b in body[:-1]), rule, line(body[-1])])


def without_make(target: str, variables: dict[str, str]) -> str:
    """What ``make <target> VAR=value...`` runs (the Makefile's recipe), as one shell line,
    for a machine that has no ``make``; ``tests/test_check_gpu.py`` compares the two."""
    v = {"RECIPE": "", "SHARD": "", "PLAN": "", "DEVICE": "", "JOBS": "1", "STRICT": "0"}
    v.update(variables)
    if target == "shard":  # the Makefile's target-specific values
        v.update(PLAN="_build/plan/plan.json", STRICT="1")
    py = ".venv/bin/python"
    options = (
        f'-W --keep-going -c . -D recipes_select="{v["RECIPE"]}" -D recipes_shard="{v["SHARD"]}" '
        f'-D recipes_plan="{v["PLAN"]}" -D recipes_device="{v["DEVICE"]}" '
        f"-D recipes_jobs={v['JOBS']} -D recipes_strict={v['STRICT']}"
    )
    sphinx = f"{py} -m sphinx -b html {options}"
    pipeline = f"PYTHONPATH=docs/_ext {py} -m recipes_site.pipeline --store .cache/recipes/store"
    commands = {
        "html": [f"{sphinx} docs _build/html"],
        "plan": [
            f'{pipeline} plan --shards {v.get("SHARDS", "1")} --device "{v["DEVICE"]}" '
            "--out _build/plan/plan.json"
        ],
        "shard": [f"{py} -m sphinx -b dummy {options} docs _build/shard"],
        "merge": [
            f'{pipeline} merge --device "{v["DEVICE"]}" --from _build/shards',
            f"{sphinx} -D plot_gallery=0 -D recipes_require_all=1 docs _build/html",
        ],
    }[target]
    exports = (
        'export TORCHINDUCTOR_CACHE_DIR="$PWD/.cache/torch/inductor" '
        'TRITON_CACHE_DIR="$PWD/.cache/torch/triton" MPLBACKEND=Agg PYTHONDONTWRITEBYTECODE=1'
    )
    return " && ".join([exports, *commands])


def make(target: str, **variables: str) -> list[str]:
    """``make <target> VAR=value...``, or the same commands where there is no make."""
    if shutil.which("make"):
        return ["make", target, *(f"{k}={val}" for k, val in variables.items())]
    return ["sh", "-c", without_make(target, variables)]


def tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def judge_fork(result: dict, device: str) -> list[str]:
    """What the fork check's result says went wrong (empty: nothing)."""
    problems = []
    if result.get("parent_libcuda"):
        problems.append(
            "the preloaded parent has the CUDA driver initialised (device files mapped): "
            + ", ".join(result["parent_libcuda"])
        )
    if result.get("parent_cuda_initialized"):
        problems.append("the preloaded parent initialised CUDA")
    child = result.get("child") or {}
    if not child.get("ok"):
        problems.append(f"the forked child could not use {device}: {child.get('error', '?')}")
    elif device == "cuda" and not child.get("libcuda"):
        problems.append(
            "the forked child computed on cuda with no /dev/nvidia* mapped: the maps prove nothing"
        )
    if result.get("parent_libcuda_after"):
        problems.append("the parent has the CUDA driver initialised after its child used it")
    return problems


def judge_plan(planned: list[str], left_out: list[str], rows: list[dict], seeded: bool) -> list:
    """Whether the plan found stale exactly what the store lacked: the recipes whose
    outputs were left out, and those the site build did not store (failed ones)."""
    if not seeded:
        return []
    unstored = {r["recipe"] for r in rows if r.get("status") != "executed"}
    problems = []
    missed = sorted(set(left_out) - set(planned))
    if missed:
        problems.append(f"the plan left out {', '.join(missed)}, whose outputs the store lacked")
    extra = sorted(set(planned) - set(left_out) - unstored)
    if extra:
        problems.append(f"the plan found {', '.join(extra)} stale, though the store held them")
    return problems


def judge_compile(result: dict) -> list[str]:
    problems = []
    for label in ("empty cache", "warm cache"):
        child = (result.get("children") or {}).get(label) or {}
        if not child.get("ok"):
            problems.append(f"compiling with the {label} failed: {child.get('error', '?')}")
    return problems


def describe_compile(result: dict) -> str:
    parts = []
    for label in ("empty cache", "warm cache"):
        child = (result.get("children") or {}).get(label) or {}
        if child.get("ok"):
            first, second = child["seconds"]
            hits = child.get("fxgraph_cache_hits")
            parts.append(
                f"{label}: first {first:.2f} s, second {second:.2f} s"
                + (f" ({hits} FX graph cache hit(s))" if hits is not None else "")
            )
    return "; ".join(parts) or "no figure"


# ------------------------------------------------------------------- the code run in children

# Each prints one line "RESULT <json>" last. PYTHONPATH holds the copy's docs/_ext.
_HELPERS = """
def libcuda():
    # An initialised CUDA driver maps its device files; importing torch maps libcuda.so
    # and NVML opens the device files, but neither maps them (seen on an H200).
    with open("/proc/self/maps") as maps:
        fields = [line.split(maxsplit=5) for line in maps]
        paths = {f[5].strip() for f in fields if len(f) == 6}
        return sorted(p for p in paths if p.startswith("/dev/nvidia"))


def in_child(work):
    # work() in a child forked from this process; its JSON result, or why there is none.
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            res = work()
        except BaseException as exc:
            res = {"ok": False, "error": repr(exc)[:2000]}
        os.write(w, json.dumps(res).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.waitpid(pid, 0)
    return json.loads(data or b'{"ok": false, "error": "the child said nothing"}')
"""

FORK_CHECK = (
    """
import json, os, sys, time
start = time.perf_counter()
import recipes_site.warm_compile  # what the fork server preloads before it forks recipes
import torch
device = sys.argv[1]
"""
    + _HELPERS
    + """
out = {
    "preload_seconds": round(time.perf_counter() - start, 2),
    "parent_libcuda": libcuda(),
    "parent_cuda_initialized": torch.cuda.is_initialized(),
    "parent_sees_cuda": torch.cuda.is_available(),
}
def compute():
    t = time.perf_counter()
    x = torch.ones(1 << 20, device=device)
    total = float((x * 2).sum().item())
    if device == "cuda":
        torch.cuda.synchronize()
    assert total == 2.0 * (1 << 20), total
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    return {"ok": True, "device": name, "seconds": round(time.perf_counter() - t, 3),
            "libcuda": bool(libcuda())}

out["child"] = in_child(compute)
out["parent_libcuda_after"] = libcuda()
print("RESULT " + json.dumps(out))
"""
)

COMPILE_CHECK = (
    _HELPERS
    + """
import json, os, sys, time
start = time.perf_counter()
import recipes_site.warm_compile  # what the fork server preloads before it forks recipes
import torch
from torch._dynamo.utils import counters
device, cache = sys.argv[1], sys.argv[2]
preload = round(time.perf_counter() - start, 2)

def step(x, w):
    return torch.nn.functional.silu(x @ w).cumsum(dim=-1).amax(dim=0) + (x * w).tanh().mean()

def child():
    # This child's caches: the same empty folder for the first child, warm for the second.
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(cache, "inductor")
    os.environ["TRITON_CACHE_DIR"] = os.path.join(cache, "triton")
    torch.manual_seed(0)
    x = torch.rand(256, 256, device=device)
    w = torch.rand(256, 256, device=device)
    expected = step(x, w)  # eager first: CUDA's start is not a compile's cost
    if device == "cuda":
        torch.cuda.synchronize()
    seconds, hits = [], 0
    for _ in range(2):
        torch.compiler.reset()
        counters.clear()
        t = time.perf_counter()
        got = torch.compile(step)(x, w)
        if device == "cuda":
            torch.cuda.synchronize()
        seconds.append(round(time.perf_counter() - t, 3))
        hits += counters["inductor"]["fxgraph_cache_hit"]
        torch.testing.assert_close(got, expected, rtol=1e-3, atol=1e-3)
    return {"ok": True, "seconds": seconds, "fxgraph_cache_hits": hits}

results = {label: in_child(child) for label in ("empty cache", "warm cache")}
print("RESULT " + json.dumps({"preload_seconds": preload, "children": results}))
"""
)

GPU_INFO = """
import json, sys
import torch
from recipes_site import meta
out = {"torch": torch.__version__, "cuda": torch.version.cuda, "available": False, "devices": []}
if torch.cuda.is_available():
    out["available"] = True
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        out["devices"].append({"name": p.name, "capability": f"{p.major}.{p.minor}",
                               "memory_gib": round(p.total_memory / 2**30, 1)})
host = meta.Host.detect()
out["kind"], out["host"] = host.kind, host.device
print("RESULT " + json.dumps(out))
"""

ENV_CHECK = """
import importlib, importlib.metadata as md, json, sys
wanted = json.loads(sys.argv[1])
modules = ["torch", "sphinx", "sphinx_gallery", "pydata_sphinx_theme", "matplotlib", "numpy",
           "PIL", "sphinx_copybutton", "psutil", "pytest", "nbformat", "bs4",
           "nbclient", "ipykernel"]
missing = []
for name in modules:
    try:
        importlib.import_module(name)
    except Exception as exc:
        missing.append(f"{name}: {exc!r}")
versions = {}
for name in wanted:
    try:
        versions[name] = md.version(name)
    except md.PackageNotFoundError:
        versions[name] = None
print("RESULT " + json.dumps({"missing": missing, "versions": versions,
                              "torch": md.version("torch"), "executable": sys.executable}))
"""


# ------------------------------------------------------------------- running steps


@dataclass
class Outcome:
    returncode: int | None  # None: it ran out of time
    seconds: float
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


@dataclass
class Step:
    name: str
    title: str
    limit: float  # seconds it may take at most
    reserve: float  # seconds kept for it when earlier steps' limits are set
    needs: tuple[str, ...] = ()


@dataclass
class StepResult:
    name: str
    ok: bool
    seconds: float = 0.0
    summary: str = ""
    problems: list[str] = field(default_factory=list)
    output: str = ""  # the output to show under a problem
    skipped: bool = False


STEPS = (
    Step("env", "the environment (venv, wheels) and copies of the project", 150, 30),
    Step("gpu", "the GPUs, MIG mode, CUDA_VISIBLE_DEVICES, torch", 60, 10, ("env",)),
    Step("fork", "a preloaded parent without CUDA, a forked child with it", 90, 20, ("env",)),
    Step("compile", "torch.compile in forked children: empty cache, then warm", 150, 30, ("env",)),
    Step("site", "make html DEVICE=<device> STRICT=1", 300, 90, ("env",)),
    Step("pipeline", "make plan SHARDS=2, make shard 1/2 and 2/2, make merge", 200, 60, ("env",)),
    Step("tests", "pytest test_recipes.py and test_engine_builds.py", 360, 60, ("env",)),
)


def _kill(proc: subprocess.Popen) -> None:
    """End a command and its process group (it was started in a session of its own)."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run(cmds: list[tuple[str, list[str], Path]], env: dict, limit: float, log: Path) -> list:
    """Run ``(label, argv, cwd)`` commands side by side within ``limit`` seconds; append
    each one's output to ``log``; return an :class:`Outcome` per command."""
    start = time.monotonic()
    running = []
    for i, (label, argv, cwd) in enumerate(cmds):
        part = log.with_name(f"{log.stem}.{i}.part")
        handle = open(part, "w")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        running.append((label, argv, cwd, proc, handle, part))
    outcomes = []
    for label, argv, cwd, proc, handle, part in running:
        try:
            proc.wait(timeout=max(0.0, limit - (time.monotonic() - start)))
            code = proc.returncode
        except subprocess.TimeoutExpired:
            _kill(proc)
            code = None
        handle.close()
        text = part.read_text(errors="replace")
        part.unlink()
        seconds = time.monotonic() - start
        if code is None:
            text += f"\n[check-gpu] stopped: it ran past its limit of {limit:.0f} s\n"
        with open(log, "a") as f:
            f.write(f"$ cd {cwd} && {' '.join(argv)}   # {label}\n{text}\n")
            f.write(f"[check-gpu] {label}: status {code}, {seconds:.1f} s\n\n")
        outcomes.append(Outcome(code, seconds, text))
    return outcomes


def result_of(outcome: Outcome) -> dict | None:
    """The JSON a child program printed on its last ``RESULT`` line."""
    for line in reversed(outcome.output.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    return None


def failure(outcome: Outcome, what: str) -> str:
    if outcome.returncode is None:
        return f"{what} ran out of time"
    return f"{what} exited with status {outcome.returncode}"


def copy_project(src: Path, dst: Path) -> Path:
    """A copy of a project's sources, without what builds and tools make."""

    def ignore(folder: str, names: list[str]) -> set[str]:
        rel = Path(os.path.relpath(folder, src))
        return {
            n
            for n in names
            if n in SKIPPED_NAMES or (rel / n).as_posix() in SKIPPED_PATHS or n.endswith(".pyc")
        }

    shutil.copytree(src, dst, symlinks=True, ignore=ignore)
    return dst


class Check:
    """One run of the check: its folders, its environment, and what the steps found."""

    def __init__(self, args, work: Path, logs: Path):
        self.args = args
        self.device = args.device
        self.work = work
        self.logs = logs
        self.venv = work / "venv"
        self.python = str(self.venv / "bin" / "python")
        self.site = work / "site"
        self.facts: Facts | None = None
        self.gpu_info: dict | None = None
        self.rows: list[dict] = []
        self.notes: list[str] = []
        self.lines: list[str] = []  # findings for the summary, in step order
        env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
        env.update(
            PATH=f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
            PYTHONUNBUFFERED="1",
            PYTHONDONTWRITEBYTECODE="1",
            MPLBACKEND="Agg",
        )
        self.env = env

    def log(self, step: str) -> Path:
        return self.logs / f"{step}.log"

    def ext_env(self, **extra: str) -> dict:
        env = dict(self.env)
        paths = [str(self.site / "docs" / "_ext"), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        env.update(extra)
        return env

    def prepare_copy(self, src: Path, dst: Path, torch_cache: Path | None = None) -> Path:
        copy_project(src, dst)
        (dst / ".venv").symlink_to(self.venv)
        if torch_cache is not None:  # a compile cache restored, as CI restores it
            (dst / ".cache").mkdir(exist_ok=True)
            torch_cache.mkdir(parents=True, exist_ok=True)
            (dst / ".cache" / "torch").symlink_to(torch_cache)
        return dst

    # --------------------------------------------------------------- the steps

    def step_env(self, limit: float) -> StepResult:
        deadline = time.monotonic() + limit
        base = self.args.python
        log = self.log("env")
        # The site copy is this run's snapshot of the checkout: every later copy is
        # made from it, so an edit made meanwhile reaches no step.
        self.prepare_copy(REPO, self.site)
        texts = [(self.site / name).read_text() for name in REQUIREMENT_FILES]
        wanted = requirements(texts)
        (self.work / "requirements.txt").write_text("\n".join(wanted) + "\n")
        site_dirs = (
            "import json, site, sysconfig\n"
            "p = sysconfig.get_paths()\n"
            "user = [site.getusersitepackages()] if site.ENABLE_USER_SITE else []\n"
            "dirs = site.getsitepackages() + user + [p['purelib'], p['platlib']]\n"
            "print('RESULT ' + json.dumps({'purelib': p['purelib'], 'dirs': dirs}))"
        )
        venv = [base, "-m", "venv", "--system-site-packages", "--without-pip", str(self.venv)]
        cmds = [
            ("venv", venv),
            ("base site-packages", [base, "-c", site_dirs]),
            ("venv site-packages", [self.python, "-c", site_dirs]),
        ]
        found = {}
        for label, argv in cmds:
            out = run([(label, argv, self.work)], self.env, deadline - time.monotonic(), log)[0]
            if not out.ok:
                return StepResult("env", False, problems=[failure(out, label)], output=out.output)
            found[label] = result_of(out)
        # The interpreter that holds torch may itself be a venv, whose packages
        # --system-site-packages does not reach: add its folders after the venv's own.
        own = Path(found["venv site-packages"]["purelib"])
        lines = [
            f"import site; site.addsitedir({d!r})"
            for d in dict.fromkeys(found["base site-packages"]["dirs"])
            if Path(d).is_dir()
        ]
        own.mkdir(parents=True, exist_ok=True)
        (own / "_check_gpu_base.pth").write_text("\n".join(lines) + "\n")
        strict = False
        if self.args.wheels:
            folders = sorted({p.parent for p in Path(self.args.wheels).rglob("*.whl")})
            if not folders:
                return StepResult("env", False, problems=[f"no wheel under {self.args.wheels}"])
            install = [self.python, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
            install += ["--no-index", "--no-cache-dir"]
            for folder in folders:
                install += ["--find-links", str(folder)]
            install += ["-r", str(self.work / "requirements.txt")]
            left = deadline - time.monotonic()
            out = run([("pip install", install, self.work)], self.env, left, log)[0]
            if not out.ok:
                problem = failure(out, f"pip install --no-index from {self.args.wheels}")
                return StepResult("env", False, problems=[problem], output=out.output)
            strict = True
        pinned = pins(wanted)
        check = [self.python, "-c", ENV_CHECK, json.dumps(sorted(pinned))]
        out = run([("imports", check, self.work)], self.env, deadline - time.monotonic(), log)[0]
        found = result_of(out)
        if not out.ok or found is None:
            return StepResult(
                "env", False, problems=[failure(out, "the import check")], output=out.output
            )
        problems = [f"cannot import {m}" for m in found["missing"]]
        for name, want in sorted(pinned.items()):
            have = found["versions"].get(name)
            if have != want:
                text = f"{name} is {have or 'not installed'}, requirements pin {want}"
                (problems if strict or have is None else self.notes).append(text)
        pinned_torch = pins(requirements(texts, left_out={})).get("torch")
        self.notes.append(
            f"torch {found['torch']} is used (requirements.txt pins {pinned_torch}: "
            f"{LEFT_OUT['torch']})"
        )
        for stamp in (".stamp-build", ".stamp-test"):  # the Makefile installs nothing more
            (self.venv / stamp).touch()
        how = f"wheels from {self.args.wheels}" if self.args.wheels else "no install"
        self.lines.append(f"environment: {self.venv} over {base} ({how}), torch {found['torch']}")
        return StepResult("env", not problems, summary=how, problems=problems)

    def step_gpu(self, limit: float) -> StepResult:
        facts = self.facts
        for gpu in facts.gpus or []:
            self.lines.append(gpu.describe())
        if facts.gpus is None:
            self.lines.append(f"nvidia-smi: {facts.smi_error or 'not run'}")
        visible = "unset" if facts.visible is None else repr(facts.visible)
        self.lines.append(f"CUDA_VISIBLE_DEVICES: {visible}")
        out = run(
            [("gpu info", [self.python, "-c", GPU_INFO], self.work)],
            self.ext_env(),
            limit,
            self.log("gpu"),
        )[0]
        info = result_of(out)
        if not out.ok or info is None:
            return StepResult(
                "gpu", False, problems=[failure(out, "torch's GPU query")], output=out.output
            )
        self.gpu_info = info
        devices = "; ".join(
            f"{d['name']} (capability {d['capability']}, {d['memory_gib']} GiB)"
            for d in info["devices"]
        )
        self.lines.append(
            f"torch {info['torch']} (CUDA {info['cuda']}) sees {len(info['devices'])} GPU(s)"
            f"{': ' + devices if devices else ''}; recipes run on {info['host']}"
        )
        problems = []
        if info["kind"] != self.device:
            problems.append(f"the site runs recipes on {info['kind']} here, not {self.device}")
        return StepResult("gpu", not problems, problems=problems, output=out.output)

    def step_fork(self, limit: float) -> StepResult:
        argv = [self.python, "-c", FORK_CHECK, self.device]
        out = run([("fork check", argv, self.work)], self.ext_env(), limit, self.log("fork"))[0]
        found = result_of(out)
        if found is None:
            return StepResult(
                "fork", False, problems=[failure(out, "the fork check")], output=out.output
            )
        problems = judge_fork(found, self.device)
        child = found.get("child") or {}
        self.lines.append(
            f"fork: a parent preloaded recipes_site.warm_compile ({found['preload_seconds']} s); "
            f"CUDA driver initialised: {'yes' if found['parent_libcuda'] else 'no'}; "
            "its forked child "
            + (
                f"computed on {child.get('device')} in {child.get('seconds')} s"
                if child.get("ok")
                else "failed"
            )
        )
        return StepResult("fork", not problems, problems=problems, output=out.output)

    def step_compile(self, limit: float) -> StepResult:
        cache = self.work / "compile-cache"
        shutil.rmtree(cache, ignore_errors=True)
        cache.mkdir()
        # The parent's own caches are elsewhere: the children's folder starts empty.
        env = self.ext_env(
            TORCHINDUCTOR_CACHE_DIR=str(self.work / "preload-cache" / "inductor"),
            TRITON_CACHE_DIR=str(self.work / "preload-cache" / "triton"),
        )
        argv = [self.python, "-c", COMPILE_CHECK, self.device, str(cache)]
        out = run([("compile check", argv, self.work)], env, limit, self.log("compile"))[0]
        found = result_of(out)
        if found is None:
            return StepResult(
                "compile", False, problems=[failure(out, "the compile check")], output=out.output
            )
        problems = judge_compile(found)
        warm = found["children"].get("warm cache") or {}
        if warm.get("ok") and not warm.get("fxgraph_cache_hits"):
            self.notes.append("the compile in the child with a warm cache hit no FX graph cache")
        self.lines.append(f"torch.compile in forked children: {describe_compile(found)}")
        return StepResult("compile", not problems, problems=problems, output=out.output)

    def read_rows(self, root: Path) -> list[dict]:
        path = root / "_build" / "html" / "recipes" / "timings.json"
        try:
            return json.loads(path.read_text())["recipes"]
        except (OSError, ValueError, KeyError):
            return []

    def step_site(self, limit: float) -> StepResult:
        argv = make("html", DEVICE=self.device, STRICT="1")
        out = run([("make html", argv, self.site)], self.env, limit, self.log("site"))[0]
        self.rows = self.read_rows(self.site)
        problems = [] if out.ok else [failure(out, f"make html DEVICE={self.device} STRICT=1")]
        if not self.rows:
            problems.append("the build wrote no _build/html/recipes/timings.json")
        bad = [r["recipe"] for r in self.rows if r.get("status") not in ("executed", "skipped")]
        if bad and out.ok:
            problems.append(f"recipes that did not execute: {', '.join(bad)}")
        return StepResult("site", not problems, problems=problems, output=out.output)

    def step_pipeline(self, limit: float) -> StepResult:
        deadline = time.monotonic() + limit
        log = self.log("pipeline")
        root = self.work / "pipeline"
        torch_cache = self.site / ".cache" / "torch"
        merge = self.prepare_copy(self.site, root / "plan-and-merge", torch_cache)
        shards = [self.prepare_copy(self.site, root / f"shard-{i}", torch_cache) for i in (1, 2)]
        # The plan and the merge start from the store the site build left (as CI
        # restores the newest store), less the outputs of a few recipes, which the
        # shards execute; the shards start with no store (fresh runners).
        count = None if self.args.shard_recipes == "all" else int(self.args.shard_recipes)
        stale = choose_stale(self.rows, count)
        store = self.site / ".cache" / "recipes" / "store"
        seeded = store.is_dir() and count is not None
        if seeded:
            into = merge / ".cache" / "recipes" / "store"
            shutil.copytree(store, into, ignore=shutil.ignore_patterns(".*"))
            for entry in into.glob("*/entry.json"):
                if json.loads(entry.read_text()).get("recipe") in stale:
                    shutil.rmtree(entry.parent)
        d = self.device
        steps: list[tuple[str, list[str], Path]] = [
            ("plan", make("plan", SHARDS="2", DEVICE=d), merge),
            ("shard 1/2", make("shard", SHARD="1/2", DEVICE=d), shards[0]),
            ("shard 2/2", make("shard", SHARD="2/2", DEVICE=d), shards[1]),
            ("merge", make("merge", DEVICE=d), merge),
        ]
        problems, outputs, plan = [], [], None
        for label, argv, cwd in steps:
            if label.startswith("shard") and plan is not None:
                (cwd / "_build" / "plan").mkdir(parents=True, exist_ok=True)
                shutil.copy(merge / "_build" / "plan" / "plan.json", cwd / "_build" / "plan")
            if label == "merge":  # every shard's store entries land in _build/shards
                into = merge / "_build" / "shards"
                into.mkdir(parents=True, exist_ok=True)
                for shard in shards:
                    for entry in sorted((shard / ".cache" / "recipes" / "store").glob("*")):
                        if entry.is_dir() and not entry.name.startswith("."):
                            shutil.copytree(entry, into / entry.name, dirs_exist_ok=True)
            left = deadline - time.monotonic()
            if left < 1:
                problems.append(f"{label}: not started, the step's time ran out")
                continue
            out = run([(label, argv, cwd)], self.env, left, log)[0]
            if not out.ok:
                problems.append(failure(out, f"make {label}"))
                outputs.append(f"--- {label}\n{tail(out.output)}")
            if label == "plan" and out.ok:
                plan = json.loads((merge / "_build" / "plan" / "plan.json").read_text())
        merged = self.read_rows(merge)
        if plan is not None:
            split = "; ".join(
                f"shard {i}: {', '.join(s) or 'nothing'}" for i, s in enumerate(plan["shards"], 1)
            )
            self.lines.append(
                f"plan/shard/merge: {len(plan['stale'])} stale recipe(s) ({split}); the merge "
                f"rendered {len(merged)} recipe(s) from the store"
            )
            problems += judge_plan(plan["stale"], stale, self.rows, seeded=seeded)
        if self.rows and len(merged) < len(self.rows):
            problems.append(
                f"the merge rendered {len(merged)} recipe(s), the site build {len(self.rows)}"
            )
        return StepResult("pipeline", not problems, problems=problems, output="\n".join(outputs))

    def step_tests(self, limit: float) -> StepResult:
        cmds = []
        for name in ("test_recipes", "test_engine_builds"):
            # A temporary folder each: two pytest sessions side by side would clean
            # each other's numbered folders up.
            argv = [self.python, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
            argv += [f"--basetemp={self.work / ('pytest-' + name)}", f"tests/{name}.py"]
            cmds.append((f"tests/{name}.py", argv, self.site))
        # Only the project's own pytest settings: plugins the machine's interpreter
        # carries (pytest-xdist, -cov, -timeout...) are not loaded.
        env = dict(self.env, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
        outs = run(cmds, env, limit, self.log("tests"))
        problems, outputs = [], []
        for (label, _, _), out in zip(cmds, outs, strict=True):
            if not out.ok:
                problems.append(failure(out, f"pytest {label}"))
                outputs.append(f"--- {label}\n{tail(out.output)}")
            last = [ln for ln in out.output.splitlines() if ln.strip()][-1:]
            self.lines.append(f"pytest {label}: {last[0].strip('= ') if last else 'no output'}")
        return StepResult("tests", not problems, problems=problems, output="\n".join(outputs))


# ------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python tests/check_gpu.py",
        description="Build, test and time the site on this machine's NVIDIA GPU, in "
        "copies of the project; print one table and the problems found.",
    )
    parser.add_argument(
        "--wheels",
        metavar="DIR",
        help="install requirements.txt and requirements-test.txt (without torch and the "
        "browser tools) from the wheels in DIR and its subfolders, without the network",
    )
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="the interpreter whose torch (a CUDA build) and packages are used (default: this one)",
    )
    parser.add_argument(
        "--device",
        choices=("cuda", "cpu"),
        default="cuda",
        help="cpu: rehearse every step on a machine without a GPU (proves nothing about CUDA)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=DEFAULT_BUDGET,
        help="seconds for every step together (default %(default)g)",
    )
    parser.add_argument(
        "--steps",
        default=",".join(s.name for s in STEPS),
        help="the steps to run, in order (default: %(default)s)",
    )
    parser.add_argument(
        "--shard-recipes",
        default="4",
        metavar="N|all",
        help="how many recipes the shards execute: the quickest N of the "
        "site build, or all (default %(default)s)",
    )
    parser.add_argument(
        "--workdir", type=Path, help="where the copies go (default: a new temporary folder)"
    )
    parser.add_argument(
        "--logs",
        type=Path,
        help="where each step's whole output goes (default: a new temporary "
        "folder, or WORKDIR/logs)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the working folder (removed at the end otherwise)"
    )
    args = parser.parse_args(argv)
    names = [s.name for s in STEPS]
    wanted = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in names]
    if unknown or "env" not in wanted:
        parser.error(f"--steps: {', '.join(unknown) or 'env is needed'}; the steps are {names}")
    if args.shard_recipes != "all" and not args.shard_recipes.isdigit():
        parser.error("--shard-recipes takes a number or 'all'")
    args.steps = wanted
    if args.wheels:
        args.wheels = str(Path(args.wheels).resolve())
    return args


def say(text: str) -> None:
    print(f"[check-gpu] {text}", flush=True)


def summary(check: Check, results: list[StepResult], started: float) -> str:
    out = ["", "=" * 78, f"check-gpu on {os.uname().nodename}, device {check.device}"]
    out += [f"  {line}" for line in check.lines]
    out += [f"  note: {note}" for note in check.notes]
    out.append("")
    out.append(
        format_table(check.rows)
        if check.rows
        else "(no recipe table: the site step wrote no timings.json)"
    )
    out.append("")
    steps = ", ".join(
        f"{r.name} {'skipped' if r.skipped else 'ok' if r.ok else 'FAILED'} {r.seconds:.0f} s"
        for r in results
    )
    out.append(f"steps: {steps}; {time.monotonic() - started:.0f} s in all")
    failed = [r for r in results if not r.ok]
    if not failed:
        out.append("problems: none")
        return "\n".join(out)
    out.append(f"problems ({len(failed)} step(s)):")
    for r in failed:
        for problem in r.problems or ["failed"]:
            out.append(f"- {r.name}: {problem}")
        if r.output.strip():
            out.append("  last lines of its output:")
            out += [f"    {line}" for line in tail(r.output).splitlines()]
        if check.log(r.name).exists():
            out.append(f"  whole output: {check.log(r.name)}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    args = parse_args(argv)
    facts = gather_facts(args.python)
    if args.device == "cuda":
        reasons = no_gpu_reasons(facts)
        if reasons:
            print(no_gpu_message(facts, reasons), file=sys.stderr)
            return NO_GPU
    work = args.workdir or Path(tempfile.mkdtemp(prefix="check-gpu-"))
    work.mkdir(parents=True, exist_ok=True)
    work = work.resolve()
    # The logs outlive the working folder, which is removed at the end.
    if args.logs is None:
        logs = work / "logs" if args.workdir else Path(tempfile.mkdtemp(prefix="check-gpu-logs-"))
    else:
        logs = args.logs
    logs = logs.resolve()
    logs.mkdir(parents=True, exist_ok=True)
    check = Check(args, work, logs)
    check.facts = facts
    say(f"working in {work}; each step's output goes to {logs}")
    steps = [s for s in STEPS if s.name in args.steps]
    results: list[StepResult] = []
    deadline = started + args.budget
    try:
        for i, step in enumerate(steps):
            failed = [r.name for r in results if not r.ok and r.name in step.needs]
            later = sum(s.reserve for s in steps[i + 1 :])
            limit = step_limit(step.limit, deadline - time.monotonic(), later)
            if failed or not limit:
                why = f"needs {', '.join(failed)}" if failed else "no time left in the budget"
                results.append(
                    StepResult(step.name, False, problems=[f"not run: {why}"], skipped=True)
                )
                say(f"{step.name}: not run ({why})")
                continue
            say(f"{step.name}: {step.title} (limit {limit:.0f} s)")
            begin = time.monotonic()
            try:
                result = getattr(check, f"step_{step.name}")(limit)
            except Exception as exc:  # a bug here, or a machine that surprises: go on
                import traceback

                result = StepResult(
                    step.name,
                    False,
                    problems=[f"the check itself failed: {exc!r}"],
                    output=traceback.format_exc(),
                )
            result.seconds = time.monotonic() - begin
            results.append(result)
            say(f"{step.name}: {'ok' if result.ok else 'FAILED'} in {result.seconds:.0f} s")
    finally:
        print(summary(check, results, started), flush=True)
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
