"""
Reading the graphs and code that torch.compile produces
=======================================================
**Author:** PyTorch Recipes maintainers

torch.compile works in stages: TorchDynamo captures Python code as an FX graph, AOTAutograd lowers
it to ATen operators, and a backend such as Inductor generates kernels. This recipe looks at the
output of each stage for a tiny function, first with custom backends that print the graphs they
receive, then with the torch._logging switches that make Inductor emit its generated code, which we
capture with a logging handler to check it programmatically.

.. rubric:: What you will learn

* How a custom backend can print the FX graph TorchDynamo traced (``gm.code`` and ``gm.graph``)
* Why Python loops and shape checks disappear from the traced graph
* How to see the ATen-level graph with ``aot_autograd``
* How ``torch._logging.set_logs`` exposes Inductor's generated code, and how to capture it

.. rubric:: Prerequisites

* PyTorch 2.13 or later
* Runs on CPU or CUDA (Inductor writes C++ kernels on CPU and Triton kernels on GPU)
"""

# %%
# The function under study
# ------------------------
# ``tiny_layer`` mixes tensor operations with two pieces of plain Python: a ``for`` loop with a
# fixed trip count and an ``if`` that tests a shape. Neither depends on tensor values, so
# TorchDynamo can evaluate them while it traces.

# sphinx_gallery_tags = ["torch.compile", "debugging"]
import importlib
import logging
import re
import warnings

import torch
from torch._dynamo.backends.common import aot_autograd

device = (
    torch.accelerator.current_accelerator()
    if torch.accelerator.is_available()
    else torch.device("cpu")
)
torch.manual_seed(0)


def tiny_layer(x, weight, bias):
    h = x @ weight.t() + bias
    for _ in range(2):
        h = h * torch.sigmoid(h)
    if h.shape[-1] > 2:
        h = h - h.mean(dim=-1, keepdim=True)
    return h


x = torch.randn(4, 8, device=device)
weight = torch.randn(6, 8, device=device)
bias = torch.randn(6, device=device)
expected = tiny_layer(x, weight, bias)

# %%
# Stage 1: the graph TorchDynamo traced
# -------------------------------------
# A backend receives a ``torch.fx.GraphModule``. Its ``code`` attribute is the Python source FX
# generated for the graph, and its ``graph`` attribute lists the nodes (placeholders for inputs,
# ``call_function`` and ``call_method`` nodes for operations, and an ``output`` node). Our backend
# prints both, keeps the module for the checks below, and returns ``gm.forward`` so the graph simply
# runs as it is.

captured = []


def print_graph_backend(gm, example_inputs):
    print("---- gm.code ----")
    print(gm.code.strip())
    print("---- gm.graph ----")
    print(gm.graph)
    captured.append(gm)
    return gm.forward


compiled = torch.compile(tiny_layer, backend=print_graph_backend)
torch.testing.assert_close(compiled(x, weight, bias), expected)

# %%
# The printed code is a straight line of tensor operations. The loop was unrolled into two
# ``sigmoid`` calls and the ``if`` vanished: the shape check was true while tracing, so only the
# branch taken was recorded. TorchDynamo protects this choice with a guard on the input shapes, so a
# call whose shapes no longer satisfy it would trigger a new trace rather than reuse this graph.
# Note also that the operations still appear as the ``torch`` functions, tensor methods and Python
# operators (``operator.matmul`` for ``@``) that we wrote.

gm = captured[0]
targets = [node.target for node in gm.graph.nodes if node.op in ("call_function", "call_method")]
print("operations in the traced graph:", [getattr(t, "__name__", t) for t in targets])
assert len(captured) == 1  # one graph, no graph breaks
assert targets.count(torch.sigmoid) == 2  # the Python loop was unrolled
assert " if " not in gm.code  # the shape check was resolved while tracing

# %%
# Stage 2: the ATen graph after AOTAutograd
# -----------------------------------------
# Backends such as Inductor do not consume the TorchDynamo graph directly. ``aot_autograd`` first
# traces it again down to ATen operators, the core operator set of PyTorch, and (when gradients are
# needed) splits it into forward and backward graphs. Wrapping our printing function with
# ``aot_autograd`` shows this lower-level graph. None of our inputs require gradients, so only an
# inference graph is produced.

aten_graphs = []


def print_aten_graph(gm, example_inputs):
    print(gm.code.strip())
    aten_graphs.append(gm)
    return gm.forward


torch._dynamo.reset()  # drop the graph cached above so that the new backend sees the function
compiled_aten = torch.compile(tiny_layer, backend=aot_autograd(fw_compiler=print_aten_graph))
torch.testing.assert_close(compiled_aten(x, weight, bias), expected)

aten_targets = [str(n.target) for n in aten_graphs[0].graph.nodes if n.op == "call_function"]
assert all(t.startswith("aten.") for t in aten_targets)
assert aten_targets.count("aten.sigmoid.default") == 2

