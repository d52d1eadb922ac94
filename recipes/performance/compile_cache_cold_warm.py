"""
Compile caching: timing a cold and a warm torch.compile
=======================================================
**Author:** PyTorch Recipes maintainers

Most of the time of a first torch.compile call is spent generating and compiling code, and
inductor stores the result on disk so that compiling the same graph again can skip that work.
This recipe points the caches at an empty temporary folder, compiles a small model with a cold
cache, then again with a warm one, and checks with counters and timings that the second compile
was served from the cache.

.. rubric:: What you will learn

* How to direct inductor's on-disk caches to a folder of your choice from inside a script
* How to tell a cache hit from a cache miss with the compiler's counters
* How large the difference between a cold and a warm compile is, measured
* How to keep one-time start-up costs of the compiler out of a cold and warm comparison

.. rubric:: Prerequisites

* PyTorch 2.13 or later
* A C++ compiler for inductor on CPU (as for any ``torch.compile`` use on CPU)
* Runs on CPU or on an accelerator such as CUDA
"""

# %%
# Where the caches live
# ---------------------
# Inductor keeps its caches in one folder: the compiled graphs (the "FX graph cache"), the
# AOTAutograd cache that sits in front of it, generated source files and the compiled kernels.
# By default the folder is ``torchinductor_<user>`` in the system's temporary directory; the
# ``TORCHINDUCTOR_CACHE_DIR`` environment variable moves it. Inductor reads that variable each
# time it needs the folder, so setting it from Python works, provided it is set before the
# first compilation that should use it.
#
# Two more details matter when switching folders inside a running process:
#
# * On GPUs, Triton keeps its own kernel cache. Inductor places it inside its folder unless
#   ``TRITON_CACHE_DIR`` says otherwise, so we point that variable into our folder as well.
# * Inductor also remembers a few paths and already loaded libraries in memory.
#   ``torch._inductor.utils.clear_caches()`` forgets them; we call it when we switch to the
#   temporary folder and again when we switch back, so that nothing keeps pointing at a folder
#   that no longer exists. (PyTorch's own tests use ``torch._inductor.utils.fresh_cache()``,
#   which packages the same steps.)
#
# We use a fresh ``tempfile.TemporaryDirectory()`` so that the first compile is guaranteed to
# be cold, and restore the previous environment in a ``finally`` block. We also make sure that
# the local caches are enabled for the duration of the experiment, in case the environment
# turned them off, with the ``patch`` context managers of the config modules.

# sphinx_gallery_tags = ["torch.compile", "caching", "performance", "plot"]
# sphinx_gallery_parallel = False
import os
import tempfile
import time

import matplotlib.pyplot as plt
import torch
import torch._functorch.config as functorch_config
import torch._inductor.config as inductor_config
from torch import nn
from torch._dynamo.utils import counters
from torch._inductor.utils import clear_caches

# sphinx_gallery_start_ignore
# Importing TorchInductor in PyTorch 2.13 emits a DeprecationWarning from torch's own
# TorchScript helpers. Silence only that warning, so that the file also runs under
# ``python -W error::DeprecationWarning``.


def _import_inductor_quietly():
    import importlib
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*torch.jit.script_method", DeprecationWarning)
        importlib.import_module("torch._inductor.compile_fx")


_import_inductor_quietly()
# sphinx_gallery_end_ignore

torch.manual_seed(0)
device = (
    torch.accelerator.current_accelerator()
    if torch.accelerator.is_available()
    else torch.device("cpu")
)

# %%
# Timing one compilation
# ----------------------
# Compilation happens on the first call of a compiled model, so we time that call. Before each
# attempt, ``torch.compiler.reset()`` (the public name of ``torch._dynamo.reset()``) drops the
# compiled code and guards that the compiler holds in memory for this process, so the next
# call has to go through compilation again and can only be helped by what is on disk. The
# counters record cache hits and misses for each attempt. We run without gradients
# (``torch.no_grad()``), so only a forward graph is compiled.


def sync():
    if device.type != "cpu":
        torch.accelerator.synchronize()


def timed_first_call(fn, *args):
    torch.compiler.reset()
    counters.clear()
    compiled = torch.compile(fn)
    sync()
    start = time.perf_counter()
    with torch.no_grad():
        out = compiled(*args)
    sync()
    seconds = time.perf_counter() - start
    stats = {
        "fx_hit": counters["inductor"]["fxgraph_cache_hit"],
        "fx_miss": counters["inductor"]["fxgraph_cache_miss"],
        "aot_hit": counters["aot_autograd"]["autograd_cache_hit"],
    }
    return out, seconds, stats


model = nn.Sequential(
    nn.Linear(64, 128), nn.GELU(), nn.Linear(128, 128), nn.LayerNorm(128), nn.Linear(128, 10)
).to(device)
x = torch.randn(32, 64, device=device)


def tiny(t):
    return torch.sin(t) + 1


# %%
# Cold, warm, warm again
# ----------------------
# The experiment has four steps, all with the same empty cache folder:
#
# 1. Compile a tiny unrelated function. When it is the first compilation in a Python process,
#    it also pays for one-time work that is not specific to any graph (for example, probing
#    which vector instructions the C++ compiler can use on this CPU). Doing this first keeps
#    that cost out of the model's cold compile.
# 2. Compile the model: a cold compile, nothing about it is in the cache.
# 3. Reset and compile the model again: a warm compile.
# 4. Reset and compile it a third time, to see that the warm time is repeatable.

