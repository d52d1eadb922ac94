"""
Profiling a compiled model with torch.profiler
==============================================
**Author:** PyTorch Recipes maintainers

The PyTorch profiler shows which operators ran and how long each took, which is the quickest
way to see what torch.compile changed in a model. This recipe profiles the same small network
in eager mode and compiled, labels the steps with record_function, and compares the two
profiles: the operators that disappeared into generated code and the events that the compiled
runtime adds.

.. rubric:: What you will learn

* How to profile CPU work, and accelerator work when a device is present, with ``torch.profiler``
* Why to warm up a compiled model before profiling it
* How to label regions with ``record_function`` and read ``key_averages().table(...)``
* Which events mark compiled code in a profile, and how to export a trace for a viewer

.. rubric:: Prerequisites

* PyTorch 2.13 or later
* Runs on CPU or on an accelerator such as CUDA
"""

# %%
# A small model and its compiled twin
# -----------------------------------
# The network mixes matrix products with cheap elementwise and normalization work (GELU,
# LayerNorm, a residual add). Those cheap operations are what the default inductor backend
# fuses into generated kernels, so the difference between the two profiles will be easy to see.

# sphinx_gallery_tags = ["profiling", "torch.compile", "performance"]
# sphinx_gallery_parallel = False
import json
import os
import tempfile

import torch
from torch import nn
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile, record_function, supported_activities

# sphinx_gallery_start_ignore
# Importing TorchInductor in PyTorch 2.13 emits a DeprecationWarning from torch's own
# TorchScript helpers. Silence only that warning, so that the file also runs under
# ``python -W error::DeprecationWarning``.


def _import_inductor_quietly():
    import importlib
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*torch.jit.script_method", DeprecationWarning)
        importlib.import_module("torch._inductor.compile_fx")


_import_inductor_quietly()
# sphinx_gallery_end_ignore

torch.manual_seed(0)
device = (
    torch.accelerator.current_accelerator()
    if torch.accelerator.is_available()
    else torch.device("cpu")
)


class Block(nn.Module):
    def __init__(self, width=128):
        super().__init__()
        self.up = nn.Linear(width, 2 * width)
        self.down = nn.Linear(2 * width, width)
        self.norm = nn.LayerNorm(width)

    def forward(self, x):
        return self.norm(x + self.down(nn.functional.gelu(self.up(x))))


model = Block().to(device).eval()
compiled_model = torch.compile(model)
x = torch.randn(64, 128, device=device)

# %%
# Warm up before profiling
# ------------------------
# The first call of ``compiled_model`` traces and compiles it, which takes seconds, and the
# first eager calls may initialize libraries. None of that is what we want to see, so both
# versions run a few times before the profiler starts. We also check that they agree.

with torch.no_grad():
    for _ in range(3):
        expected = model(x)
        actual = compiled_model(x)
torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4)

# %%
# Profiling
# ---------
# ``ProfilerActivity.CPU`` records the operators called from Python. When an accelerator is
# present, we also ask for its activity (``ProfilerActivity.CUDA`` on NVIDIA GPUs) so that
# device kernels are recorded too. The loop body is wrapped in ``record_function`` so that each
# step shows up as a named range in the results. Accelerator work is awaited inside the profile,
# so that the last kernels are not cut off.

activities = [ProfilerActivity.CPU]
accelerator_activity = getattr(ProfilerActivity, device.type.upper(), None)
if device.type != "cpu" and accelerator_activity in supported_activities():
    activities.append(accelerator_activity)
print("profiling activities:", activities)


def profile_steps(fn, label, steps=5):
    with torch.no_grad(), profile(activities=activities) as prof:
        for _ in range(steps):
            with record_function(label):
                fn(x)
        if device.type != "cpu":
            torch.accelerator.synchronize()
    return prof


eager_prof = profile_steps(model, "eager_step")
compiled_prof = profile_steps(compiled_model, "compiled_step")

# %%
# Reading the eager profile
# -------------------------
# ``key_averages()`` groups events by name. Sorting by ``cpu_time_total`` puts the outermost
# ranges first: our ``eager_step`` label, which contains everything, then the operators
# underneath it. "Self CPU" is the time spent in an event excluding its children.

print(eager_prof.key_averages().table(sort_by="cpu_time_total", row_limit=10))

# %%
# Every module call appears as its ATen operators: ``aten::linear`` with ``aten::addmm``
# underneath, ``aten::gelu``, ``aten::add``, ``aten::layer_norm`` and so on.
#
# Reading the compiled profile
# ----------------------------

