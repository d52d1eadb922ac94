"""
Wrapping a NumPy function as a custom operator that torch.compile can trace
===========================================================================
**Author:** PyTorch Recipes maintainers

Code that leaves PyTorch, such as a call into NumPy, forces torch.compile to split the program
into several graphs around it. This recipe wraps a NumPy table-lookup routine as a custom
operator with torch.library.custom_op, gives it a fake implementation and a backward formula,
validates the registration with torch.library.opcheck and torch.autograd.gradcheck, and then
compiles a function that uses it with fullgraph=True, checking that the compiled results and
gradients match eager mode.

.. rubric:: What you will learn

* Why an opaque Python or NumPy call causes graph breaks, and how a custom operator removes them
* How to define an operator with ``torch.library.custom_op`` and a fake implementation with
  ``register_fake``
* How to make the operator differentiable with ``register_autograd``
* How to test the registrations with ``torch.library.opcheck`` and ``torch.autograd.gradcheck``

.. rubric:: Prerequisites

* PyTorch 2.13 or later, NumPy
* Runs on CPU or on an accelerator such as CUDA (the NumPy computation itself runs on the CPU)
"""

# %%
# The problem: NumPy inside a compiled function
# ---------------------------------------------
# Suppose a model post-processes its output through a calibration curve given as a table of
# points, using ``numpy.interp`` for piecewise-linear interpolation. Dynamo can translate a
# subset of NumPy into torch operations, but ``interp`` is not part of it, so it has to stop
# the graph before the call, run NumPy in Python and start a new graph afterwards.
# ``torch._dynamo.explain`` reports how the function was split.

# sphinx_gallery_tags = ["custom-op", "torch.compile"]
from collections import Counter

import numpy as np
import torch

torch.manual_seed(0)
device = (
    torch.accelerator.current_accelerator()
    if torch.accelerator.is_available()
    else torch.device("cpu")
)

# The calibration table: a coarse tanh-like curve sampled at 13 points.
table_x = torch.linspace(-3.0, 3.0, 13, device=device)
table_y = torch.tanh(table_x)


def interp_numpy(x, xp, fp):
    y = np.interp(x.detach().cpu().numpy(), xp.detach().cpu().numpy(), fp.detach().cpu().numpy())
    return torch.from_numpy(y).to(device=x.device, dtype=x.dtype)


def head_with_plain_numpy(x):
    return torch.relu(interp_numpy(2.0 * x, table_x, table_y)) + 0.1 * x


x = torch.randn(4, 8, device=device)
report = torch._dynamo.explain(head_with_plain_numpy)(x)
print(f"graphs: {report.graph_count}, graph breaks: {report.graph_break_count}")
print("first break reason:", str(report.break_reasons[0].reason).splitlines()[0])
assert report.graph_break_count >= 1

# %%
# Defining the custom operator
# ----------------------------
# ``torch.library.custom_op`` turns a Python function into an operator registered with the
# PyTorch dispatcher under a ``namespace::name``. Type annotations define the schema, and
# ``mutates_args=()`` promises that the function returns new tensors without modifying its
# inputs. The compiler never looks inside the body: it treats the operator as a black box,
# which is exactly what an opaque NumPy computation needs.
#
# The body detaches its inputs before converting them to NumPy and returns a tensor with the
# input's device and dtype. A counter records how many times the real implementation runs.

calls = Counter()


