"""
Finding and fixing graph breaks with torch._dynamo.explain
==========================================================
**Author:** PyTorch Recipes maintainers

A graph break happens when TorchDynamo meets Python code it cannot put into a graph, so it splits
the function into several smaller graphs and runs the offending code in plain Python between them.
This recipe builds a function with three common breaks, lists them with torch._dynamo.explain,
shows how fullgraph=True turns them into errors, and then rewrites the function so that it
compiles into a single graph with the same results.

.. rubric:: What you will learn

* How to count graphs and read break reasons with ``torch._dynamo.explain``
* How ``fullgraph=True`` turns a silent graph break into an exception
* How to remove breaks caused by ``print``, ``Tensor.item()`` branches and Python-side helpers
* How ``torch.where`` and ``torch.cond`` express data-dependent choices inside a graph

.. rubric:: Prerequisites

* PyTorch 2.13 or later
* Runs on CPU or CUDA
"""

# %%
# A function with three typical breaks
# ------------------------------------
# The function below looks harmless in eager mode, but three of its lines cannot be captured by
# TorchDynamo:
#
# * a ``print`` call, which has a side effect outside of PyTorch;
# * an ``if`` statement whose condition depends on a tensor value via ``.item()``, so the branch
#   Python takes is only known at run time;
# * a helper that turns a tensor into a Python list and averages it with the ``statistics``
#   module, which leaves the tensor world entirely.
#
# Graph breaks are not errors: the function still returns the right answer. They cost
# performance, because each break ends one graph, returns to the interpreter and starts a new one,
# and the compiler can no longer optimize across the gap.

# sphinx_gallery_tags = ["torch.compile", "graph-breaks", "debugging"]
import statistics

import torch

device = (
    torch.accelerator.current_accelerator()
    if torch.accelerator.is_available()
    else torch.device("cpu")
)
torch.manual_seed(0)


def python_mean(t):
    # A "utility" written against Python lists instead of tensors.
    return statistics.fmean(t.flatten().tolist())


def score(x, w):
    h = torch.tanh(x @ w)
    print("score: hidden activations computed")
    if h.sum().item() > 0:
        h = h * 0.5
    else:
        h = -h
    return h - python_mean(h)


x = torch.randn(16, 32, device=device)
w = torch.randn(32, 8, device=device)
reference = score(x, w)

# %%
# Listing the breaks with ``explain``
# -----------------------------------
# ``torch._dynamo.explain(fn)(*args)`` runs the function once under TorchDynamo and reports how
# many graphs it produced, how many breaks separated them, and why each break happened. Each
# reason also carries the user stack, so we can print the exact source line responsible. The
# first line of each reason is usually enough to know what to fix; the full text adds hints and a
# link to a page describing that kind of break.

explanation = torch._dynamo.explain(score)(x, w)
print(f"graphs: {explanation.graph_count}, graph breaks: {explanation.graph_break_count}")
break_lines = set()
for i, br in enumerate(explanation.break_reasons, start=1):
    frame = br.user_stack[-1]
    chain = " -> ".join(f.name for f in br.user_stack)
    break_lines.add(frame.lineno)
    print(f"break {i} in {chain}, line {frame.lineno}: {frame.line.strip()}")
    print(f"    reason: {br.reason.splitlines()[0]}")

# Three distinct source lines are responsible; the helper's break is reported twice (see below).
assert len(break_lines) == 3
assert explanation.graph_break_count == 4
assert explanation.graph_count == explanation.graph_break_count + 1

# %%
# The output above shows the problematic lines in the order they run: the ``print``, the
# ``.item()`` call feeding the ``if``, and the ``.tolist()`` inside the helper. The helper's break
# is listed twice. The first time, Dynamo tried to inline ``python_mean`` into the graph of
# ``score`` (the chain ``score -> python_mean``), failed, and broke the graph of ``score`` at the
# call. It then compiled ``python_mean`` as a frame of its own, and broke again on the same line.
# So the number of breaks can exceed the number of culprit lines; counting distinct source lines
# is the better measure of how much code needs fixing. Note also that ``explain`` really executed
# the function, which is why the message from ``print`` appears above the report.
#
# Making breaks loud with ``fullgraph=True``
# ------------------------------------------
# By default ``torch.compile`` tolerates breaks silently. Passing ``fullgraph=True`` asks for a
# single graph and raises at the first break instead, which is useful in tests or when the
# performance of a hot function matters. We use ``backend="eager"`` here: it runs the captured
# graph without generating code, which is all we need to study tracing, and it compiles quickly.

