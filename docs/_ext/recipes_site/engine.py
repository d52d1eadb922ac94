"""What happens around each recipe while the gallery executes it.

sphinx-gallery runs recipes one after another in one process (or in a few
worker processes with ``JOBS>1``). Two of its public extension points frame
every recipe:

* ``reset_modules`` calls :func:`reset_recipe` before and after each recipe:
  it puts PyTorch and the interpreter back into one clean state, checks that
  the reset worked, arms the recipe's time limit, starts collecting warnings
  and writes the recipe's record (status, time, memory, warnings, leaks).
* ``show_memory`` wraps the execution of every code block: :func:`run_block`
  measures wall time with CUDA synchronised, peak CPU and CUDA memory, and
  classifies the exception that ends a recipe (timed out, needs CUDA, broken).

The parent process imports torch and its compile stack once; each recipe then
only pays for the reset, not for a fresh interpreter.
"""

from __future__ import annotations

import gc
import os
import platform
import random
import re
import signal
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from . import records

# Messages PyTorch raises when a recipe asks for CUDA on a machine without it.
_NO_CUDA = re.compile(
    r"Torch not compiled with CUDA enabled|Found no NVIDIA driver|No CUDA GPUs are available"
    r"|no CUDA-capable device|CUDA driver initialization failed|cuda(?:Get)?DeviceCount"
    r"|Cannot access accelerator device when none is available"
    r"|Tried to instantiate dummy base class|requires CUDA support|has no attribute '_cuda_",
    re.I,
)
# Variables PyTorch sets for itself while compiling; they are not a recipe's doing.
_TORCH_PRIVATE_ENV = ("_TORCHINDUCTOR_", "_TORCH_")
_DRIFT = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)


class RecipeTimeout(Exception):
    """Raised inside a recipe that ran past its time limit."""


class RecipeExit(Exception):
    """A recipe called ``sys.exit``; the rest of it is not executed."""


@dataclass
class Run:
    """Everything measured while one recipe executes."""

    name: str
    src: str
    target_dir: str
    timeout: float
    expected_warnings: tuple[str, ...]
    key: str
    source_md5: str
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    peak_cuda_mb: float = 0.0
    in_block: bool = False
    expired: bool = False
    error: dict | None = None
    status: str = "executed"
    warnings: list[dict] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.time)


_current: Run | None = None
_clean: dict | None = None  # the state every recipe starts from, taken once per process
_saved_env: dict | None = None
_saved_cwd: str | None = None
_saved_modules: set[str] | None = None
_saved_filters: list | None = None
_saved_formatwarning = None


# --------------------------------------------------------------------------- state


def _torch():
    import torch

    return torch


