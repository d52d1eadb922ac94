"""
Writing device-generic code with torch.accelerator
==================================================
**Author:** PyTorch Recipes maintainers

Code that hard-codes one device type breaks as soon as it runs somewhere else. This recipe
writes a small inference workflow (model, data, mixed precision, memory checks and
timing) once, with the torch.accelerator API and a CPU fallback, so that the same file runs
unchanged on a laptop CPU, on a CUDA GPU or on another accelerator.

.. rubric:: What you will learn

* How to detect the current accelerator and fall back to the CPU
* How to place models and data, seed random numbers and synchronize without device-specific calls
* How to query accelerator memory only where it exists
* How to use ``torch.autocast`` with the detected device type and check its accuracy
* How to time a function correctly on any device

.. rubric:: Prerequisites

* PyTorch 2.13 or later
* Runs on CPU, CUDA or any other accelerator supported by ``torch.accelerator``
"""

# %%
# Detecting the device
# --------------------
# ``torch.accelerator`` describes the accelerator that this PyTorch build was made for (CUDA,
# ROCm, XPU, MPS and others) without naming it in the code. ``is_available()`` says whether
# one can be used right now, ``current_accelerator()`` returns its device type and
# ``device_count()`` how many devices there are. On a CPU-only build there is no accelerator at
# all: ``current_accelerator()`` returns ``None`` and ``device_count()`` returns 0.

# sphinx_gallery_tags = ["device", "performance"]
# sphinx_gallery_parallel = False
import statistics
import time

import torch
from torch import nn
from torch.utils.benchmark import Timer

print(f"accelerator available: {torch.accelerator.is_available()}")
print(f"current accelerator:   {torch.accelerator.current_accelerator()}")
print(f"device count:          {torch.accelerator.device_count()}")

# %%
# With ``check_available=True``, ``current_accelerator`` returns ``None`` whenever the
# accelerator cannot be used, so choosing the device, with the CPU as fallback, is one
# expression. Every later line uses ``device`` and nothing else.

device = torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")
on_accelerator = device.type != "cpu"
print(f"using device: {device}")

assert on_accelerator == torch.accelerator.is_available()
if on_accelerator:
    print(f"current device index: {torch.accelerator.current_device_index()}")
    assert torch.accelerator.device_count() >= 1
else:
    assert torch.accelerator.device_count() == 0


def synchronize():
    """Wait for queued device work. CPU operations are already finished when they return."""
    if on_accelerator:
        torch.accelerator.synchronize()


# %%
# Seeding
# -------
# ``torch.manual_seed`` seeds the CPU generator and the generators of all accelerators, so one
# call makes random numbers reproducible on whichever device we ended up with.

torch.manual_seed(0)
first = torch.randn(4, device=device)
torch.manual_seed(0)
second = torch.randn(4, device=device)
assert torch.equal(first, second)
print(f"same random numbers after reseeding on {device.type}: {torch.equal(first, second)}")

# %%
# Model and data on the device
# ----------------------------
# ``.to(device)`` moves a module's parameters and buffers; tensors are best created directly
# on the device with ``device=``, which avoids a copy. For data that starts on the host, pinned
# (page-locked) memory and ``non_blocking=True`` let the copy overlap with other work on an
# accelerator. Pinning needs an accelerator, so it is guarded; ``non_blocking=True`` is
# harmless on the CPU.

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 64)).to(device).eval()
host_batch = torch.randn(128, 256)
if on_accelerator:
    host_batch = host_batch.pin_memory()
    assert host_batch.is_pinned()
batch = host_batch.to(device, non_blocking=True)
synchronize()

assert all(p.device.type == device.type for p in model.parameters())
assert batch.device.type == device.type
param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
print(
    f"parameters: {sum(p.numel() for p in model.parameters())} "
    f"({param_bytes / 2**20:.2f} MiB) on {device.type}"
)

# %%
# Memory statistics where they exist
# ----------------------------------
# ``torch.accelerator.memory_allocated()`` and its relatives report what the accelerator's
# caching allocator holds. They raise an error when there is no accelerator, so we only call
# them on one. On the CPU we report ``None`` and rely on sizes we can compute ourselves, like
# the parameter size printed above.


def accelerator_memory():
    if not on_accelerator:
        return None
    return {
        "allocated": torch.accelerator.memory_allocated(),
        "peak": torch.accelerator.max_memory_allocated(),
    }


if on_accelerator:
    torch.accelerator.reset_peak_memory_stats()
with torch.no_grad():
    reference = model(batch)
synchronize()
memory = accelerator_memory()
print(f"accelerator memory after a forward pass: {memory}")
if on_accelerator:
    assert memory["allocated"] >= param_bytes
    assert memory["peak"] >= memory["allocated"]
