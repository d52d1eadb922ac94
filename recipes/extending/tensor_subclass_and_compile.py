"""
A unit-tracking tensor subclass in eager mode and under torch.compile
=====================================================================
**Author:** PyTorch Recipes maintainers

This recipe builds a small tensor subclass that carries physical units (kilograms, metres,
seconds) and uses __torch_function__ to propagate and check them through arithmetic. It runs
the same computation eagerly and through torch.compile with fullgraph=True, and looks at what
the compiler captured: a graph of plain tensor operations, with the unit bookkeeping turned
into guards and into a re-wrapping of the result.

.. rubric:: What you will learn

* How to write a ``torch.Tensor`` subclass that overrides ``__torch_function__``
* How the subclass behaves in eager mode, including gradients and error checks
* How Dynamo inlines ``__torch_function__`` so the captured graph has no graph breaks
* Why changing a Python attribute of the subclass (its unit) triggers a recompilation

.. rubric:: Prerequisites

* PyTorch 2.13 or later
* Runs on CPU or on an accelerator such as CUDA
"""

# %%
# Representing units
# ------------------
# A unit is stored as a sorted tuple of ``(base, power)`` pairs, so metres per second is
# ``(("m", 1), ("s", -1))``. Tuples are immutable and hashable, which keeps comparisons simple
# and, as we will see, makes them easy for the compiler to guard on. Multiplying two
# quantities adds the powers, dividing subtracts them.

# sphinx_gallery_tags = ["tensor-subclass", "torch.compile"]
import torch

torch.manual_seed(0)
device = (
    torch.accelerator.current_accelerator()
    if torch.accelerator.is_available()
    else torch.device("cpu")
)

DIMENSIONLESS = ()


def combine_units(left, right, sign):
    powers = dict(left)
    for base, power in right:
        powers[base] = powers.get(base, 0) + sign * power
    return tuple(sorted((base, power) for base, power in powers.items() if power != 0))


def unit_str(unit):
    parts = [base if power == 1 else f"{base}^{power}" for base, power in unit]
    return " ".join(parts) or "1"


print(unit_str(combine_units((("m", 1),), (("s", 1),), sign=-1)))

# %%
# The subclass
# ------------
# ``UnitTensor`` shares storage with an ordinary tensor (``as_subclass`` creates a view with a
# different Python type, and keeps autograd history) and adds a ``unit`` attribute.
#
# Its ``__torch_function__`` classmethod is called for every torch function or tensor method
# that receives a ``UnitTensor``. It first lets the base class compute the result (the base
# implementation disables the override while it runs and converts tensor outputs back to
# ``UnitTensor``), then decides the unit of the result from a few small rule tables:
#
# * addition and subtraction require both operands to have the same unit,
# * multiplication and division combine units, and Python scalars or plain tensors count as
#   dimensionless,
# * reductions and sign changes keep the unit,
# * any other operation (``sin``, ``exp``, ...) has no meaningful unit, so its result is
#   returned as a plain ``torch.Tensor``.

Tensor = torch.Tensor
SAME_UNIT_OPS = {
    torch.add,
    torch.sub,
    Tensor.add,
    Tensor.sub,
    Tensor.__add__,
    Tensor.__radd__,
    Tensor.__sub__,
    Tensor.__rsub__,
}
MUL_OPS = {torch.mul, Tensor.mul, Tensor.__mul__, Tensor.__rmul__}
DIV_OPS = {torch.div, Tensor.div, Tensor.__truediv__}
KEEP_UNIT_OPS = {
    torch.sum,
    Tensor.sum,
    torch.mean,
    Tensor.mean,
    torch.neg,
    Tensor.neg,
    Tensor.__neg__,
    torch.abs,
    Tensor.abs,
    Tensor.clone,
    Tensor.__getitem__,
}


