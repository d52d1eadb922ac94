"""
Cutting compile time by compiling a repeated block instead of the whole model
=============================================================================
**Author:** PyTorch Recipes maintainers

Models built from a stack of identical blocks, such as transformers, spend most of their compile
time tracing and lowering the same code again and again when the whole model is compiled. This
recipe compiles a small block stack in two ways, the whole model at once and each block on its
own, and measures compile time and steady-state call time for both, showing that the block is
compiled only once and reused for every layer.

.. rubric:: What you will learn

* How to compile a repeated block with ``nn.Module.compile`` instead of the whole model
* Why every block reuses the same compiled code
* How to measure compile time fairly when Inductor caches kernels and graphs
* How compile time and run time of the two approaches compare

.. rubric:: Prerequisites

* PyTorch 2.13 or later
* matplotlib for the figure
* Runs on CPU or CUDA (a C++ compiler is needed for Inductor on CPU)
"""

# %%
# A small transformer-like stack
# ------------------------------
# Each ``Block`` holds causal self-attention and a feed-forward network, each with a residual
# connection, and ends with a layer norm. ``TinyStack`` chains ``N_BLOCKS`` of them. The
# dimensions are tiny so that compilation, not arithmetic, dominates the measurements.

# sphinx_gallery_tags = ["torch.compile", "performance", "plot"]
# sphinx_gallery_parallel = False
import copy
import importlib
import time
import warnings

import matplotlib.pyplot as plt
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils import benchmark

device = (
    torch.accelerator.current_accelerator()
    if torch.accelerator.is_available()
    else torch.device("cpu")
)
torch.manual_seed(0)

N_BLOCKS, DIM, HEADS, SEQ, BATCH = 8, 32, 2, 16, 2


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.up = nn.Linear(dim, 4 * dim)
        self.down = nn.Linear(4 * dim, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.out(attn.transpose(1, 2).reshape(b, t, d))
        return self.norm(x + self.down(F.gelu(self.up(x))))


class TinyStack(nn.Module):
    def __init__(self, n_blocks, dim, heads):
        super().__init__()
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(n_blocks))

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x


model = TinyStack(N_BLOCKS, DIM, HEADS).to(device).eval()
x = torch.randn(BATCH, SEQ, DIM, device=device)
# Inference only, on one CPU thread: for a model this small, thread synchronization would cost
# more than it saves. Both settings are global and are restored at the end.
previous_threads = torch.get_num_threads()
torch.set_num_threads(1)
torch.set_grad_enabled(False)
expected = model(x)

# %%
# Making the comparison fair
# --------------------------
# Inductor caches at two levels. Compiled kernels are cached by their source code, and whole
# compiled graphs are cached by a key computed from the graph (the FX graph cache and the
# AOTAutograd cache). Both matter for timing:
#
# * the very first Inductor compilation in a process pays one-time costs (probing the CPU's
#   vector instructions, starting compile workers, the first runs of the C++ or Triton compiler)
#   and compiles the block's kernels. We pay all of this up front by compiling a throwaway copy
#   of one block, so that both measured variants find the same kernels already built;
# * the graph caches would let a later compilation skip tracing and lowering entirely, for example
#   when this script runs a second time. We switch them off for the measurements with
#   ``config.patch`` context managers, so both variants really trace and lower their graphs.
#
# In this release, loading Inductor also imports a legacy TorchScript helper inside PyTorch that
# emits a ``DeprecationWarning``; we import Inductor once with that single warning ignored.

with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore", message="`torch.jit.script_method` is deprecated", category=DeprecationWarning
    )
    importlib.import_module("torch._inductor.compile_fx")


def synchronize():
    if device.type != "cpu":
        torch.accelerator.synchronize()


def timed_first_call(module, inp):
    synchronize()
    start = time.perf_counter()
    out = module(inp)
    synchronize()
    return out, time.perf_counter() - start


warm_block = copy.deepcopy(model.blocks[0])
_, warmup_seconds = timed_first_call(torch.compile(warm_block), x)
print(f"warm-up compile of one block (one-time costs included): {warmup_seconds:.2f} s")

# %%
# Compiling the whole model and compiling each block
# --------------------------------------------------
# Full-model compilation wraps the stack in ``torch.compile``; TorchDynamo unrolls the loop over
# the blocks and Inductor receives one graph containing all ``N_BLOCKS`` blocks.
#
# Regional compilation calls ``compile()`` on every block instead. ``nn.Module.compile`` compiles
# the module's forward in place, and all blocks share the same ``Block.forward`` code. TorchDynamo
# treats the parameters of a module as graph inputs rather than constants, so the graph traced for
# the first block is valid for the others too: their guards pass and the compiled code is reused.
#
# For each variant we time the first call (compilation plus one run) and then the steady state
# with ``torch.utils.benchmark``, which synchronizes accelerators for us. The benchmark timer sets
# the number of threads while it runs, and the thread count is part of the global state that
# compiled code is guarded on, so we pass the current thread count explicitly; otherwise a
# mismatch would trigger a recompilation in the middle of the measurement. We count compiled
# graphs with a counter TorchDynamo maintains, assert that it does not move while timing, and call
# ``torch._dynamo.reset()`` before each variant so that neither inherits the other's compiled
# code. The eager model is timed the same way as a reference.

