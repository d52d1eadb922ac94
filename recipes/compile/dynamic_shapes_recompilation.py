"""
Counting recompilations under static, automatic and dynamic shapes
==================================================================
**Author:** PyTorch Recipes maintainers

A compiled function is specialized to the shapes it first sees, so feeding it inputs of new sizes
can trigger a fresh compilation for each size. This recipe counts compilations with a tiny custom
backend while a function is called on a sequence of batch sizes, compares dynamic=False, the
default automatic dynamic behaviour and dynamic=True, and shows how mark_dynamic avoids the
initial specialization.

.. rubric:: What you will learn

* How to count compilations with a custom ``torch.compile`` backend
* Why ``dynamic=False`` recompiles for every new size, and where the recompile limit stops it
* How the default setting switches to a symbolic size after the second distinct shape
* How ``dynamic=True`` and ``torch._dynamo.mark_dynamic`` compile a size-generic graph up front

.. rubric:: Prerequisites

* PyTorch 2.13 or later
* matplotlib for the figure
* Runs on CPU or CUDA
"""

# %%
# A counting backend
# ------------------
# A ``torch.compile`` backend is any callable that receives the traced ``torch.fx.GraphModule`` and
# example inputs and returns something callable. Ours records the shape of every graph input,
# using the ``example_value`` that TorchDynamo attaches to each placeholder node, and then returns
# ``gm.forward`` so the graph runs as ordinary PyTorch code. The number of records is the number of
# compilations. Because no code is generated, each compilation costs only the tracing time, which
# keeps this experiment fast.
#
# When a size is compiled symbolically, the placeholder shapes contain symbols such as ``s77``
# instead of integers, and the size itself shows up as an extra integer input of the graph.

# sphinx_gallery_tags = ["torch.compile", "dynamic-shapes", "plot"]
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

device = (
    torch.accelerator.current_accelerator()
    if torch.accelerator.is_available()
    else torch.device("cpu")
)
torch.manual_seed(0)


class CountingBackend:
    def __init__(self):
        self.graph_inputs = []  # one entry per compilation

    def __call__(self, gm, example_inputs):
        shapes = []
        for node in gm.graph.find_nodes(op="placeholder"):
            value = node.meta.get("example_value")
            shapes.append(tuple(value.shape) if isinstance(value, torch.Tensor) else value)
        self.graph_inputs.append(shapes)
        return gm.forward

    @property
    def count(self):
        return len(self.graph_inputs)


def normalize_rows(x):
    return F.softmax(x * 2.0, dim=-1).sum(dim=0)


# %%
# The experiment
# --------------
# We call the compiled function on a fixed sequence of batch sizes (rows). Some sizes repeat, which
# lets us see cache hits: a size that has already been compiled for runs the existing graph
# without compiling again. The number of columns stays 8.
#
# The same function is compiled four ways, and ``torch._dynamo.reset()`` clears the compiled code
# between runs. A reset is needed here because TorchDynamo stores compiled code, and what it has
# learned about changing sizes, on the function's code object, so without it each run would start
# from where the previous one stopped.
#
# Sizes 0 and 1 are deliberately avoided: TorchDynamo always specializes them, because code for a
# dimension of size 1 (broadcasting) or 0 (empty tensors) often behaves differently.

sizes = [4, 8, 8, 16, 4, 32, 64, 16, 128]
distinct_sizes = len(set(sizes))
recompile_limit = torch._dynamo.config.recompile_limit
print(f"{distinct_sizes} distinct sizes, recompile_limit = {recompile_limit}")
assert distinct_sizes < recompile_limit


def run_sequence(dynamic=None, mark=False):
    torch._dynamo.reset()
    backend = CountingBackend()
    compiled = torch.compile(normalize_rows, backend=backend, dynamic=dynamic)
    cumulative = []
    for n in sizes:
        x = torch.randn(n, 8, device=device)
        if mark:
            torch._dynamo.mark_dynamic(x, 0)
        torch.testing.assert_close(compiled(x), normalize_rows(x))
        cumulative.append(backend.count)
    return cumulative, backend.graph_inputs


settings = {
    "dynamic=False": dict(dynamic=False),
    "default (dynamic=None)": dict(dynamic=None),
    "dynamic=True": dict(dynamic=True),
    "default + mark_dynamic": dict(dynamic=None, mark=True),
}
results = {name: run_sequence(**kwargs) for name, kwargs in settings.items()}

print(f"{'call':>22s} " + " ".join(f"{i:>4d}" for i in range(len(sizes))))
print(f"{'rows':>22s} " + " ".join(f"{n:>4d}" for n in sizes))
for name, (cumulative, _) in results.items():
    print(f"{name:>22s} " + " ".join(f"{c:>4d}" for c in cumulative))

# %%
# The table shows the cumulative number of compilations after each call. We check the pattern
# precisely:
#
# * with ``dynamic=False`` every distinct size is compiled once, and a repeated size is a cache
#   hit, so the count ends at the number of distinct sizes;
# * by default the first call is compiled for the exact size 4. The second distinct size (8)
#   fails the shape guard, and TorchDynamo recompiles with that dimension marked dynamic; this
#   graph accepts every later size, so the count stays at 2;
# * ``dynamic=True`` compiles a symbolic graph straight away, so one compilation serves all calls;
# * ``mark_dynamic(x, 0)`` tells the default mode in advance that dimension 0 will vary, which also
#   gives a single compilation.

