"""
Using torch function modes with torch.compile
=============================================
**Author:** PyTorch Recipes maintainers

A torch function mode sees every call into the ``torch`` API and may change
what happens. Combined with ``torch.compile``, that interception is applied
once, while the function is traced, so the compiled code carries the new
behaviour and pays nothing for it afterwards.

.. rubric:: What you will learn

* How to write a ``BaseTorchFunctionMode`` that replaces one operator with another
* How to apply the mode from outside a compiled function, and from inside it
* Why the replacement costs nothing per call once the function is compiled

.. rubric:: Prerequisites

* PyTorch 2.7 or later
* Runs on a CPU or a CUDA GPU
"""

# %%
# Choosing where to run
# ---------------------
# ``torch.compile`` generates C++ on the CPU and Triton kernels on a GPU. Triton
# needs a GPU of compute capability 7.0 or newer, so an older card, or a
# machine with no CUDA at all, runs this recipe on the CPU instead. The
# capability is only queried when a CUDA device is present.

# sphinx_gallery_tags = ["modes", "torch.compile"]
import torch
from torch.overrides import BaseTorchFunctionMode


def pick_device() -> torch.device:
    if not torch.cuda.is_available():
        return torch.device("cpu")
    if torch.cuda.get_device_capability() < (7, 0):
        print("this GPU is too old for torch.compile's GPU backend: using the CPU")
        return torch.device("cpu")
    return torch.device("cuda")


device = pick_device()
print(f"torch {torch.__version__}, running on {device}")

# %%
# A mode that turns additions into multiplications
# ------------------------------------------------
# Writing ``a + b`` on tensors calls the method ``torch.Tensor.add``, just as
# ``a * b`` calls ``torch.Tensor.mul``. Every such call passes through the
# ``__torch_function__`` hook of the active torch function modes, with the
# function that is about to run as its first argument. Our mode looks at that
# function and, when it is ``torch.Tensor.add``, hands the arguments to
# ``torch.mul`` instead. ``BaseTorchFunctionMode`` performs the actual call for
# us, so the subclass only decides *which* function runs.


class AddBecomesMul(BaseTorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is torch.Tensor.add:
            func = torch.mul
        return super().__torch_function__(func, types, args, kwargs)


# %%
# The mode around a compiled call
# -------------------------------
# The function below computes ``x + y * x``. We compile it and call it while
# the mode is active. Dynamo, the tracer behind ``torch.compile``, runs the
# mode's ``__torch_function__`` as it records the graph, so the addition is
# already a multiplication in the captured graph: the result is ``x * y * x``.


@torch.compile
def add_scaled(x, y):
    return x + y * x


torch.manual_seed(0)
x = torch.rand(2, 2, device=device)
y = torch.rand_like(x)

with AddBecomesMul():
    z = add_scaled(x, y)

print("inputs x:", x, "y:", y, sep="\n")
print("result with the mode around the call:", z, sep="\n")
assert torch.allclose(z, x * y * x)

# %%
# Without the mode the same compiled function adds as usual. The mode is part
# of what Dynamo checks before reusing a graph, so this call gets a graph of
# its own rather than the rewritten one.

z_plain = add_scaled(x, y)
assert torch.allclose(z_plain, x + y * x)
print("result without the mode:", z_plain, sep="\n")

# %%
# The mode inside the compiled function
# -------------------------------------
# A mode can also be entered within the function being compiled. Dynamo
# traces the ``with`` block like any other code, applies the mode while
# recording, and leaves no trace of the mode in the compiled output: callers
# do not need to know that a mode exists.


@torch.compile
def add_scaled_rewritten(x, y):
    with AddBecomesMul():
        return x + y * x


x = torch.rand(2, 2, device=device)
y = torch.rand_like(x)
z = add_scaled_rewritten(x, y)

print("result with the mode inside the function:", z, sep="\n")
assert torch.allclose(z, x * y * x)

# %%
# Why the rewrite is free at run time
# -----------------------------------
# In eager mode, an active torch function mode runs Python code for every
# operator call, on every call. Under ``torch.compile`` that Python code runs
# only while the function is being traced. The graph handed to the compiler
# already contains ``mul`` where the source said ``add``, and later calls
# execute the generated kernel directly. Calling the function again shows the
# same result without tracing anything new: Dynamo's count of captured graphs
# does not move.

from torch._dynamo.utils import counters

graphs_before = counters["stats"]["unique_graphs"]
for _ in range(3):
    assert torch.allclose(add_scaled_rewritten(x, y), x * y * x)
graphs_after = counters["stats"]["unique_graphs"]
print(f"graphs captured before: {graphs_before}, after three more calls: {graphs_after}")
assert graphs_after == graphs_before

# %%
# Conclusion
# ----------
# A ``BaseTorchFunctionMode`` subclass can swap one ``torch`` operator for
# another, here ``add`` for ``mul``. With ``torch.compile`` the swap is made
# once, during tracing, whether the mode surrounds the call or sits inside the
# compiled function, so the compiled code runs at full speed.
#
# Further reading
# ---------------
# * `Extending torch with modes <https://docs.pytorch.org/docs/stable/notes/extending.html#extending-all-torch-api-with-modes>`__
# * `torch.compile <https://docs.pytorch.org/docs/stable/generated/torch.compile.html>`__
# * `torch.overrides <https://docs.pytorch.org/docs/stable/torch.overrides.html>`__
#