def warm_up() -> None:
    """Import torch and its compile stack once per process, before any recipe.

    Import-time warnings that PyTorch raises about itself are not a recipe's
    doing, so they are silenced here rather than charged to the first recipe
    that happens to trigger the import.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import torch
        import torch._dynamo  # noqa: F401
        import torch._inductor.compile_fx  # noqa: F401
        import torch.utils.benchmark  # noqa: F401

        torch.compiler.reset()


def snapshot() -> dict:
    """The state that every recipe must start from, and leave behind."""
    torch = _torch()
    import torch._dynamo.config as dyn_config
    import torch._inductor.config as ind_config
    from torch._dynamo.utils import counters
    from torch.utils._python_dispatch import _len_torch_dispatch_stack

    return {
        "function modes": torch._C._len_torch_function_stack(),
        "dispatch modes": _len_torch_dispatch_stack(),
        "default dtype": str(torch.get_default_dtype()),
        "default device": str(torch.get_default_device()),
        "grad mode": torch.is_grad_enabled(),
        "deterministic algorithms": torch.are_deterministic_algorithms_enabled(),
        "num threads": torch.get_num_threads(),
        "matmul precision": torch.get_float32_matmul_precision(),
        "dynamo config": _config_items(dyn_config),
        "inductor config": _config_items(ind_config),
        "compiler stance": _stance(),
        "dynamo counters": sum(sum(c.values()) for c in counters.values()),
    }


def _stable_repr(value) -> str:
    """``repr`` that does not depend on set ordering (which varies with hash seeds)."""
    if isinstance(value, (set, frozenset)):
        return "{" + ", ".join(sorted(map(repr, value))) + "}"
    return repr(value)


def _config_items(module) -> dict:
    """Public settings of a torch config module (names with ``_`` are torch's own)."""
    return {
        k: _stable_repr(v) for k, v in module.get_config_copy().items() if not k.startswith("_")
    }


def _stance() -> str:
    from torch._dynamo import eval_frame

    return getattr(getattr(eval_frame, "_stance", None), "stance", "default")


def _diff(now: dict, clean: dict) -> list[str]:
    leaks = []
    for key, want in clean.items():
        have = now.get(key)
        if have == want:
            continue
        if isinstance(want, dict):
            changed = sorted(k for k in want.keys() | have.keys() if want.get(k) != have.get(k))
            leaks.append(f"{key} changed: {', '.join(changed[:5])}")
        else:
            leaks.append(f"{key}: {have} (expected {want})")
    return leaks


def reset_torch(clean: dict) -> None:
    """Bring PyTorch back to ``clean``: modes, defaults, compiler, RNG, memory."""
    torch = _torch()
    import torch._dynamo.config as dyn_config
    import torch._inductor.config as ind_config
    from torch._dynamo.utils import counters
    from torch.utils._python_dispatch import _len_torch_dispatch_stack, _pop_mode

    # The default device is itself a function mode: reset it before popping modes.
    torch.set_default_device(None if clean["default device"] == "cpu" else clean["default device"])
    while torch._C._len_torch_function_stack() > clean["function modes"]:
        torch._C._pop_torch_function_stack()
    while _len_torch_dispatch_stack() > clean["dispatch modes"]:
        _pop_mode()
    torch.set_default_dtype(getattr(torch, clean["default dtype"].split(".")[-1]))
    torch.set_grad_enabled(clean["grad mode"])
    torch.use_deterministic_algorithms(clean["deterministic algorithms"])
    torch.set_num_threads(clean["num threads"])
    torch.set_float32_matmul_precision(clean["matmul precision"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # restoring deprecated keys warns
        for module, key in ((dyn_config, "dynamo config"), (ind_config, "inductor config")):
            now = module.get_config_copy()
            for name, value in now.items():
                if name in clean[key] and _stable_repr(value) != clean[key][name]:
                    setattr(module, name, _original(module, name))
    if _stance() != clean["compiler stance"]:
        torch.compiler.set_stance(clean["compiler stance"])
    torch._logging.set_logs()
    torch.compiler.reset()
    counters.clear()
    seed_everything()
    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


_originals: dict[tuple[int, str], object] = {}


def _original(module, name):
    return _originals[(id(module), name)]


def _remember_originals() -> None:
    import torch._dynamo.config as dyn_config
    import torch._inductor.config as ind_config

    for module in (dyn_config, ind_config):
        for name, value in module.get_config_copy().items():
            _originals[(id(module), name)] = value


def seed_everything(seed: int = 0) -> None:
    torch = _torch()
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy

        numpy.random.seed(seed)
    except ImportError:  # pragma: no cover - numpy ships with the build requirements
        pass


# --------------------------------------------------------------------------- memory


def _reset_peak_rss() -> None:
    try:  # Linux: writing 5 resets the peak resident set size of this process
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cuda_peak_mb() -> float:
    torch = _torch()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.max_memory_allocated() / 2**20
    return 0.0


def _synchronize() -> None:
    torch = _torch()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


# --------------------------------------------------------------------------- time limit


def _on_alarm(signum, frame):
    run = _current
    if run is None:
        return
    run.expired = True
    if run.in_block:
        # Keep raising every second in case the recipe swallows the first one.
        signal.setitimer(signal.ITIMER_REAL, 1.0)
        raise RecipeTimeout(f"ran past its time limit of {run.timeout:g} s")


def _arm(timeout: float) -> None:
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)


def _disarm() -> None:
    signal.setitimer(signal.ITIMER_REAL, 0)


# --------------------------------------------------------------------------- warnings


def _recording_formatwarning(message, category, filename, lineno, line=None):
    run = _current
    if run is not None and issubclass(category, _DRIFT):
        entry = {
            "category": category.__name__,
            "message": str(message).strip(),
            "file": filename,
            "line": lineno,
        }
        text = f"{entry['category']}: {entry['message']}"
        entry["expected"] = any(re.search(p, text) for p in run.expected_warnings)
        if entry not in run.warnings:
            run.warnings.append(entry)
    return _saved_formatwarning(message, category, filename, lineno, line)


# --------------------------------------------------------------------------- hooks


def reset_recipe(gallery_conf, fname, when):
    """sphinx-gallery ``reset_modules`` hook: called before and after each recipe."""
    if fname is None:  # entering a gallery directory: nothing to do
        return
    if when == "before":
        manifest = records.read_manifest(records.gallery_root(gallery_conf))
        entry = manifest["recipes"][Path(fname).stem]
        begin(entry, isolate=manifest["isolate"], jobs=manifest["jobs"])
    else:
        end()


_isolate = True


def _first_use(jobs: int) -> None:
    """Once per process: import the compile stack and record the clean state."""
    global _clean
    warm_up()
    if jobs > 1:
        # Share the cores between worker processes instead of oversubscribing them.
        import torch._inductor.config as ind_config

        _torch().set_num_threads(max(1, (os.cpu_count() or 1) // jobs))
        ind_config.compile_threads = 1
    _remember_originals()
    _clean = snapshot()
    # Move the millions of objects torch created at import time out of the
    # collector's sight: each reset's gc.collect() then only walks what recipes
    # allocated (0.2 s -> a few ms per collection).
    gc.collect()
    gc.freeze()


def begin(entry: dict, isolate: bool = True, jobs: int = 1) -> None:
    """Start a recipe: clean state, arm its timer, start measuring.

    ``isolate=False`` skips the resets and leak checks (measurements and the
    time limit stay); it exists to measure what isolation costs.
    """
    global _current, _saved_env, _saved_cwd, _saved_modules
    global _saved_filters, _saved_formatwarning, _isolate
    if _clean is None:
        _first_use(jobs)
    _isolate = isolate
    if isolate:
        # The previous recipe's end() already reset everything; check it held.
        leftovers = _diff(snapshot(), _clean)
        if leftovers:
            reset_torch(_clean)
            leftovers = _diff(snapshot(), _clean)
        if leftovers:  # the reset itself failed: never run a recipe on dirty state
            raise RuntimeError(f"could not reset state before {entry['name']}: {leftovers}")
        seed_everything()
    _saved_env = dict(os.environ)
    _saved_cwd = os.getcwd()
    _saved_modules = set(sys.modules)
    _saved_filters = list(warnings.filters)
    _saved_formatwarning = warnings.formatwarning
    warnings.formatwarning = _recording_formatwarning
    for category in _DRIFT:
        warnings.simplefilter("always", category)
    _current = Run(
        name=entry["name"],
        src=entry["src"],
        target_dir=entry["target_dir"],
        timeout=entry["timeout"],
        expected_warnings=tuple(entry["expected_warnings"]),
        key=entry["key"],
        source_md5=entry["source_md5"],
    )
    _reset_peak_rss()
    _arm(_current.timeout)


class BlockRunner:
    """sphinx-gallery ``show_memory`` hook: ``BlockRunner()(func)`` runs one code block.

    An instance rather than a function, so that Sphinx can cache the
    configuration that holds it (Sphinx does not pickle functions).
    """

    def __call__(self, func):
        return run_block(func)

    # Equal and printed the same across builds, so that Sphinx sees an unchanged
    # configuration (it hashes the config's text to decide whether to rewrite
    # every page).
    def __eq__(self, other):
        return isinstance(other, BlockRunner)

    def __repr__(self):
        return f"{__name__}.BlockRunner()"

    __hash__ = object.__hash__


def run_block(func):
    """Execute one code block of the current recipe and measure it."""
    run = _current
    if run is None:
        return 0.0, func()
    if run.expired:
        raise RecipeTimeout(f"ran past its time limit of {run.timeout:g} s")
    start = time.perf_counter()
    run.in_block = True
    try:
        result = func()
        _synchronize()
    except SystemExit as exc:
        run.in_block = False
        _classify(run, RecipeExit(f"the recipe called sys.exit({exc.code!r})"))
        raise RecipeExit(f"the recipe called sys.exit({exc.code!r})") from None
    except Exception as exc:
        run.in_block = False
        _classify(run, exc)
        raise
    finally:
        run.in_block = False
        run.seconds += time.perf_counter() - start
    peak = peak_rss_mb()
    run.peak_rss_mb = max(run.peak_rss_mb, peak)
    run.peak_cuda_mb = max(run.peak_cuda_mb, _cuda_peak_mb())
    return peak, result


def _classify(run: Run, exc: BaseException) -> None:
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == run.src]
    line = frames[-1].lineno if frames else 0
    message = f"{type(exc).__name__}: {exc}".strip()
    if isinstance(exc, RecipeTimeout) or run.expired:
        run.status = "timed-out"
    elif _needs_cuda(exc):
        run.status = "needs-cuda"
    else:
        run.status = "failed"
    run.error = {"file": run.src, "line": line, "message": message.splitlines()[0]}


def _needs_cuda(exc: BaseException) -> bool:
    torch = _torch()
    if torch.cuda.is_available():
        return False
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if _NO_CUDA.search(str(exc)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def end() -> dict:
    """Finish a recipe: stop its timer, restore state, write its record."""
    global _current
    run = _current
    _disarm()
    if run is None:
        return {}
    _current = None
    warnings.formatwarning = _saved_formatwarning
    warnings.filters[:] = _saved_filters
    warnings._filters_mutated()
    if _isolate:
        _restore(run)
    record = _record(run)
    records.write(Path(run.target_dir), run.name, record)
    return record


def _restore(run: Run) -> None:
    """Put back what the recipe changed, and note it in the record."""
    # Counters grow whenever a recipe compiles; they are reset, not reported.
    run.leaks = [
        leak for leak in _diff(snapshot(), _clean) if not leak.startswith("dynamo counters")
    ]
    if os.getcwd() != _saved_cwd:
        run.leaks.append(f"working directory: {os.getcwd()}")
        os.chdir(_saved_cwd)
    changed_env = sorted(
        k
        for k in os.environ.keys() | _saved_env.keys()
        if os.environ.get(k) != _saved_env.get(k) and not k.startswith(_TORCH_PRIVATE_ENV)
    )
    if changed_env:
        run.leaks.append(f"environment variables changed: {', '.join(changed_env[:5])}")
        for k in changed_env:
            if k in _saved_env:
                os.environ[k] = _saved_env[k]
            else:
                del os.environ[k]
    _unload_recipe_modules(Path(run.src).parent)
    reset_torch(_clean)


def _unload_recipe_modules(folder: Path) -> None:
    folder = str(folder.resolve())
    for name in set(sys.modules) - _saved_modules:
        module_file = getattr(sys.modules[name], "__file__", None) or ""
        if module_file and str(Path(module_file).resolve()).startswith(folder + os.sep):
            del sys.modules[name]


def host_description() -> dict:
    torch = _torch()
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if torch.cuda.is_available():
        device = f"cuda ({torch.cuda.get_device_name()})"
    else:
        device = f"cpu ({cpu})"
    return {"device": device, "torch": torch.__version__, "python": platform.python_version()}


def _record(run: Run) -> dict:
    return records.new_record(
        run.name,
        run.src,
        run.status,
        run.key,
        run.source_md5,
        seconds=round(run.seconds, 6),
        peak_rss_mb=round(run.peak_rss_mb, 1),
        peak_cuda_mb=round(run.peak_cuda_mb, 1),
        error=run.error,
        warnings=run.warnings,
        leaks=run.leaks,
        **host_description(),
    )