counters = torch._dynamo.utils.counters


def per_call_seconds(module):
    timer = benchmark.Timer(
        stmt="module(x)", globals={"module": module, "x": x}, num_threads=torch.get_num_threads()
    )
    return timer.blocked_autorange(min_run_time=0.2).median


def compile_full(m):
    return torch.compile(m)


def compile_regional(m):
    for block in m.blocks:
        block.compile()
    return m


results = {}
with (
    torch._inductor.config.patch(fx_graph_cache=False),
    torch._functorch.config.patch(enable_autograd_cache=False),
):
    for name, make in [("full model", compile_full), ("regional", compile_regional)]:
        torch._dynamo.reset()
        counters.clear()
        compiled = make(copy.deepcopy(model))
        out, compile_seconds = timed_first_call(compiled, x)
        torch.testing.assert_close(out, expected)
        graphs = counters["stats"]["unique_graphs"]
        run_seconds = per_call_seconds(compiled)
        assert counters["stats"]["unique_graphs"] == graphs, "no recompilation while timing"
        results[name] = dict(compile_s=compile_seconds, run_s=run_seconds, graphs=graphs)

eager_seconds = per_call_seconds(model)

print(f"{'variant':12s} {'graphs':>6s} {'compile (s)':>12s} {'per call (us)':>14s}")
print(f"{'eager':12s} {'-':>6s} {'-':>12s} {eager_seconds * 1e6:14.1f}")
for name, r in results.items():
    print(f"{name:12s} {r['graphs']:6d} {r['compile_s']:12.2f} {r['run_s'] * 1e6:14.1f}")

full_compile = results["full model"]["compile_s"]
regional_compile = results["regional"]["compile_s"]
assert results["full model"]["graphs"] == 1
assert results["regional"]["graphs"] == 1  # one graph serves all blocks
assert regional_compile < 1.0 * full_compile
assert results["regional"]["run_s"] < 5.0 * results["full model"]["run_s"]

# %%
# Both variants compiled exactly one graph and agree with eager mode. The difference is the size
# of that graph: the full-model graph contains every block, while the regional graph contains one
# block and is reused ``N_BLOCKS`` times. On this machine the regional compile time in the table
# is a fraction of the full-model time, and the gap grows with the number of blocks, so real
# models with dozens of layers see the largest savings.
#
# At run time, regional compilation gives up optimizations across block boundaries and enters
# compiled code (and checks guards) once per block instead of once per model, so some extra
# per-call overhead is expected. For a model this small each call takes well under a millisecond
# and the per-call times mostly reflect framework overhead, which is also why the compiled
# variants need not beat eager mode here. Read these numbers as indicative: the check above only
# requires regional to stay within 5x of the full-model time. With larger models the work inside
# each block dominates, and the cross-block fusion that only full-model compilation can do usually
# matters little.
#
# Compile time and run time side by side
# --------------------------------------

names = list(results)
fig, (ax_compile, ax_run) = plt.subplots(1, 2, figsize=(9, 4))
ax_compile.bar(names, [results[n]["compile_s"] for n in names], color=["tab:blue", "tab:orange"])
ax_compile.set_ylabel("first-call compile time (s)")
ax_compile.set_title(f"Compile time, {N_BLOCKS} blocks")
ax_run.bar(
    ["eager"] + names,
    [eager_seconds * 1e6] + [results[n]["run_s"] * 1e6 for n in names],
    color=["tab:gray", "tab:blue", "tab:orange"],
)
ax_run.set_ylabel("median time per call (us)")
ax_run.set_title("Steady-state run time")
fig.suptitle("Whole-model compilation against regional compilation")
fig.tight_layout()
plt.show()

torch.set_grad_enabled(True)
torch.set_num_threads(previous_threads)

# %%
# Conclusion
# ----------
# When a model repeats the same block, compiling that block instead of the whole model lets
# TorchDynamo and Inductor do the work once and reuse it for every layer. Compile time then no
# longer grows with the depth of the model, at the price of a small per-block overhead at run
# time.
# For fair compile-time measurements, pay the one-time costs before timing, switch off the graph
# caches that would otherwise hide the work, and keep the benchmark from changing guarded global
# state such as the thread count.
#
# Further reading
# ---------------
# * `torch.compile <https://docs.pytorch.org/docs/stable/generated/torch.compile.html>`__
# * `nn.Module.compile
#   <https://docs.pytorch.org/docs/stable/generated/torch.nn.Module.html#torch.nn.Module.compile>`__
# * `torch.utils.benchmark <https://docs.pytorch.org/docs/stable/benchmark_utils.html>`__
# * `Compile time caching
#   <https://docs.pytorch.org/docs/stable/torch.compiler_caching_tutorial.html>`__
# * `torch.compiler API reference <https://docs.pytorch.org/docs/stable/torch.compiler_api.html>`__
#