cache_variables = ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR")
saved_env = {name: os.environ.get(name) for name in cache_variables}
with tempfile.TemporaryDirectory() as cache_dir:
    try:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache_dir
        os.environ["TRITON_CACHE_DIR"] = os.path.join(cache_dir, "triton")
        clear_caches()
        with (
            inductor_config.patch(fx_graph_cache=True),
            functorch_config.patch(enable_autograd_cache=True),
            torch.compiler.config.patch(force_disable_caches=False),
        ):
            _, startup_s, startup_stats = timed_first_call(tiny, x)
            cold_out, cold_s, cold_stats = timed_first_call(model, x)
            warm_out, warm_s, warm_stats = timed_first_call(model, x)
            warm2_out, warm2_s, warm2_stats = timed_first_call(model, x)
        cache_entries = sorted(
            name for name in os.listdir(cache_dir) if name in ("fxgraph", "aotautograd")
        )
        n_files = sum(len(files) for _, _, files in os.walk(cache_dir))
    finally:
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        clear_caches()
        torch.compiler.reset()

assert all(os.environ.get(name) == value for name, value in saved_env.items())

rows = [
    ("tiny function, first compile", startup_s, startup_stats),
    ("model, cold cache", cold_s, cold_stats),
    ("model, warm cache", warm_s, warm_stats),
    ("model, warm cache again", warm2_s, warm2_stats),
]
print(f"{'attempt':<30} {'seconds':>8} {'FX hit':>7} {'FX miss':>8} {'AOT hit':>8}")
for name, secs, s in rows:
    print(f"{name:<30} {secs:8.3f} {s['fx_hit']:7d} {s['fx_miss']:8d} {s['aot_hit']:8d}")
print(f"cache folder held {n_files} files, including the subfolders {cache_entries}")
print(f"cold / warm compile time: {cold_s / warm_s:.1f}x")

# %%
# The table shows the counters doing what we expect: the cold compile of the model missed the
# FX graph cache, and both warm compiles hit it (the AOTAutograd cache in front of it hit too),
# with no misses. All three compiled versions compute the same result.

assert cold_stats["fx_miss"] >= 1 and cold_stats["fx_hit"] == 0
for stats in (warm_stats, warm2_stats):
    assert stats["fx_hit"] >= 1 and stats["fx_miss"] == 0
    assert stats["aot_hit"] >= 1
assert warm_s < cold_s and warm2_s < cold_s
assert "fxgraph" in cache_entries
torch.testing.assert_close(warm_out, cold_out)
torch.testing.assert_close(warm2_out, cold_out)

# %%
# Plot
# ----
# A logarithmic axis keeps all four bars readable, since they differ by orders of magnitude.

labels = [
    "tiny function\nfirst compile",
    "model\ncold cache",
    "model\nwarm cache",
    "model\nwarm again",
]
seconds = [startup_s, cold_s, warm_s, warm2_s]
fig, ax = plt.subplots(figsize=(7, 4))
bars = ax.bar(labels, seconds, color=["tab:gray", "tab:red", "tab:green", "tab:green"])
ax.bar_label(bars, fmt="%.2f s", padding=2)
ax.set_yscale("log")
ax.set_ylabel("time of the first call (seconds, log scale)")
ax.set_title(f"torch.compile (inductor) with a cold and a warm cache on {device.type}")
ax.margins(y=0.2)
fig.tight_layout()
plt.show()

# %%
# What the numbers mean
# ---------------------
# * The first bar contains the one-time work of the process, if nothing had been compiled in
#   this process before. Paying it up front is what makes the model's cold and warm bars
#   comparable.
# * The gap between the cold and the warm bars is what the FX graph cache saves: on a hit,
#   inductor skips code generation and the C++ (or Triton) compilation, and only loads the
#   compiled artifact. Dynamo still traces the Python code and computes the cache key, which is
#   why a warm compile is not free.
# * The key covers the graph, the properties of its inputs, the PyTorch version and the
#   relevant configuration; the caching tutorial linked below lists the details.
#
# Because the cache is on disk, it also helps across processes, which is how it is used in
# practice: a job restarted with the same ``TORCHINDUCTOR_CACHE_DIR`` finds its graphs
# already compiled. The build of this documentation site relies on exactly that: all recipes
# share one persistent cache folder, so that rebuilding the pages does not compile every
# model from scratch again. This recipe uses its own temporary folder only to be able to show
# a truly cold start. To move compiled artifacts between machines,
# ``torch.compiler.save_cache_artifacts`` and ``torch.compiler.load_cache_artifacts``
# package the cache contents as bytes.
#
# Conclusion
# ----------
# Set ``TORCHINDUCTOR_CACHE_DIR`` before compiling to choose where inductor caches live,
# check the ``fxgraph_cache_hit`` and ``fxgraph_cache_miss`` counters to see what happened,
# and expect a warm compile to skip most of the work of a cold one, as measured above.
#
# Further reading
# ---------------
# * `torch.compile <https://docs.pytorch.org/docs/stable/generated/torch.compile.html>`__
# * `Compile time caching in torch.compile
#   <https://docs.pytorch.org/tutorials/recipes/torch_compile_caching_tutorial.html>`__
# * `torch.compiler.save_cache_artifacts
#   <https://docs.pytorch.org/docs/stable/generated/torch.compiler.save_cache_artifacts.html>`__
# * `torch.compiler.reset
#   <https://docs.pytorch.org/docs/stable/generated/torch.compiler.reset.html>`__
# * `tempfile.TemporaryDirectory
#   <https://docs.python.org/3/library/tempfile.html#tempfile.TemporaryDirectory>`__
#