# %%
# Every operation is now a specific ATen overload such as ``aten.mm.default`` or
# ``aten.mean.dim``: the ``@`` operator became a transpose and a matrix multiply, and the
# ``Tensor.mean`` method became an explicit overload with its arguments filled in.
#
# Stage 3: the code Inductor generates
# ------------------------------------
# For the default Inductor backend, the generated code is not handed to us, but it can be logged.
# ``torch._logging.set_logs`` is the in-Python equivalent of the ``TORCH_LOGS`` environment
# variable: ``graph_code=True`` logs the TorchDynamo graph and ``output_code=True`` logs the module
# Inductor writes. The logs go to standard error as usual, which is what you would read in a
# terminal.
#
# To work with the text in Python we also attach a ``logging.Handler``. ``set_logs`` gives the
# component loggers ``torch._dynamo`` and ``torch._inductor`` handlers of their own and stops them
# from propagating to the parent ``torch`` logger, so we attach our handler to those two loggers.
# The ``try``/``finally`` block removes it and resets the log settings with a bare
# ``set_logs()`` call even if something fails.
#
# One detail before compiling: in this release, loading Inductor imports a legacy TorchScript
# helper inside PyTorch that emits a ``DeprecationWarning``. It does not concern our code, so we
# import Inductor once with that single warning ignored.

with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore", message="`torch.jit.script_method` is deprecated", category=DeprecationWarning
    )
    importlib.import_module("torch._inductor.compile_fx")


class RecordCollector(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append((record.name, record.getMessage()))


def scaled_sine(x):
    return torch.sin(x) * 2.0 + 1.0


collector = RecordCollector()
component_loggers = [logging.getLogger(name) for name in ("torch._dynamo", "torch._inductor")]
torch._dynamo.reset()
torch._logging.set_logs(graph_code=True, output_code=True)
try:
    for component in component_loggers:
        component.addHandler(collector)
    v = torch.randn(64, device=device)
    torch.testing.assert_close(torch.compile(scaled_sine)(v), scaled_sine(v))
finally:
    for component in component_loggers:
        component.removeHandler(collector)
    torch._logging.set_logs()

first_lines = [f"{name}: {message.splitlines()[0]}" for name, message in collector.messages]
print("\n".join(dict.fromkeys(first_lines)))  # drop exact repeats, keep the order

# %%
# The listing above shows the artifact loggers that fired: one message from TorchDynamo with the
# traced graph, and messages from Inductor with the generated module and the path of the file it
# was written to in the Inductor cache. Next we pick out the generated module and print an
# excerpt: the names of the fused kernels and the ``call`` function, which is the entry point that
# allocates the output buffer and launches the kernel.

graph_logs = [m for n, m in collector.messages if n.endswith("__graph_code")]
code_logs = [m for n, m in collector.messages if n.endswith("__output_code") and "def call" in m]
assert graph_logs and "torch.sin" in graph_logs[0]
assert code_logs, "Inductor should have logged its generated module"
source = code_logs[0]

kernels = sorted(set(re.findall(r"\b(?:cpp|triton)_\w*fused\w*", source)))
print("fused kernels:", kernels)

lines = source.splitlines()
start = next(i for i, line in enumerate(lines) if "def call(" in line)
end = next(i for i in range(start, len(lines)) if lines[i].strip().startswith("return"))
print("\n".join(lines[start : end + 1]))

assert kernels, "the generated module should define at least one fused kernel"
assert any(kernel in "\n".join(lines[start:end]) for kernel in kernels)

# %%
# The kernel name lists the operations Inductor fused (``sin``, ``mul`` and ``add``) into one
# loop, so the input is read once and the output written once. On CPU the kernel body is C++
# source embedded in the module; on a GPU it would be a Triton function. The ``call`` function
# checks the input's size and stride, allocates the result and runs the kernel.
#
# With the logs reset, compiling again no longer logs the traced graph. We use the quick
# ``eager`` backend for this check: TorchDynamo still traces the function, so a ``graph_code``
# record would appear if that artifact were still switched on.

torch._dynamo.reset()
quiet = RecordCollector()
for component in component_loggers:
    component.addHandler(quiet)
try:
    torch.compile(scaled_sine, backend="eager")(v)
finally:
    for component in component_loggers:
        component.removeHandler(quiet)
print(f"graph or code records after set_logs(): {len(quiet.messages)}")
assert not any(n.endswith(("__graph_code", "__output_code")) for n, _ in quiet.messages)

# %%
# Conclusion
# ----------
# Each stage of ``torch.compile`` can be inspected. A custom backend that prints ``gm.code`` shows
# exactly what TorchDynamo captured, which is where unrolled loops, resolved branches and missing
# operations (graph breaks) become visible. Wrapping it with ``aot_autograd`` shows the ATen graph a
# compiler actually lowers. For Inductor, ``torch._logging.set_logs(output_code=True)`` reveals the
# generated kernels, and a logging handler lets tests assert on them. Remember to call
# ``set_logs()`` without arguments when you are done.
#
# Further reading
# ---------------
# * `torch.compile <https://docs.pytorch.org/docs/stable/generated/torch.compile.html>`__
# * `torch._logging.set_logs
#   <https://docs.pytorch.org/docs/stable/generated/torch._logging.set_logs.html>`__
# * `torch.fx <https://docs.pytorch.org/docs/stable/fx.html>`__
# * `Custom backends <https://docs.pytorch.org/docs/stable/torch.compiler_custom_backends.html>`__
# * `logging.Handler <https://docs.python.org/3/library/logging.html#handler-objects>`__
#