class UnitTensor(torch.Tensor):
    @staticmethod
    def __new__(cls, data, unit):
        tensor = data.as_subclass(cls)
        tensor.unit = ((unit, 1),) if isinstance(unit, str) else unit
        return tensor

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        units = [a.unit if isinstance(a, UnitTensor) else DIMENSIONLESS for a in args[:2]]
        out = super().__torch_function__(func, types, args, kwargs)

        if func in SAME_UNIT_OPS:
            if units[0] != units[1]:
                raise ValueError(
                    f"cannot add or subtract {unit_str(units[0])} and {unit_str(units[1])}"
                )
            unit = units[0]
        elif func in MUL_OPS:
            unit = combine_units(units[0], units[1], sign=1)
        elif func in DIV_OPS:
            unit = combine_units(units[0], units[1], sign=-1)
        elif func in KEEP_UNIT_OPS:
            unit = units[0]
        else:
            unit = None

        if isinstance(out, UnitTensor):
            if unit is None:
                return out.as_subclass(torch.Tensor)
            out.unit = unit
        return out


def show(name, t):
    unit = unit_str(t.unit) if isinstance(t, UnitTensor) else "-"
    values = [float(f"{v:.4g}") for v in t.detach().flatten().tolist()]
    print(f"{name:<10} {type(t).__name__:<11} unit: {unit:<14} value: {values}")


# %%
# Eager mode
# ----------
# We describe five objects by their mass, the distance they travel and the time they take,
# and compute their total kinetic energy, the sum of ``0.5 * m * v**2``. The unit of the result
# falls out of the arithmetic.

mass = UnitTensor(torch.rand(5, device=device) + 1.0, "kg")
distance = UnitTensor(10.0 * torch.rand(5, device=device), "m")
duration = UnitTensor(torch.rand(5, device=device) + 0.5, "s")


def kinetic_energy(mass, distance, duration):
    speed = distance / duration
    return (0.5 * mass * speed * speed).sum()


energy = kinetic_energy(mass, distance, duration)
show("mass", mass)
show("distance", distance)
show("energy", energy)

assert isinstance(energy, UnitTensor)
assert energy.unit == (("kg", 1), ("m", 2), ("s", -2))

# %%
# The subclass also refuses physically meaningless arithmetic, and drops its unit where none
# makes sense:

try:
    _ = distance + duration
except ValueError as err:
    print(f"ValueError: {err}")
else:
    raise AssertionError("adding metres to seconds should fail")

angle = torch.sin(distance)
show("sin(d)", angle)
assert type(angle) is torch.Tensor

# %%
# Gradients flow through the subclass like through any tensor, because every operation is
# still an ordinary autograd-aware tensor operation underneath.

raw_distance = distance.detach().as_subclass(torch.Tensor).requires_grad_()
kinetic_energy(mass, UnitTensor(raw_distance, "m"), duration).backward()
eager_grad = raw_distance.grad.clone()
# d/dd of 0.5 * m * (d / t)^2 is m * d / t^2
expected_grad = (mass * distance / (duration * duration)).as_subclass(torch.Tensor)
torch.testing.assert_close(eager_grad, expected_grad)
print("gradient w.r.t. distance matches m * d / t^2")

# %%
# Compiling a function that receives the subclass
# -----------------------------------------------
# Now we compile ``kinetic_energy`` with ``fullgraph=True``, which turns any graph break into
# an error, so a successful call proves that Dynamo captured the whole function in one graph.
# The backend is a tiny function that records every graph it receives, prints the code of
# the first one and returns the graph's own ``forward``, so the captured FX graph runs as is
# (like the built-in ``"eager"`` backend). This recipe is about tracing, not code generation,
# and the list of recorded graphs doubles as a compilation counter.

captured_graphs = []


def recording_backend(gm, example_inputs):
    captured_graphs.append(gm)
    if len(captured_graphs) == 1:
        print(gm.code.strip())
    else:
        print(f"(compiled graph number {len(captured_graphs)})")
    return gm.forward


compiled_energy = torch.compile(kinetic_energy, backend=recording_backend, fullgraph=True)
energy_compiled = compiled_energy(mass, distance, duration)
show("compiled", energy_compiled)

assert len(captured_graphs) == 1
assert isinstance(energy_compiled, UnitTensor)
assert energy_compiled.unit == energy.unit
torch.testing.assert_close(
    energy_compiled.as_subclass(torch.Tensor), energy.as_subclass(torch.Tensor)
)

