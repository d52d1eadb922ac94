"""
Counting the operations of a model with torch function and dispatch modes
=========================================================================
**Author:** PyTorch Recipes maintainers

This recipe runs one forward pass of a small model under two kinds of interposition modes and
counts what each of them sees: a Python-level torch function mode that observes calls such as
torch.nn.functional.linear, and an aten-level dispatch mode that observes the primitive operators
they decompose into. It then uses the built-in FLOP counter to measure the arithmetic cost of the
same model and checks the count of a linear layer against a hand calculation.

.. rubric:: What you will learn

* How to write a ``TorchFunctionMode`` that records every torch API call in a region of code
* How to write a ``TorchDispatchMode`` that records every aten operator that actually executes
* Why the two levels report different names and different counts for the same model
* How to use ``FlopCounterMode`` and verify its numbers for a linear layer, forward and backward

.. rubric:: Prerequisites

* PyTorch 2.13 or later
* Runs on CPU or on an accelerator such as CUDA
"""

# %%
# A small model to inspect
# ------------------------
# The model is a tiny multilayer perceptron with a normalization layer, which is enough to
# produce a handful of distinct operators. Everything below runs on whatever device is
# available; the counts are collected on that device.

# sphinx_gallery_tags = ["modes", "dispatch", "debugging"]
from collections import Counter

import torch
from torch import nn
from torch.overrides import TorchFunctionMode, resolve_name
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

torch.manual_seed(0)
device = (
    torch.accelerator.current_accelerator()
    if torch.accelerator.is_available()
    else torch.device("cpu")
)

batch, d_in, d_hidden, d_out = 8, 16, 32, 4
model = nn.Sequential(
    nn.Linear(d_in, d_hidden),
    nn.ReLU(),
    nn.LayerNorm(d_hidden),
    nn.Linear(d_hidden, d_out),
).to(device)
x = torch.randn(batch, d_in, device=device)
print(model)

# %%
# Counting at the Python level with a torch function mode
# -------------------------------------------------------
# A ``TorchFunctionMode`` is a context manager whose ``__torch_function__`` method is called
# for every function in the public ``torch`` namespace (including ``torch.nn.functional`` and
# tensor methods) invoked while the mode is active. The handler below records the qualified
# name of each call and then simply performs it. While the handler runs, the mode is
# temporarily switched off, so calls made *inside* ``func`` are not counted a second time:
# we only see what the user-level code asked for.