static_counts = results["dynamic=False"][0]
seen = set()
expected_static = []
for n in sizes:
    seen.add(n)
    expected_static.append(len(seen))
assert static_counts == expected_static
assert results["default (dynamic=None)"][0] == [1] + [2] * (len(sizes) - 1)
assert results["dynamic=True"][0] == [1] * len(sizes)
assert results["default + mark_dynamic"][0] == [1] * len(sizes)

# %%
# What the graphs expect
# ----------------------
# The shapes recorded by the backend show the difference between the graphs. The static graphs
# have concrete sizes. The second graph of the default mode has a symbol for the rows only: the
# number of columns never changed, so it stays specialized to 8. ``dynamic=True`` makes every
# dimension symbolic, including the columns, while ``mark_dynamic`` makes only the marked one
# symbolic.

for name, (_, graph_inputs) in results.items():
    print(f"{name}:")
    for i, shapes in enumerate(graph_inputs):
        print(f"    graph {i}: inputs {shapes}")

default_last = results["default (dynamic=None)"][1][-1]
assert any(isinstance(s, torch.SymInt) for s in default_last)  # size passed as a graph input
assert all(
    isinstance(dim, int)
    for shapes in results["dynamic=False"][1]
    for shape in shapes
    for dim in shape
)

# %%
# Cumulative compilations per call
# --------------------------------
# The figure plots the same counts against the call index, with the number of rows of each call
# under the axis. The static curve climbs on every new size and stays flat on repeated ones; the
# default curve climbs once more and then stays flat; the two up-front dynamic settings stay at one.

fig, ax = plt.subplots(figsize=(8, 4.5))
# Decreasing line widths keep overlapping curves visible.
styles = {
    "dynamic=False": dict(marker="o", linestyle="-", linewidth=6, markersize=10),
    "default (dynamic=None)": dict(marker="s", linestyle="-", linewidth=3.5, markersize=7),
    "dynamic=True": dict(marker="^", linestyle="-", linewidth=6),
    "default + mark_dynamic": dict(marker="x", linestyle="--", linewidth=2),
}
calls = list(range(len(sizes)))
for name, (cumulative, _) in results.items():
    ax.step(calls, cumulative, where="post", label=name, **styles[name])
ax.set_xticks(calls)
ax.set_xticklabels([f"{i}\n({n})" for i, n in zip(calls, sizes, strict=True)])
ax.set_xlabel("call index (rows of the input in parentheses)")
ax.set_ylabel("cumulative compilations (count)")
ax.set_title("Compilations of one function over a sequence of input sizes")
ax.set_ylim(0, distinct_sizes + 1)
ax.grid(True, alpha=0.3)
ax.legend()
fig.tight_layout()
plt.show()

# %%
# The recompile limit
# -------------------
# Static recompilation cannot go on forever. Once a function has been compiled
# ``torch._dynamo.config.recompile_limit`` times (8 by default), TorchDynamo stops compiling it,
# logs a warning naming the last failed guard, and runs the function eagerly for any input that
# no existing graph accepts. The sequence above used fewer distinct sizes than the limit. To see
# the limit in action without a long loop, we lower it temporarily with
# ``torch._dynamo.config.patch``, which restores the old value when the block ends.

torch._dynamo.reset()
limited = CountingBackend()
limited_fn = torch.compile(normalize_rows, backend=limited, dynamic=False)
with torch._dynamo.config.patch(recompile_limit=3):
    for n in [2, 3, 4, 5, 6]:
        x = torch.randn(n, 8, device=device)
        torch.testing.assert_close(limited_fn(x), normalize_rows(x))
        print(f"rows={n}: compilations so far = {limited.count}")

assert limited.count == 3
assert torch._dynamo.config.recompile_limit == recompile_limit

# %%
# After three compilations the count stops growing, yet the results still match eager mode: the
# extra sizes simply ran without compilation. In a real workload, hitting this limit usually means
# a shape (or another guarded value) is changing on every call and should be made dynamic.
#
# Conclusion
# ----------
# A counting backend makes recompilations visible and testable. With ``dynamic=False`` every new
# size costs a compilation, up to the recompile limit. The default mode pays for one extra
# compilation and then handles changing sizes with a symbolic graph. When you know in advance which
# dimension varies, ``mark_dynamic`` (or ``dynamic=True`` for all dimensions) avoids that
# extra compilation.
#
# Further reading
# ---------------
# * `torch.compile <https://docs.pytorch.org/docs/stable/generated/torch.compile.html>`__
# * `torch._dynamo.mark_dynamic
#   <https://docs.pytorch.org/docs/stable/generated/torch._dynamo.mark_dynamic.html>`__
# * `Dynamic shapes <https://docs.pytorch.org/docs/stable/torch.compiler_dynamic_shapes.html>`__
# * `Custom backends <https://docs.pytorch.org/docs/stable/torch.compiler_custom_backends.html>`__
# * `torch.compiler API reference <https://docs.pytorch.org/docs/stable/torch.compiler_api.html>`__
#
