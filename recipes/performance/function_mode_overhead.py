"""
Measuring the runtime cost of a torch function mode, eager and compiled
=======================================================================
**Author:** PyTorch Recipes maintainers

A torch function mode intercepts every call into the torch API, which is handy for logging or
rewriting operations, but each interception runs Python code. This recipe times a small function
with and without a mode that changes nothing, in eager mode and under torch.compile, and checks
with numbers the claim that a mode traced by the compiler adds no per-call cost.

.. rubric:: What you will learn

* How to write an identity ``TorchFunctionMode`` to isolate the cost of interception itself
* How to count how often a mode runs, with ``cProfile``, and time it with ``torch.utils.benchmark``
* Why the mode costs time per operation in eager mode but disappears inside a compiled graph
* What changes when the mode is entered around, rather than inside, a compiled function

.. rubric:: Prerequisites

* PyTorch 2.13 or later
* Runs on CPU or on an accelerator such as CUDA
"""

# %%
# A mode that changes nothing
# ---------------------------
# ``BaseTorchFunctionMode`` already forwards every call unchanged. We still spell out
# ``__torch_function__`` so that the code path is explicit: the mode receives the function and its
# arguments and simply calls it. Whatever time this mode adds is the pure price of interception.

# sphinx_gallery_tags = ["modes", "torch.compile", "benchmarking", "plot"]
# sphinx_gallery_parallel = False
import cProfile

import matplotlib.pyplot as plt
import torch
from torch._dynamo.utils import counters
from torch.overrides import BaseTorchFunctionMode
from torch.utils.benchmark import Timer

torch.manual_seed(0)
device = (
    torch.accelerator.current_accelerator()
    if torch.accelerator.is_available()
    else torch.device("cpu")
)