class TorchFunctionCounter(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.counts = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self.counts[resolve_name(func) or repr(func)] += 1
        return func(*args, **kwargs)


with TorchFunctionCounter() as fn_counter:
    out_fn = model(x).sum()

# %%
# Counting at the aten level with a dispatch mode
# -----------------------------------------------
# A ``TorchDispatchMode`` sits much lower: its ``__torch_dispatch__`` receives aten
# ``OpOverload`` objects after autograd and Python-level wrappers have done their work, right
# before a kernel would run. This is the level that ``torch.compile`` and ``torch.export``
# graphs are expressed in, so it tells you what the model really costs in operator calls.
# We record the overload name, for example ``aten.addmm.default``.


class AtenOpCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.counts = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self.counts[str(func)] += 1
        return func(*args, **kwargs)


with AtenOpCounter() as aten_counter:
    out_aten = model(x).sum()

# The modes only observe: the results are identical to running without them.
torch.testing.assert_close(out_fn, out_aten)
torch.testing.assert_close(out_fn, model(x).sum())

# %%
# The two views side by side
# --------------------------
# The table lists each level's counts for the same forward pass.


def print_counts(title, counts):
    print(f"{title} ({sum(counts.values())} calls)")
    for name, n in sorted(counts.items()):
        print(f"  {name:<40} {n:>3}")


print_counts("torch function level", fn_counter.counts)
print()
print_counts("aten dispatch level", aten_counter.counts)

# %%
# The Python-level mode reports what the modules call: two ``torch.nn.functional.linear``, one
# ``relu``, one ``layer_norm`` and the final ``Tensor.sum``. The aten-level mode reports what
# those calls became. Each ``linear`` on a 2-D input with a bias turns into a transpose of the
# weight (``aten.t``) followed by a fused ``aten.addmm``; ``layer_norm`` becomes
# ``aten.native_layer_norm``, which also returns the mean and inverse standard deviation
# needed by its backward. The aten view may include extra bookkeeping operators (such as
# ``detach``) that never appear in your source code. Let us check the core of these
# observations.

assert fn_counter.counts["torch.nn.functional.linear"] == 2
assert fn_counter.counts["torch.nn.functional.relu"] == 1
assert fn_counter.counts["torch.nn.functional.layer_norm"] == 1
assert not any(name.startswith("aten.") for name in fn_counter.counts)

assert aten_counter.counts["aten.addmm.default"] == 2
assert aten_counter.counts["aten.relu.default"] == 1
assert aten_counter.counts["aten.native_layer_norm.default"] == 1
assert "torch.nn.functional.linear" not in aten_counter.counts

# %%
# The dispatch mode also sees the backward pass
# ---------------------------------------------
# Because it lives below autograd, a dispatch mode also sees the operators that the autograd
# engine runs during ``backward()``. A torch function mode does not, since backward formulas
# are not Python-level torch calls. We count both levels again, this time including a
# backward pass, and compare with the forward-only counts.

with TorchFunctionCounter() as fn_counter_bw, AtenOpCounter() as aten_counter_bw:
    model(x).sum().backward()

print(f"torch function calls, forward only:       {sum(fn_counter.counts.values())}")
print(f"torch function calls, forward + backward: {sum(fn_counter_bw.counts.values())}")
print(f"aten ops, forward only:                   {sum(aten_counter.counts.values())}")
print(f"aten ops, forward + backward:             {sum(aten_counter_bw.counts.values())}")
print("aten ops that appear only because of backward:")
for name in sorted(set(aten_counter_bw.counts) - set(aten_counter.counts)):
    print(f"  {name}")

assert "aten.native_layer_norm_backward.default" in aten_counter_bw.counts
assert "aten.threshold_backward.default" in aten_counter_bw.counts
assert sum(aten_counter_bw.counts.values()) > sum(aten_counter.counts.values())
assert set(fn_counter_bw.counts) - set(fn_counter.counts) == {"torch.Tensor.backward"}

# %%
# The list above shows the gradient kernels (``threshold_backward`` for ReLU,
# ``native_layer_norm_backward``, matrix multiplications for the weight and input gradients,
# sums for the bias gradients) that only the aten-level mode can observe. The torch function mode
# recorded just one more call, ``Tensor.backward`` itself.
#
# Counting FLOPs with FlopCounterMode
# -----------------------------------
# ``torch.utils.flop_counter.FlopCounterMode`` is a ready-made dispatch mode that assigns a
# floating-point operation count to matrix multiplications, convolutions and attention, and
# attributes them to the module that ran them. We pass ``display=False`` and query the totals
# ourselves; ``get_flop_counts()`` returns a dictionary keyed by module name (plus ``"Global"``)
# that maps each aten operator to its FLOPs.

x_small = torch.randn(batch, d_in, device=device)
with FlopCounterMode(display=False) as flop_counter:
    model(x_small)

forward_flops = flop_counter.get_total_flops()
print(f"total forward FLOPs: {forward_flops}")
for module_name, per_op in flop_counter.get_flop_counts().items():
    per_op_text = ", ".join(f"{op}: {n}" for op, n in per_op.items())
    print(f"  {module_name:<14} {per_op_text}")

# %%
# Checking the count by hand
# --------------------------
# A linear layer computes ``y = x @ W.T + b``. For an input of shape ``(batch, in)`` and a
# weight of shape ``(out, in)``, each of the ``batch * out`` outputs is a dot product of length
# ``in``: ``in`` multiplications and (roughly) ``in`` additions, so the layer costs
# ``2 * batch * in * out`` FLOPs. The counter ignores the bias addition and the elementwise
# ReLU and LayerNorm, which are negligible next to the matrix products.

counts = flop_counter.get_flop_counts()
expected_first = 2 * batch * d_in * d_hidden
expected_second = 2 * batch * d_hidden * d_out
measured_first = sum(counts["Sequential.0"].values())
measured_second = sum(counts["Sequential.3"].values())
print(f"first Linear:  measured {measured_first}, by hand {expected_first}")
print(f"second Linear: measured {measured_second}, by hand {expected_second}")

assert measured_first == expected_first
assert measured_second == expected_second
assert forward_flops == expected_first + expected_second

# %%
# Forward plus backward
# ---------------------
# In the backward pass a linear layer needs one matrix product for the weight gradient and one
# for the input gradient, each as expensive as the forward product. That is why training is
# often quoted as roughly three times the forward cost. There is one exception: the first
# layer's input gradient is only computed if the input itself requires a gradient. Below the
# input does not, so autograd skips that product and the first layer costs ``2x`` its forward
# FLOPs in total while the second costs ``3x``.

with FlopCounterMode(display=False) as train_counter:
    model(x_small).sum().backward()

train_counts = train_counter.get_flop_counts()
train_first = sum(train_counts["Sequential.0"].values())
train_second = sum(train_counts["Sequential.3"].values())
print(f"first Linear, forward + backward:  {train_first} = {train_first / expected_first:.0f}x")
print(f"second Linear, forward + backward: {train_second} = {train_second / expected_second:.0f}x")

assert train_first == 2 * expected_first
assert train_second == 3 * expected_second

# %%
# Conclusion
# ----------
# Modes give you a hook into every operation in a block of code without touching the model.
# A torch function mode shows the calls written in Python, which is the right level for
# logging how an API is used; a dispatch mode shows the aten operators that really execute,
# forward and backward, which is the level compilers, exporters and cost models work with.
# ``FlopCounterMode`` is one such dispatch mode, and for a linear layer its count matches the
# textbook ``2 * batch * in * out``.
#
# Further reading
# ---------------
# * `Extending torch with a Tensor-like type and modes
#   <https://docs.pytorch.org/docs/stable/notes/extending.html>`__
# * `torch.overrides <https://docs.pytorch.org/docs/stable/torch.overrides.html>`__
# * `torch.nn.functional.linear
#   <https://docs.pytorch.org/docs/stable/generated/torch.nn.functional.linear.html>`__
# * `torch.nn.Linear <https://docs.pytorch.org/docs/stable/generated/torch.nn.Linear.html>`__
# * `torch.testing.assert_close
#   <https://docs.pytorch.org/docs/stable/testing.html#torch.testing.assert_close>`__
#
