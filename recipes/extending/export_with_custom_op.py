"""
Exporting a model that calls a custom operator with torch.export
================================================================
**Author:** PyTorch Recipes maintainers

This recipe exports a small feature-bucketing model whose first step is a NumPy routine wrapped
as a custom operator. It shows that torch.export keeps the operator as a single named node in
the exported graph, that the exported program gives the same results as the eager model, and
how to declare a dynamic batch dimension with torch.export.Dim so one exported program serves
every batch size in a range.

.. rubric:: What you will learn

* What a custom operator needs (a fake implementation) to be exportable
* How to export a module, read its graph and find the custom operator node in it
* How to run the exported program and compare it with eager mode
* How to make the batch dimension dynamic with ``torch.export.Dim`` and what happens on
  inputs that violate the exported shape constraints

.. rubric:: Prerequisites

* PyTorch 2.13 or later, NumPy
* Runs on CPU or on an accelerator such as CUDA (the NumPy computation itself runs on the CPU)
"""

# %%
# A custom operator for bucketing
# -------------------------------
# Tabular models often turn a continuous feature into a bucket index and then look up an
# embedding for that bucket. Here the bucketing is done by ``numpy.digitize``, wrapped as the
# operator ``recipes_export::digitize``. As for ``torch.compile``, exporting traces the model
# with fake tensors that have shapes but no data, so the operator needs a fake implementation
# that states the output's shape, dtype and device: one ``int64`` index per input element.

# sphinx_gallery_tags = ["export", "custom-op"]
import os
import tempfile

import numpy as np
import torch
from torch import nn
from torch.export import Dim

torch.manual_seed(0)
device = (
    torch.accelerator.current_accelerator()
    if torch.accelerator.is_available()
    else torch.device("cpu")
)


@torch.library.custom_op("recipes_export::digitize", mutates_args=())
def digitize(x: torch.Tensor, boundaries: torch.Tensor) -> torch.Tensor:
    """Index of the bucket of each element of ``x``, with ``len(boundaries) + 1`` buckets."""
    ids = np.digitize(x.detach().cpu().numpy(), boundaries.detach().cpu().numpy())
    return torch.from_numpy(ids).to(device=x.device, dtype=torch.int64)


@digitize.register_fake
def _(x, boundaries):
    torch._check(boundaries.dim() == 1, lambda: "boundaries must be one-dimensional")
    return torch.empty_like(x, dtype=torch.int64)


print(digitize(torch.tensor([-5.0, 0.0, 0.3, 5.0]), torch.tensor([-1.0, 0.0, 1.0])))

# %%
# Values below the first boundary land in bucket 0, values at or above the last one in the
# final bucket, as printed above.
#
# The model
# ---------
# Each of the ``num_features`` input columns is bucketed, every bucket index is mapped to a
# learned embedding, and a linear layer combines the embeddings of all columns into one
# score. The bucket boundaries are a buffer, so they travel with the model.


class BucketedScorer(nn.Module):
    def __init__(self, boundaries, num_features, embed_dim):
        super().__init__()
        self.register_buffer("boundaries", boundaries)
        self.embed = nn.Embedding(boundaries.numel() + 1, embed_dim)
        self.head = nn.Linear(num_features * embed_dim, 1)

    def forward(self, x):
        ids = digitize(x, self.boundaries)
        return self.head(self.embed(ids).flatten(1))


num_features, embed_dim = 3, 4
model = BucketedScorer(torch.linspace(-2.0, 2.0, 9), num_features, embed_dim).to(device).eval()
example = torch.randn(16, num_features, device=device)
print(model(example)[:4].detach())

# %%
# Exporting with static shapes
# ----------------------------
# ``torch.export.export`` traces ``forward`` once with the example input and returns an
# ``ExportedProgram``: a single graph of operators plus a signature that says which graph
# inputs are parameters, buffers and user inputs. We print the generated code of the graph.

exported = torch.export.export(model, (example,))
print(exported.graph_module.code.strip())
print()
print(exported.graph_signature)

# %%
# The first line of the graph calls ``torch.ops.recipes_export.digitize.default`` with the user
# input and the boundaries buffer, exactly as written in ``forward``. The operator was not
# traced into: the graph refers to it by its qualified name, and its NumPy body only runs when
# the program is executed. The node is easy to find programmatically:

call_targets = [node.target for node in exported.graph.nodes if node.op == "call_function"]
for target in call_targets:
    print(f"  {target}")

custom_nodes = [
    node
    for node in exported.graph.nodes
    if node.op == "call_function" and node.target == torch.ops.recipes_export.digitize.default
]
assert len(custom_nodes) == 1
print(
    "custom op node:",
    custom_nodes[0].name,
    "output",
    custom_nodes[0].meta["val"].shape,
    custom_nodes[0].meta["val"].dtype,
)