class PassThroughMode(BaseTorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


# %%
# The function under test
# -----------------------
# Five cheap elementwise operations on two small tensors. The inputs are created once and never
# modified, and the arithmetic (add, sine, cosine, scaling by a constant) keeps values in a normal
# range, so every timed call does exactly the same work. Long chains of multiplications are
# avoided on purpose: values that shrink towards denormal numbers can slow the CPU down and
# would distort the comparison.
#
# ``step_with_mode`` does the same arithmetic but enters the mode first. Both sides therefore
# compute identical results, and the only difference is the mode.


def step(x, y):
    return torch.sin(x + y) * 0.5 + torch.cos(y)


def step_with_mode(x, y):
    with PassThroughMode():
        return step(x, y)


x = torch.randn(64, device=device)
y = torch.randn(64, device=device)

# %%
# Compiled variants
# -----------------
# We build three compiled versions:
#
# * ``compiled``: ``step`` compiled, no mode anywhere.
# * ``compiled_mode_inside``: ``step_with_mode`` compiled. Dynamo traces through the ``with``
#   block and through ``__torch_function__``, so the mode is applied once, while tracing, and
#   the captured graph only contains the five tensor operations.
# * ``compiled_mode_around``: the plain compiled ``step`` called while the mode is active. Dynamo
#   guards on the stack of active modes, so this triggers a second compilation of ``step``.
#
# The mode is handled by Dynamo, before any backend sees the graph, so the backend does not
# matter for the question asked here. We use ``backend="aot_eager"``, which compiles in a
# fraction of a second, instead of the default inductor backend, which would spend several
# seconds generating and compiling C++ code. Each compiled variant is called once before
# anything is measured, so compilation itself is never timed.

compiled = torch.compile(step, backend="aot_eager")
compiled_mode_inside = torch.compile(step_with_mode, backend="aot_eager")


def compiled_mode_around(x, y):
    with PassThroughMode():
        return compiled(x, y)


counters.clear()
reference = step(x, y)
variants = {
    "eager": step,
    "eager + mode": step_with_mode,
    "compiled": compiled,
    "compiled, mode inside": compiled_mode_inside,
    "compiled, mode around": compiled_mode_around,
}
for fn in variants.values():
    torch.testing.assert_close(fn(x, y), reference)

graphs = counters["stats"]["unique_graphs"]
breaks = sum(counters["graph_break"].values())
print(f"graphs compiled: {graphs}, graph breaks: {breaks}")
assert breaks == 0
assert graphs == 3  # step, step_with_mode, and step again under the active mode

# %%
# All five variants return the same values, and no graph break was needed: the compiler handled
# the mode entirely. Three graphs were compiled, one per situation listed above.
#
# How often does the mode actually run?
# -------------------------------------
# Before timing anything, we count. ``cProfile`` records every Python function call, so the
# number of calls to ``PassThroughMode.__torch_function__`` per call of each variant tells us
# exactly where the interception happens at run time.

mode_code = PassThroughMode.__torch_function__.__code__
mode_key = (mode_code.co_filename, mode_code.co_firstlineno, mode_code.co_name)


def interceptions_per_call(fn, calls=10):
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        fn(x, y)
    profiler.disable()
    profiler.create_stats()
    total_calls = profiler.stats.get(mode_key, (0, 0))[1]
    return total_calls / calls


intercepts = {name: interceptions_per_call(fn) for name, fn in variants.items()}
for name, count in intercepts.items():
    print(f"{name:>22}: {count:.0f} calls to __torch_function__ per call")

assert intercepts["eager"] == 0 and intercepts["compiled"] == 0
assert intercepts["eager + mode"] == 5  # add, sin, mul, cos, add
assert intercepts["compiled, mode inside"] == 0
assert intercepts["compiled, mode around"] > 0

# %%
# The counts show the mechanism:
#
# * In eager mode the mode runs once for each of the five torch calls.
# * With the mode inside the compiled function it never runs after compilation: it was applied
#   while tracing, and the ``with`` block was compiled away together with it.
# * With the mode around the compiled call, the mode is still on the stack while the compiled
#   code executes. The ``aot_eager`` backend runs the graph as a sequence of ATen operator calls,
#   and the mode intercepts those (and a few calls made by the runtime wrapper). A backend that
#   generates its own kernels, such as inductor, makes fewer such calls, but the guard check and
#   the Python ``with`` statement remain in any case.
#
# Timing fairly
# -------------
# ``torch.utils.benchmark.Timer`` synchronizes accelerators and runs the statement in blocks so
# that the clock overhead is amortized. Two details matter here:
#
# * ``Timer`` runs with one thread unless told otherwise. The number of threads is part of the
#   global state that compiled code is guarded on, so timing with a different thread count than
#   the warm-up would silently trigger a recompilation inside the measurement. We pass the
#   current thread count to avoid that.
# * Other programs on a shared machine steal time in bursts, and a burst can last longer than a
#   whole measurement. Instead of measuring each variant once for a long time, we take many
#   short samples (200 calls each, a few milliseconds) in interleaved rounds, so that every
#   variant sees the same conditions, and keep the fastest sample of each. The work is
#   deterministic, so noise can only add time: the minimum is the best estimate of what a call
#   really costs.

threads = torch.get_num_threads()
timers = {
    name: Timer("fn(x, y)", globals={"fn": fn, "x": x, "y": y}, num_threads=threads)
    for name, fn in variants.items()
}
samples = {name: [] for name in variants}
for _ in range(25):
    for name, timer in timers.items():
        samples[name].append(timer.timeit(number=200).mean)
best = {name: min(times) for name, times in samples.items()}

us = {name: seconds * 1e6 for name, seconds in best.items()}
for name, value in us.items():
    print(f"{name:>22}: {value:7.2f} us per call")

# The timing loop must not have caused any new compilation.
assert counters["stats"]["unique_graphs"] == graphs

# %%
# Ratios from the same run
# ------------------------
# Absolute numbers depend on the machine, so we compare each variant with its own baseline,
# measured moments apart in the same process.

eager_ratio = us["eager + mode"] / us["eager"]
inside_ratio = us["compiled, mode inside"] / us["compiled"]
around_ratio = us["compiled, mode around"] / us["compiled"]
print(f"eager with mode / eager without:           {eager_ratio:.2f}x")
print(f"compiled, mode inside / compiled, no mode: {inside_ratio:.2f}x")
print(f"compiled, mode around / compiled, no mode: {around_ratio:.2f}x")

# In eager mode every one of the five torch calls goes through Python __torch_function__.
assert eager_ratio > 1.0, "the mode should cost time in eager mode"
# When the mode is traced inside the compiled function, the graph is the same as without it.
assert inside_ratio < 1.5, "a mode traced at compile time should add no real per-call cost"
# Entering the mode around the call costs something, but stays bounded.
assert around_ratio < 5.0

# %%
# The ratios printed above agree with the counts:
#
# * Eager with the mode is clearly slower than eager without it. With five tiny operations,
#   running a Python function per operation is a large share of the total.
# * With the mode inside the compiled function the ratio is close to one: what runs is the same
#   graph as without the mode.
# * With the mode around the compiled call, the ratio is above one again, because the mode still
#   intercepts calls made while the compiled code runs.
#
# Note also that for a function this small, compiled code is not automatically faster than
# eager. Guards, the runtime wrapper and, with ``aot_eager``, the operator-by-operator execution
# have a fixed cost that only pays off when the work inside the graph is larger.
#
# Plot
# ----

names = list(us)
colors = ["tab:blue", "tab:blue", "tab:orange", "tab:orange", "tab:orange"]
fig, ax = plt.subplots(figsize=(7, 3.5))
bars = ax.barh(names, [us[n] for n in names], color=colors)
ax.bar_label(bars, fmt="%.1f", padding=3)
ax.invert_yaxis()
ax.set_xlabel("time per call (microseconds, lower is better)")
ax.set_title(f"Identity function mode, 5 ops on {x.numel()} elements ({device.type}, aot_eager)")
ax.margins(x=0.15)
fig.tight_layout()
plt.show()

# %%
# Conclusion
# ----------
# An identity function mode is not free in eager mode: its cost grows with the number of torch
# calls because each one runs Python code. Once the function, including the ``with`` block, is
# compiled, the mode is resolved at trace time and the measured per-call time is essentially the
# same as without it. When you need a mode only to transform or inspect a program, put it inside
# the compiled region. And before trusting a claim about overhead, count the calls and time
# them with warm-up, a fixed thread count and many short interleaved samples, as done here.
#
# Further reading
# ---------------
# * `torch.overrides <https://docs.pytorch.org/docs/stable/torch.overrides.html>`__
# * `torch.compile <https://docs.pytorch.org/docs/stable/generated/torch.compile.html>`__
# * `torch.utils.benchmark <https://docs.pytorch.org/docs/stable/benchmark_utils.html>`__
# * `torch.accelerator <https://docs.pytorch.org/docs/stable/accelerator.html>`__
# * `torch.testing.assert_close
#   <https://docs.pytorch.org/docs/stable/testing.html#torch.testing.assert_close>`__
# * `cProfile <https://docs.python.org/3/library/profile.html>`__
#