else:
    assert memory is None

# %%
# Mixed precision with autocast
# -----------------------------
# ``torch.autocast`` takes the device *type* as a string, so ``device.type`` works everywhere.
# bfloat16 is supported by autocast on the CPU as well as on current GPUs, and it keeps the
# exponent range of float32, so it needs no gradient scaling. Inside the context, eligible
# operations such as ``nn.Linear`` compute in bfloat16. We compare the result with the float32
# reference computed above.

amp_dtype = torch.bfloat16
assert torch.amp.is_autocast_available(device.type)
with torch.no_grad(), torch.autocast(device_type=device.type, dtype=amp_dtype):
    mixed = model(batch)

relative_error = ((mixed.float() - reference).norm() / reference.norm()).item()
print(f"autocast output dtype: {mixed.dtype}, relative error vs float32: {relative_error:.2e}")
assert mixed.dtype == amp_dtype
assert relative_error < 2e-2
torch.testing.assert_close(mixed.float(), reference, rtol=5e-2, atol=5e-2)

# %%
# The output is in bfloat16, and its relative error against the float32 result is small: of
# the order of bfloat16's precision (8 bits of mantissa), as expected for a short network.
#
# Timing on any device
# --------------------
# A correct timer must warm up first, and must wait for the device before reading the clock,
# because accelerators run asynchronously. ``time.perf_counter`` is a monotonic, high-resolution
# clock, and the median of several calls is robust against occasional interruptions.


def time_call(fn, *args, warmup=3, repeats=25):
    """Median seconds per call of ``fn(*args)``, correct on CPU and accelerators."""
    for _ in range(warmup):
        fn(*args)
    synchronize()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        synchronize()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def forward_fp32(x):
    with torch.no_grad():
        return model(x)


def forward_autocast(x):
    with torch.no_grad(), torch.autocast(device_type=device.type, dtype=amp_dtype):
        return model(x)


# %%
# On a shared machine, other programs can slow down whole stretches of time, long enough to
# spoil a measurement of one variant but not of the other. So we alternate between the variants
# in a few short rounds and keep the best result of each: the best median of our helper, and
# the fastest block of ``torch.utils.benchmark.Timer``, which we use as a sanity check of the
# helper (it synchronizes on its own). The work is the same every time, so noise can only make
# it look slower, never faster.

timer = Timer(
    "fn(x)", globals={"fn": forward_fp32, "x": batch}, num_threads=torch.get_num_threads()
)
rounds = {"float32": [], "autocast": [], "Timer, float32": []}
for _ in range(5):
    rounds["float32"].append(time_call(forward_fp32, batch, repeats=10))
    rounds["autocast"].append(time_call(forward_autocast, batch, repeats=10))
    rounds["Timer, float32"].append(min(timer.blocked_autorange(min_run_time=0.05).times))
best = {name: min(values) for name, values in rounds.items()}
for name, seconds in best.items():
    print(f"{name:>15} forward: {seconds * 1e6:9.1f} us")

fp32_s, amp_s, benchmark_s = best["float32"], best["autocast"], best["Timer, float32"]
print(f"Timer / our helper, same work: {benchmark_s / fp32_s:.2f}")
assert fp32_s > 0 and amp_s > 0
assert 0.1 < benchmark_s / fp32_s < 10

# %%
# The helper and ``Timer`` agree, within the noise of the machine. Whether bfloat16 is faster
# than float32 depends on the hardware: GPUs with tensor cores and CPUs with native bfloat16
# instructions gain, other CPUs may lose time converting. The numbers above are the ones
# measured on the machine that ran this page.

# %%
# Conclusion
# ----------
# Pick the device once with ``torch.accelerator`` and fall back to the CPU, create or move
# everything with ``device=`` and ``.to(device)``, and guard the few calls that only make sense
# on an accelerator: synchronization, pinned memory and memory statistics. ``torch.autocast``
# and ``torch.manual_seed`` already work with any device type. The same file then runs, and
# measures correctly, wherever it is executed.
#
# Further reading
# ---------------
# * `torch.accelerator <https://docs.pytorch.org/docs/stable/accelerator.html>`__
# * `torch.autocast <https://docs.pytorch.org/docs/stable/amp.html>`__
# * `torch.manual_seed <https://docs.pytorch.org/docs/stable/generated/torch.manual_seed.html>`__
# * `torch.Tensor.to <https://docs.pytorch.org/docs/stable/generated/torch.Tensor.to.html>`__
# * `torch.Tensor.pin_memory
#   <https://docs.pytorch.org/docs/stable/generated/torch.Tensor.pin_memory.html>`__
# * `torch.utils.benchmark <https://docs.pytorch.org/docs/stable/benchmark_utils.html>`__
#