# %%
# The ``meta["val"]`` of the node is the fake tensor produced by our fake implementation
# during export: the shape and dtype it promised are what the rest of the graph was traced
# against.
#
# Running the exported program
# ----------------------------
# ``ExportedProgram.module()`` returns an ``nn.Module`` that executes the graph. Its output
# matches the eager model.

exported_module = exported.module()
torch.testing.assert_close(exported_module(example), model(example))
print("exported program matches eager on the example input")

# %%
# This program was exported with static shapes: the batch size 16 is baked into it, and the
# module checks its inputs. A batch of 5 is rejected.

try:
    exported_module(torch.randn(5, num_features, device=device))
except Exception as err:
    print(f"{type(err).__name__}: {str(err).splitlines()[0]}")
else:
    raise AssertionError("a static export should reject another batch size")

# %%
# Dynamic shapes with torch.export.Dim
# ------------------------------------
# To accept any batch size we declare the first dimension of ``x`` dynamic with a named
# ``Dim``, optionally bounded. ``dynamic_shapes`` mirrors the structure of the inputs: a
# dictionary keyed by the argument name of ``forward``, mapping dimension indices to ``Dim``
# objects. The number of features stays static, since the linear layer depends on it.
#
# Our fake implementation uses ``empty_like``, so it works with a symbolic batch size without
# changes. The range constraints of the exported program record the allowed sizes.

batch = Dim("batch", min=1, max=4096)
exported_dynamic = torch.export.export(model, (example,), dynamic_shapes={"x": {0: batch}})
print("range constraints:", exported_dynamic.range_constraints)
for node in exported_dynamic.graph.nodes:
    if node.op in ("placeholder", "call_function") and node.name in ("x", "digitize", "linear"):
        val = node.meta["val"]
        print(f"  {node.name:<9} shape {tuple(val.shape)}  dtype {val.dtype}")

assert len(exported_dynamic.range_constraints) == 1
assert any(
    node.target == torch.ops.recipes_export.digitize.default
    for node in exported_dynamic.graph.nodes
)

# %%
# The batch dimension of the input, of the custom operator's output and of the final output
# is now one symbol instead of 16, with the range ``[1, 4096]`` shown above. The same program
# runs for several batch sizes and agrees with eager each time.

dynamic_module = exported_dynamic.module()
for batch_size in (1, 5, 300):
    x = torch.randn(batch_size, num_features, device=device)
    out = dynamic_module(x)
    torch.testing.assert_close(out, model(x))
    print(f"batch {batch_size:>4}: output shape {tuple(out.shape)}, matches eager")

# %%
# The feature dimension was not declared dynamic, so an input with a different number of
# columns still fails the program's input check instead of producing garbage.

try:
    dynamic_module(torch.randn(4, num_features + 2, device=device))
except Exception as err:
    print(f"{type(err).__name__}: {str(err).splitlines()[0]}")
else:
    raise AssertionError("the feature dimension is static and should be checked")

# %%
# Saving and loading
# ------------------
# An exported program can be serialized with ``torch.export.save``. The file stores the custom
# operator by name only, so the process that loads it must have defined
# ``recipes_export::digitize`` first (for example by importing the module that registers it),
# which is the case here.

with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "bucketed_scorer.pt2")
    torch.export.save(exported_dynamic, path)
    reloaded = torch.export.load(path)

x = torch.randn(7, num_features, device=device)
torch.testing.assert_close(reloaded.module()(x), model(x))
print("reloaded program matches eager")

# %%
# Conclusion
# ----------
# A custom operator with a fake implementation exports like any built-in operator: it shows
# up as one named node in the graph, its output metadata comes from the fake implementation,
# and the exported program runs it through the dispatcher at execution time. Declaring the
# batch dimension with ``torch.export.Dim`` turns one export into a program valid for a
# whole range of batch sizes, while the remaining static dimensions are still checked.
#
# Further reading
# ---------------
# * `torch.export <https://docs.pytorch.org/docs/stable/export.html>`__ (``export``, ``Dim``,
#   ``ExportedProgram``, ``save`` and ``load``)
# * `torch.library <https://docs.pytorch.org/docs/stable/library.html>`__ (``custom_op``,
#   ``register_fake``)
# * `Python custom operators
#   <https://docs.pytorch.org/tutorials/advanced/python_custom_ops.html>`__
# * `torch.nn.Embedding <https://docs.pytorch.org/docs/stable/generated/torch.nn.Embedding.html>`__
# * `numpy.digitize <https://numpy.org/doc/stable/reference/generated/numpy.digitize.html>`__
#
