"""
Steering torch.compile with disable and compiler stances
========================================================
**Author:** PyTorch Recipes maintainers

Sometimes you need to tell the compiler what not to do: leave one helper in eager mode, skip
compilation entirely for a debugging run, or make sure a warmed-up model never compiles again.
This recipe uses a counting backend to show, with numbers, what torch.compiler.disable and the
force_eager, fail_on_recompile and eager_on_recompile stances of torch.compiler.set_stance do.

.. rubric:: What you will learn

* How ``torch.compiler.disable`` keeps a helper out of the graph, and what that costs
* How ``set_stance("force_eager")`` turns every ``torch.compile`` call into plain eager execution
* How ``set_stance("fail_on_recompile")`` turns an unexpected recompilation into an error
* How ``set_stance("eager_on_recompile")`` reuses compiled code but never compiles anything new

.. rubric:: Prerequisites

* PyTorch 2.13 or later
* Runs on CPU or CUDA
"""

# %%
# A backend that counts compilations and compiled runs
# ----------------------------------------------------
# The backend below counts how many graphs it is asked to compile, records the operations in each
# graph, and wraps the returned callable so that it also counts how many times compiled code
# actually runs. With these two counters every behaviour in this recipe can be asserted: eager
# execution leaves both unchanged, a cache hit increases only ``runs``, and a new compilation
# increases ``compiles``.

# sphinx_gallery_tags = ["torch.compile", "debugging"]
import torch

device = (
    torch.accelerator.current_accelerator()
    if torch.accelerator.is_available()
    else torch.device("cpu")
)
torch.manual_seed(0)


class CountingBackend:
    def __init__(self):
        self.compiles = 0
        self.runs = 0
        self.graph_ops = []

    def __call__(self, gm, example_inputs):
        self.compiles += 1
        ops = [n.target for n in gm.graph.nodes if n.op in ("call_function", "call_method")]
        self.graph_ops.append([getattr(op, "__name__", str(op)) for op in ops])

        def run(*args):
            self.runs += 1
            return gm.forward(*args)

        return run

    def __repr__(self):
        return f"compiles={self.compiles}, compiled runs={self.runs}"


# %%
# Keeping a helper in eager mode with ``torch.compiler.disable``
# --------------------------------------------------------------
# ``torch.compiler.disable`` marks a function as off limits: TorchDynamo does not trace into it and
# it always runs as normal Python. Typical reasons are code the compiler handles badly, code that
# must keep its Python side effects, or narrowing down a suspected compiler bug.
#
# The price is a graph break around each call. ``smooth`` below computes a sine, calls the
# disabled helper, and applies a cosine, so we expect two graphs, one on each side of the call,
# and no trace of the helper's ``cumsum`` in either of them.


@torch.compiler.disable
def running_total(t):
    return t.cumsum(dim=0)


def smooth(x):
    y = torch.sin(x)
    y = running_total(y)
    return torch.cos(y)


x = torch.randn(16, device=device)
backend = CountingBackend()
compiled_smooth = torch.compile(smooth, backend=backend)
torch.testing.assert_close(compiled_smooth(x), smooth(x))
print(backend)
for i, ops in enumerate(backend.graph_ops):
    print(f"graph {i}: {ops}")

explanation = torch._dynamo.explain(smooth)(x)
print(f"explain: {explanation.graph_break_count} break(s)")
print(f"reason: {explanation.break_reasons[0].reason.splitlines()[0]}")

assert backend.compiles == 2
assert not any("cumsum" in op for ops in backend.graph_ops for op in ops)
assert explanation.graph_break_count == 1

# %%
# The two printed graphs hold the ``sin`` and the ``cos``, while ``cumsum`` ran eagerly between
# them, and ``explain`` attributes the single break to the disabled function. Use ``disable`` on
# the smallest function that needs it, since every call site pays for a break.
#
# Turning compilation off with the ``force_eager`` stance
# -------------------------------------------------------
# ``torch.compiler.set_stance`` changes how all ``torch.compile`` wrappers behave without editing
# the code that created them. It works as a function, a decorator or, as here, a context manager,
# which restores the previous stance on exit. Under ``"force_eager"`` every compiled function runs
# its original Python code, which is handy for checking whether a bug or a slowdown comes from
# the compiler.

torch._dynamo.reset()
backend = CountingBackend()
compiled_smooth = torch.compile(smooth, backend=backend)