@torch.library.custom_op("recipes_customop::table_interp", mutates_args=())
def table_interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear interpolation of ``x`` in the table ``(xp, fp)``, clamped at the ends."""
    calls["numpy implementation"] += 1
    return interp_numpy(x, xp, fp)


# %%
# The fake implementation
# -----------------------
# To trace a program, ``torch.compile`` runs it on *fake tensors*: tensors that carry shape,
# dtype and device but no data. NumPy cannot run on those, so the operator needs a fake
# implementation that only describes its output. Here the output has the shape and dtype of
# ``x``. It is also a good place to check argument constraints with ``torch._check``, so
# that mistakes are caught at trace time.


@table_interp.register_fake
def _(x, xp, fp):
    calls["fake implementation"] += 1
    torch._check(xp.dim() == 1, lambda: "xp must be one-dimensional")
    torch._check(fp.shape == xp.shape, lambda: "xp and fp must have the same shape")
    return torch.empty_like(x)


# %%
# The backward formula
# --------------------
# Inside the table the output is a straight line between two neighbouring points, so its
# derivative with respect to ``x`` is the slope of that segment; outside the table
# ``np.interp`` clamps to the end values and the derivative is zero. ``setup_context`` saves
# what the backward needs, and ``backward`` computes the slope with ordinary torch operations
# (``searchsorted`` finds the segment), which the compiler can trace. We treat the table
# itself as constant and return ``None`` for its gradients.


def setup_context(ctx, inputs, output):
    x, xp, fp = inputs
    ctx.save_for_backward(x, xp, fp)


def backward(ctx, grad_output):
    x, xp, fp = ctx.saved_tensors
    right = torch.searchsorted(xp, x).clamp(1, xp.numel() - 1)
    left = right - 1
    slope = (fp[right] - fp[left]) / (xp[right] - xp[left])
    inside = (x >= xp[0]) & (x <= xp[-1])
    return grad_output * torch.where(inside, slope, torch.zeros_like(slope)), None, None


table_interp.register_autograd(backward, setup_context=setup_context)

# %%
# A quick eager check: the interpolated curve stays close to the true ``tanh`` it was sampled
# from, and the operator is also reachable as ``torch.ops.recipes_customop.table_interp``.

y = table_interp(x, table_x, table_y)
max_err = (y - torch.tanh(x)).abs().max().item()
print(f"max |table_interp(x) - tanh(x)| = {max_err:.4f}")
assert max_err < 0.05
torch.testing.assert_close(torch.ops.recipes_customop.table_interp(x, table_x, table_y), y)

# %%
# Validating the registrations with opcheck
# -----------------------------------------
# ``torch.library.opcheck`` runs a battery of tests on sample inputs: that the schema matches
# what the function does (no hidden mutation or aliasing), that autograd is registered
# correctly, that the fake implementation agrees with the real one on output metadata, and
# that the operator works under AOTAutograd tracing with dynamic shapes. We pass several
# inputs, including an empty tensor and one that requires a gradient.

samples = [
    (torch.randn(5, device=device), table_x, table_y),
    (torch.randn(3, 4, device=device, requires_grad=True), table_x, table_y),
    (torch.randn(0, device=device), table_x, table_y),
    (torch.randn(2, 3, device=device, dtype=torch.float64), table_x.double(), table_y.double()),
]
for sample in samples:
    result = torch.library.opcheck(table_interp, sample)
    print(f"shape {tuple(sample[0].shape)!s:<8} {sample[0].dtype}: {result}")
    assert all(status == "SUCCESS" for status in result.values())

# %%
# Checking the gradient numerically
# ---------------------------------
# ``opcheck`` verifies that autograd is wired up, not that the formula is right.
# ``torch.autograd.gradcheck`` compares the analytical gradient with finite differences; it
# needs double precision and small inputs. The sample points avoid the table's knots, where
# the piecewise-linear function has no derivative.

x_check = torch.tensor(
    [-3.7, -2.2, -0.8, 0.1, 1.3, 2.6, 3.4], dtype=torch.float64, device=device, requires_grad=True
)
assert torch.autograd.gradcheck(
    lambda t: table_interp(t, table_x.double(), table_y.double()), (x_check,)
)
print("gradcheck passed")

# %%
# Compiling with fullgraph=True
# -----------------------------
# Now the same head, written with the custom operator, is compiled with ``fullgraph=True``:
# any graph break would raise an error. We use the ``"aot_eager"`` backend, which performs
# the full tracing pipeline (Dynamo, fake tensors, AOTAutograd for the backward graph) but
# skips code generation to keep this recipe quick; the default ``"inductor"`` backend handles
# the operator the same way. First, ``explain`` confirms the single graph and shows the
# operator as a node in it.


def head_with_custom_op(x):
    return torch.relu(table_interp(2.0 * x, table_x, table_y)) + 0.1 * x


report = torch._dynamo.explain(head_with_custom_op)(x)
print(f"graphs: {report.graph_count}, graph breaks: {report.graph_break_count}")
print(report.graphs[0].code.strip())
assert report.graph_count == 1 and report.graph_break_count == 0
assert "recipes_customop.table_interp" in report.graphs[0].code

# %%
# The printed graph calls ``torch.ops.recipes_customop.table_interp.default`` between the
# surrounding torch operations. Next we compile for real and count which implementation runs
# when.

torch._dynamo.reset()
compiled_head = torch.compile(head_with_custom_op, backend="aot_eager", fullgraph=True)

calls.clear()
out_compiled = compiled_head(x)
first_call = dict(calls)
calls.clear()
out_compiled_again = compiled_head(x)
second_call = dict(calls)
print(f"first compiled call:  {first_call}")
print(f"second compiled call: {second_call}")

torch.testing.assert_close(out_compiled, head_with_custom_op(x))
torch.testing.assert_close(out_compiled_again, out_compiled)
assert first_call["fake implementation"] >= 1
assert first_call["numpy implementation"] == 1
assert second_call == {"numpy implementation": 1}

# %%
# On the first call the fake implementation ran during tracing (possibly more than once, as
# several tracing stages propagate shapes), and the NumPy implementation ran once, when the
# compiled graph executed. The second call reused the compiled graph: no tracing, so no fake
# calls, and one real call. The compiled output equals the eager output.
#
# Gradients through the compiled function
# ---------------------------------------
# With the backward formula registered, AOTAutograd also builds a backward graph around the
# operator. The gradients of compiled and eager training steps agree.

x_eager = x.clone().requires_grad_()
x_compiled = x.clone().requires_grad_()
head_with_custom_op(x_eager).pow(2).sum().backward()
compiled_head(x_compiled).pow(2).sum().backward()
torch.testing.assert_close(x_compiled.grad, x_eager.grad)
print(f"gradient norm, eager: {x_eager.grad.norm():.4f}, compiled: {x_compiled.grad.norm():.4f}")

# %%
# What happens without a fake implementation
# ------------------------------------------
# To see why ``register_fake`` matters, here is a second operator registered without one.
# Tracing it fails as soon as the compiler tries to run it on fake tensors, and the error
# message names the missing registration.


@torch.library.custom_op("recipes_customop::cube_root_no_fake", mutates_args=())
def cube_root_no_fake(x: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.cbrt(x.detach().cpu().numpy())).to(x.device)


def uses_op_without_fake(x):
    return cube_root_no_fake(x) + 1.0


try:
    torch.compile(uses_op_without_fake, backend="aot_eager", fullgraph=True)(x)
except Exception as err:  # Dynamo wraps the original error
    message = str(err)
    assert "no fake impl" in message
    start = message.index("There was no fake impl")
    print(f"{type(err).__name__}: ... {message[start:].split('. ')[0]} ...")
else:
    raise AssertionError("compiling without a fake implementation should fail")

# %%
# Conclusion
# ----------
# Wrapping an opaque computation in ``torch.library.custom_op`` lets ``torch.compile`` treat
# it as a single node instead of breaking the graph around it. The fake implementation
# describes the output for tracing, ``register_autograd`` supplies the gradient, and
# ``opcheck`` plus ``gradcheck`` catch registration and formula mistakes before they show
# up as wrong results in a compiled model.
#
# Further reading
# ---------------
# * `Python custom operators
#   <https://docs.pytorch.org/tutorials/advanced/python_custom_ops.html>`__
# * `torch.library <https://docs.pytorch.org/docs/stable/library.html>`__ (``custom_op``,
#   ``register_fake``, ``register_autograd``, ``opcheck``)
# * `torch.autograd.gradcheck
#   <https://docs.pytorch.org/docs/stable/generated/torch.autograd.gradcheck.gradcheck.html>`__
# * `torch.compile <https://docs.pytorch.org/docs/stable/generated/torch.compile.html>`__
# * `torch._dynamo.explain and graph breaks
#   <https://docs.pytorch.org/docs/stable/torch.compiler_troubleshooting.html>`__
# * `numpy.interp <https://numpy.org/doc/stable/reference/generated/numpy.interp.html>`__
#