strict_score = torch.compile(score, backend="eager", fullgraph=True)
try:
    strict_score(x, w)
    raised = None
except Exception as exc:  # the exact exception class is an implementation detail
    raised = exc
    print(f"{type(exc).__module__}.{type(exc).__name__}")
    print(str(exc).splitlines()[0])

assert raised is not None, "fullgraph=True should refuse to compile a function with breaks"

# %%
# The exception names the first unsupported construct it met. Fixing it and trying again would
# reveal the next one, so ``explain`` is the faster tool when there are several breaks: it lists
# all of them in one run.
#
# Rewriting the function without breaks
# -------------------------------------
# Each break has a tensor-only replacement:
#
# * the ``print`` moves out of the compiled function (or is removed); the caller can log the
#   result after the call;
# * the data-dependent ``if`` becomes ``torch.where``, which evaluates both branches and selects
#   element-wise using a boolean tensor, so no Python decision is needed;
# * the list-based helper becomes ``Tensor.mean()``.
#
# ``torch.where`` computes both branches, which is fine for cheap branches like these. When the
# branches are expensive, ``torch.cond`` keeps the decision in the graph and runs only the branch
# selected at run time. Both versions are shown below.


def score_where(x, w):
    h = torch.tanh(x @ w)
    h = torch.where(h.sum() > 0, h * 0.5, -h)
    return h - h.mean()


def score_cond(x, w):
    h = torch.tanh(x @ w)
    h = torch.cond(h.sum() > 0, lambda t: t * 0.5, lambda t: -t, (h,))
    return h - h.mean()


for fixed in (score_where, score_cond):
    report = torch._dynamo.explain(fixed)(x, w)
    print(
        f"{fixed.__name__:12s} graphs: {report.graph_count}, "
        f"graph breaks: {report.graph_break_count}"
    )
    assert report.graph_count == 1
    assert report.graph_break_count == 0

# %%
# Both rewrites now trace into one graph with no breaks. As a final check we compile them with
# ``fullgraph=True``, which would raise if any break were left, and compare against the original
# eager function. We also flip the sign of the weights so that the other branch is taken, to make
# sure the data-dependent choice is still made correctly at run time.

for w_case in (w, -w):
    expected = score(x, w_case)
    for fixed in (score_where, score_cond):
        compiled = torch.compile(fixed, backend="eager", fullgraph=True)
        torch.testing.assert_close(compiled(x, w_case), expected)
        torch.testing.assert_close(fixed(x, w_case), expected)
print("fixed functions match the original on both branches")
torch.testing.assert_close(score(x, w), reference)

# %%
# Conclusion
# ----------
# Graph breaks are easy to introduce and invisible in normal use. ``torch._dynamo.explain`` lists
# them with their reasons and source lines, and ``fullgraph=True`` guards against new ones once a
# function is clean. Most breaks come from leaving the tensor world: Python side effects,
# converting tensors to Python numbers or lists, and branching on those numbers. Keeping the
# computation in tensor operations, with ``torch.where`` or ``torch.cond`` for data-dependent
# choices, gives the compiler one graph to optimize.
#
# Further reading
# ---------------
# * `torch.compile <https://docs.pytorch.org/docs/stable/generated/torch.compile.html>`__
# * `torch.where <https://docs.pytorch.org/docs/stable/generated/torch.where.html>`__
# * `torch.cond <https://docs.pytorch.org/docs/stable/generated/torch.cond.html>`__
# * `torch.compiler API reference <https://docs.pytorch.org/docs/stable/torch.compiler_api.html>`__
# * `Troubleshooting torch.compile
#   <https://docs.pytorch.org/docs/stable/torch.compiler_troubleshooting.html>`__
#