with torch.compiler.set_stance("force_eager"):
    for _ in range(3):
        torch.testing.assert_close(compiled_smooth(x), smooth(x))
print(f"inside force_eager: {backend}")
assert backend.compiles == 0 and backend.runs == 0

compiled_smooth(x)
print(f"after the block:    {backend}")
assert backend.compiles == 2 and backend.runs == 2

# %%
# Three calls inside the block left both counters at zero: nothing was compiled and no compiled
# code ran. The first call after the block compiled the two graphs as usual, which also shows that
# the context manager restored the default stance.
#
# Catching recompilations with ``fail_on_recompile``
# --------------------------------------------------
# After warm-up, a recompilation in production usually means an unexpected input (a new shape, a
# new dtype, a changed global) and costs a compile pause. Under ``"fail_on_recompile"`` such a
# call raises instead, with a message naming the guard that failed. Calls that existing compiled
# code can serve still run normally.


def weighted_sum(x, w):
    return (x * w).sum(dim=-1)


torch._dynamo.reset()
backend = CountingBackend()
compiled_ws = torch.compile(weighted_sum, backend=backend)
w = torch.randn(8, device=device)
compiled_ws(torch.randn(4, 8, device=device), w)  # warm-up: compiles for 4 rows
print(f"after warm-up: {backend}")

error = None
with torch.compiler.set_stance("fail_on_recompile"):
    compiled_ws(torch.randn(4, 8, device=device), w)  # same shape: served from the cache
    try:
        compiled_ws(torch.randn(6, 8, device=device), w)  # new shape: would recompile
    except RuntimeError as exc:
        error = exc
        print(f"{type(exc).__name__}:")
        print("\n".join(str(exc).splitlines()[:3]))
print(f"after the block: {backend}")

assert error is not None
assert backend.compiles == 1 and backend.runs == 2

# %%
# The error text printed above names the function and the failing guard (the size of dimension
# 0 changed), which is exactly the information needed to decide whether that dimension should be
# marked dynamic. The counters show one compilation and two compiled runs: the warm-up and the
# cache hit inside the block.
#
# Serving from the cache only with ``eager_on_recompile``
# -------------------------------------------------------
# ``"eager_on_recompile"`` is the lenient relative: compiled code is still used whenever its guards
# pass, and any call that would need a new compilation runs eagerly instead. This bounds compile
# time after warm-up without risking an exception.

with torch.compiler.set_stance("eager_on_recompile"):
    a = torch.randn(4, 8, device=device)
    torch.testing.assert_close(compiled_ws(a, w), weighted_sum(a, w))
    print(f"known shape:  {backend}")
    assert backend.compiles == 1 and backend.runs == 3  # compiled code was used

    b = torch.randn(10, 8, device=device)
    torch.testing.assert_close(compiled_ws(b, w), weighted_sum(b, w))
    print(f"new shape:    {backend}")
    assert backend.compiles == 1 and backend.runs == 3  # ran eagerly, nothing compiled

compiled_ws(b, w)
print(f"default again: {backend}")
assert backend.compiles == 2 and backend.runs == 4

# %%
# Inside the block, the known shape increased only the ``runs`` counter, and the new shape changed
# neither counter, yet both results match eager mode. Once the block ended, the default stance was
# back and the same new shape was compiled.
#
# Conclusion
# ----------
# ``torch.compiler.disable`` is a local, permanent decision about one function and always costs a
# graph break. ``torch.compiler.set_stance`` is a global, temporary decision about all compiled
# functions: ``"force_eager"`` for debugging without the compiler, ``"fail_on_recompile"`` to
# enforce that warm-up covered every case, and ``"eager_on_recompile"`` to keep serving compiled
# code without ever pausing to compile again. Using the stance as a context manager guarantees the
# default behaviour comes back.
#
# Further reading
# ---------------
# * `torch.compile <https://docs.pytorch.org/docs/stable/generated/torch.compile.html>`__
# * `torch.compiler.disable
#   <https://docs.pytorch.org/docs/stable/generated/torch.compiler.disable.html>`__
# * `torch.compiler.set_stance
#   <https://docs.pytorch.org/docs/stable/generated/torch.compiler.set_stance.html>`__
# * `torch.compiler API reference <https://docs.pytorch.org/docs/stable/torch.compiler_api.html>`__
#