print(compiled_prof.key_averages().table(sort_by="cpu_time_total", row_limit=10))

# %%
# The compiled profile has a different shape. Under ``compiled_step`` you can find:
#
# * ``TorchDynamo Cache Lookup``: checking the guards to pick the compiled code to run.
# * ``Torch-Compiled Region: N/M``: the whole compiled frame; the two numbers identify the
#   frame that Dynamo compiled and which of its compilations ran.
# * ``## Call CompiledFxGraph ... ##``: the call into the code that inductor generated.
#
# Below that, only the operators that inductor left to existing libraries are visible, such
# as the matrix products. The fused elementwise and normalization work runs inside generated
# kernels that do not go through the ATen dispatcher; on CPU their time is counted in the self
# time of the ``CompiledFxGraph`` event. We check all of this in code.

eager_keys = {e.key for e in eager_prof.key_averages()}
compiled_keys = {e.key for e in compiled_prof.key_averages()}
eager_aten = sorted(k for k in eager_keys if k.startswith("aten::"))
compiled_aten = sorted(k for k in compiled_keys if k.startswith("aten::"))
print(f"distinct ATen operators, eager:    {len(eager_aten)}")
print(f"distinct ATen operators, compiled: {len(compiled_aten)}")
print("present only in eager:", ", ".join(sorted(set(eager_aten) - set(compiled_aten))))

assert "eager_step" in eager_keys and "compiled_step" in compiled_keys
assert any(k.startswith("Torch-Compiled Region") for k in compiled_keys)
assert any("CompiledFxGraph" in k for k in compiled_keys)
assert not any(k.startswith("Torch-Compiled Region") for k in eager_keys)
assert len(compiled_aten) < len(eager_aten)
for fused in ("aten::gelu", "aten::native_layer_norm"):
    assert fused in eager_keys and fused not in compiled_keys

# %%
# The operator counts and the list printed above confirm it: GELU and LayerNorm are separate
# operators in eager mode and gone from the compiled profile, while the compiled profile
# contains the compiled-region events.
#
# Each label was recorded once per step:

# With an accelerator, each range is also recorded once on the device's timeline, so we
# count the events of the CPU side only: one per step, whatever the device.

cpu_events = [e for e in compiled_prof.events() if e.device_type == DeviceType.CPU]
step_ranges = sum(e.name == "compiled_step" for e in cpu_events)
region_calls = sum(e.name.startswith("Torch-Compiled Region") for e in cpu_events)
print(f"compiled_step ranges: {step_ranges}, compiled-region calls: {region_calls}")
assert step_ranges == 5 and region_calls == 5

# %%
# Exporting a trace
# -----------------
# The tables aggregate events; a trace keeps every event on a timeline. ``export_chrome_trace``
# writes a JSON file that `Perfetto <https://ui.perfetto.dev>`__ or ``chrome://tracing`` can
# open. We write it into a temporary directory and look inside it from Python.

with tempfile.TemporaryDirectory() as tmp:
    trace_path = os.path.join(tmp, "compiled_trace.json")
    compiled_prof.export_chrome_trace(trace_path)
    size_kb = os.path.getsize(trace_path) / 1024
    with open(trace_path) as f:
        trace = json.load(f)

names = [event.get("name", "") for event in trace["traceEvents"]]
print(f"trace file: {size_kb:.1f} KiB, {len(names)} events")
# CPU-side ranges are "user_annotation" events; their device copies are "gpu_user_annotation".
cpu_ranges = [e for e in trace["traceEvents"] if e.get("cat") == "user_annotation"]
assert sum(e["name"] == "compiled_step" for e in cpu_ranges) == 5
assert any(name.startswith("Torch-Compiled Region") for name in names)

# %%
# Conclusion
# ----------
# Profiling a compiled model works like profiling an eager one, as long as compilation is kept
# out of the profiled steps by a warm-up. Labels from ``record_function`` make the steps easy
# to find, the ``Torch-Compiled Region`` and ``CompiledFxGraph`` events mark compiled code, and
# operators that disappear between the eager and the compiled profile show what the compiler
# fused. On an accelerator, sort the table by ``device_time_total`` to rank the device kernels.
#
# Further reading
# ---------------
# * `torch.profiler <https://docs.pytorch.org/docs/stable/profiler.html>`__
# * `torch.compile <https://docs.pytorch.org/docs/stable/generated/torch.compile.html>`__
# * `torch.accelerator <https://docs.pytorch.org/docs/stable/accelerator.html>`__
# * `torch.testing.assert_close
#   <https://docs.pytorch.org/docs/stable/testing.html#torch.testing.assert_close>`__
#