# %%
# What Dynamo did with the subclass
# ---------------------------------
# The graph printed above contains only ``div``, ``mul`` and ``sum`` calls. Dynamo treats
# ``__torch_function__`` as ordinary Python and inlines it while tracing: the rule-table
# lookups, the unit arithmetic and the ``ValueError`` check all ran once, at compile time,
# and left nothing in the graph. Only the tensor computation remains, and it runs with
# ``__torch_function__`` disabled, so there is no per-operation Python overhead at run time.
# After the graph runs, Dynamo rebuilds the ``UnitTensor`` around the output and sets the
# ``unit`` attribute it computed during tracing, which is why the result type and unit are
# preserved.
#
# Because the unit was computed once from the *input* units, the compiled code is only valid
# for those units. Dynamo therefore installs guards on the ``unit`` attributes of the inputs.
# New values with the same units reuse the graph; a different unit causes a recompilation.

energy_again = compiled_energy(2.0 * mass, distance, duration)
assert len(captured_graphs) == 1, "same units, new values: no recompilation"
torch.testing.assert_close(
    energy_again.as_subclass(torch.Tensor), 2.0 * energy.as_subclass(torch.Tensor)
)

distance_km = UnitTensor(distance.as_subclass(torch.Tensor) / 1000.0, "km")
energy_km = compiled_energy(mass, distance_km, duration)
show("energy_km", energy_km)
assert len(captured_graphs) == 2, "a new unit is a new guard failure"
assert energy_km.unit == (("kg", 1), ("km", 2), ("s", -2))

# %%
# The second graph has the same operations as the first; only the unit attached to the
# output differs.
# For a subclass whose metadata takes many values this could cause many recompilations, so
# keep such metadata small and stable.
#
# Gradients under compile
# -----------------------
# Calling with an input that requires a gradient is another guard failure (requires-grad
# status is part of the guards), so a third graph is captured. The gradient matches eager.

raw_distance_c = distance.detach().as_subclass(torch.Tensor).requires_grad_()
compiled_energy(mass, UnitTensor(raw_distance_c, "m"), duration).backward()
assert len(captured_graphs) == 3
torch.testing.assert_close(raw_distance_c.grad, eager_grad)
print("compiled gradient matches eager gradient")

# %%
# Errors raised by __torch_function__ still reach the user
# --------------------------------------------------------
# A function that adds metres and seconds cannot be traced to a graph, because tracing runs
# the check that raises. Without ``fullgraph=True``, Dynamo gives up on that frame and the
# original ``ValueError`` propagates exactly as in eager mode. (With ``fullgraph=True`` you
# would instead get Dynamo's ``Unsupported`` error, which wraps the same message.)


def bad_sum(distance, duration):
    return distance + duration


try:
    torch.compile(bad_sum, backend="eager")(distance, duration)
except ValueError as err:
    print(f"compiled call raised ValueError: {err}")
else:
    raise AssertionError("the compiled call should raise too")

# %%
# A note on other backends
# ------------------------
# This recipe uses a backend that runs the captured graph directly. At the time of writing,
# the AOTAutograd-based backends (``"aot_eager"``, and ``"inductor"`` as soon as gradients or
# non-pointwise ops are involved) can fail on the first call when a graph input is a subclass
# that defines only ``__torch_function__``, with a "Multiple dispatch failed" error; see
# `pytorch/pytorch#193932 <https://github.com/pytorch/pytorch/issues/193932>`__. The
# Dynamo-level behaviour shown above, inlining, guards and result re-wrapping, happens before
# any backend is involved and is the same for all of them.
#
# Conclusion
# ----------
# A ``__torch_function__`` subclass is a light way to attach metadata such as units to tensors
# and to enforce rules about it. ``torch.compile`` traces through the override without graph
# breaks: the Python-level logic is evaluated during tracing, the graph holds only plain
# tensor operations, the output is re-wrapped with the computed metadata, and the metadata
# of the inputs becomes guards that trigger a recompilation when it changes.
#
# Further reading
# ---------------
# * `Extending torch with a Tensor-like type
#   <https://docs.pytorch.org/docs/stable/notes/extending.html>`__
# * `torch.Tensor.as_subclass
#   <https://docs.pytorch.org/docs/stable/generated/torch.Tensor.as_subclass.html>`__
# * `torch.compile <https://docs.pytorch.org/docs/stable/generated/torch.compile.html>`__
# * `Custom backends for torch.compile
#   <https://docs.pytorch.org/docs/stable/torch.compiler_custom_backends.html>`__
# * `torch.testing.assert_close
#   <https://docs.pytorch.org/docs/stable/testing.html#torch.testing.assert_close>`__
#
