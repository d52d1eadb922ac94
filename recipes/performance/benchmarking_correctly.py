"""
Benchmarking PyTorch code correctly with torch.utils.benchmark
==============================================================
**Author:** PyTorch Recipes maintainers

A timing loop around a PyTorch call can report numbers that are off by orders of magnitude: the
first call pays for compilation and lazy initialization, accelerators run asynchronously, and the
number of threads changes the result. This recipe shows these pitfalls with real measurements and
then uses torch.utils.benchmark to take measurements that can be trusted and compared.

.. rubric:: What you will learn

* Why a plain ``time.time()`` loop misleads, and what warm-up and synchronization fix
* The difference between ``Timer.timeit`` and ``Timer.blocked_autorange``
* How the ``num_threads`` argument changes results, and how it interacts with ``torch.compile``
* How to collect several measurements into one table with ``torch.utils.benchmark.Compare``

.. rubric:: Prerequisites

* PyTorch 2.13 or later
* Runs on CPU or on an accelerator such as CUDA
"""

# %%
# Setup
# -----
# We pick the device once and write a small helper that waits for queued accelerator work. On
# CPU every operation has finished when the call returns, so the helper does nothing there.

# sphinx_gallery_tags = ["benchmarking", "performance"]
# sphinx_gallery_parallel = False
import statistics
import time

import torch
from torch._dynamo.utils import counters
from torch.utils.benchmark import Compare, Timer

torch.manual_seed(0)
device = (
    torch.accelerator.current_accelerator()
    if torch.accelerator.is_available()
    else torch.device("cpu")
)
print(f"device: {device}, CPU threads: {torch.get_num_threads()}")


def wait_for_device():
    if device.type != "cpu":
        torch.accelerator.synchronize()


# %%
# The function we want to time is a handful of elementwise operations on a small tensor,
# compiled with ``torch.compile``. ``backend="aot_eager"`` keeps compilation short on CPU; the
# pitfalls below are the same with the default inductor backend, only with a longer first call.

scale = torch.rand(4096, device=device) + 0.5
x = torch.randn(4096, device=device)


def block(x):
    return torch.nn.functional.gelu(x * scale) + torch.sin(x)


compiled_block = torch.compile(block, backend="aot_eager")

# %%
# Pitfall 1: the first call is not like the others
# ------------------------------------------------
# A typical first attempt starts a clock, runs the function a few times and divides. Here we
# run exactly that loop, but also keep the duration of every single call so we can see what
# the average hides. ``time.perf_counter`` is used for the per-call clock. ``time.time``
# follows the wall clock, which may be adjusted while the program runs (for example by time
# synchronization), and its resolution is coarse on some systems. ``time.perf_counter`` is
# monotonic and uses the finest clock available. ``time.get_clock_info`` reports these
# properties for the machine at hand:

for name in ("time", "perf_counter"):
    info = time.get_clock_info(name)
    print(
        f"time.{name:<13} resolution {info.resolution:.1e} s, "
        f"monotonic: {info.monotonic}, adjustable: {info.adjustable}"
    )
assert time.get_clock_info("perf_counter").monotonic
assert not time.get_clock_info("perf_counter").adjustable

per_call = []
start = time.time()
for _ in range(20):
    t0 = time.perf_counter()
    compiled_block(x)
    wait_for_device()
    per_call.append(time.perf_counter() - t0)
naive_mean = (time.time() - start) / 20

first_call = per_call[0]
later_mean = statistics.mean(per_call[1:])
steady = statistics.median(per_call[1:])
print(f"naive mean over 20 calls:    {naive_mean * 1e6:10.1f} us")
print(f"first call alone:            {first_call * 1e6:10.1f} us")
print(f"mean of the 19 later ones:   {later_mean * 1e6:10.1f} us")
print(f"median of the 19 later ones: {steady * 1e6:10.1f} us")

assert first_call > 3 * steady, "the first call includes compilation"
assert naive_mean > later_mean, "the first call pulls the naive mean up"

# %%
# The first call traced and compiled the function, so it took far longer than the others, and
# the naive mean is inflated by it. The same happens without ``torch.compile``, to a lesser
# degree: the first use of an operator may load libraries, start thread pools or, on an
# accelerator, create the device context and library handles. The cure is to warm up: call the
# function a few times before starting the clock.
#
# Pitfall 2: accelerators are asynchronous
# ----------------------------------------
# On CUDA and similar devices, a PyTorch call returns as soon as the work is queued. A loop
# that reads the clock without waiting measures how fast kernels are *launched*, not how fast
# they run. That is why the loop above calls ``wait_for_device()`` (which uses
# ``torch.accelerator.synchronize()``) before reading the clock. ``torch.utils.benchmark``
# does this for you.
#
# timeit versus blocked_autorange
# -------------------------------
# ``torch.utils.benchmark.Timer`` takes a statement and the globals it needs, and returns a
# ``Measurement``. There are two main ways to run it:
#
# * ``timeit(number)`` runs the statement ``number`` times as one block and reports the mean.
#   You get one number and no idea how stable it is.
# * ``blocked_autorange(min_run_time)`` first picks a block size large enough that the
#   clock overhead is negligible, then runs blocks until ``min_run_time`` seconds have passed.
#   Each block is one sample, so you get a median and an interquartile range (IQR).

threads = torch.get_num_threads()
timer = Timer(
    "fn(x)",
    globals={"fn": compiled_block, "x": x},
    num_threads=threads,
    label="block",
    description="compiled",
)
m_timeit = timer.timeit(number=100)
m_auto = timer.blocked_autorange(min_run_time=0.3)
print(m_timeit)
print(m_auto)

assert len(m_timeit.times) == 1 and m_timeit.number_per_run == 100
assert len(m_auto.times) >= 1 and m_auto.number_per_run >= 1
assert m_auto.median > 0 and m_auto.iqr >= 0

# %%
# The first printout is a single measurement of 100 runs. The second one reports how many
# blocks were run, how many calls each block contained, and the spread between them. A large
# IQR relative to the median is a sign that the machine was busy during the measurement;
# ``Measurement.has_warnings`` flags this case. (If the machine stalls so badly that a single
# block outlasts ``min_run_time``, only that one block is reported, and there is no spread.)
print(
    f"blocks: {len(m_auto.times)}, calls per block: {m_auto.number_per_run}, "
    f"IQR/median: {m_auto.iqr / m_auto.median:.1%}, warnings: {m_auto.has_warnings}"
)

# %%
# Pitfall 3: the number of threads
# --------------------------------
# ``Timer`` runs with **one** thread unless you pass ``num_threads``, which is a good default
# for comparable numbers but not what your program uses (this process uses all the CPU threads
# printed at the top). The thread count is also part of the global state that compiled code is
# guarded on. If you time a compiled function with a different thread count from the one it
# was warmed up with, the timer triggers a recompilation, and that compile lands inside the
# measurement. We check this by counting compiled graphs.

graphs_before = counters["stats"]["unique_graphs"]
Timer("fn(x)", globals={"fn": compiled_block, "x": x}).timeit(number=10)
graphs_default = counters["stats"]["unique_graphs"]
Timer("fn(x)", globals={"fn": compiled_block, "x": x}, num_threads=threads).timeit(number=10)
graphs_matching = counters["stats"]["unique_graphs"]
print(f"new graphs with the default num_threads=1:      {graphs_default - graphs_before}")
print(f"new graphs with num_threads={threads} (as warmed up): {graphs_matching - graphs_default}")

if threads > 1:
    assert graphs_default - graphs_before == 1, "num_threads=1 forces a recompilation"
assert graphs_matching == graphs_default, "a matching thread count reuses the compiled code"

# %%
# With one thread, the compiled function was compiled a second time, inside the timer; with
# the thread count it was warmed up with, the existing compiled code was reused. Keep this in
# mind when a first timing of a compiled function looks suspiciously slow, and pass
# ``num_threads=torch.get_num_threads()`` when you want to measure what your program does.
#
# Comparing many variants with Compare
# ------------------------------------
# To compare variants, give each measurement a ``label`` (the table title), a ``sub_label``
# (the row) and a ``description`` (the column). ``Compare`` groups measurements by those
# fields and, automatically, by thread count. Here we time a matrix product for three sizes,
# two dtypes, and one or two threads.

results = []
for n in (64, 256, 512):
    for dtype in (torch.float32, torch.float64):
        a = torch.randn(n, n, device=device, dtype=dtype)
        for num_threads in (1, 2):
            results.append(
                Timer(
                    "a @ a",
                    globals={"a": a},
                    num_threads=num_threads,
                    label="matrix product a @ a",
                    sub_label=f"{n}x{n}",
                    description=str(dtype).removeprefix("torch."),
                ).blocked_autorange(min_run_time=0.1)
            )

compare = Compare(results)
compare.trim_significant_figures()
compare.highlight_warnings()
compare.print()

table = str(compare)
for n in (64, 256, 512):
    assert f"{n}x{n}" in table
assert "float32" in table and "float64" in table
assert "1 threads" in table and "2 threads" in table
assert all(m.median > 0 and len(m.times) >= 1 for m in results)

# %%
# Read the table block by block: each block is one thread count, each row a size and each
# column a dtype (float64 moves twice as many bytes as float32). Comparing the blocks shows
# whether a second thread helps; the ratios printed below make this explicit. A very small
# product is too short to be worth splitting between threads, and on a machine where other
# programs compete for the cores, extra threads can even slow things down. That is why such
# measurements should be repeated on the machine that matters. Entries whose spread was large
# are marked with ``(! XX%)`` by ``highlight_warnings``.

one_thread = {
    m.task_spec.sub_label: m.median
    for m in results
    if m.task_spec.description == "float32" and m.task_spec.num_threads == 1
}
for m in results:
    if m.task_spec.description == "float32" and m.task_spec.num_threads == 2:
        size = m.task_spec.sub_label
        print(
            f"float32 {size}: time with 1 thread / time with 2 threads = "
            f"{one_thread[size] / m.median:.2f}"
        )

# %%
# Conclusion
# ----------
# Reliable timings need warm-up, synchronization with the device and a controlled thread
# count. ``torch.utils.benchmark.Timer`` takes care of synchronization and threads, reports
# statistics when you use ``blocked_autorange``, and ``Compare`` turns many measurements into
# a single readable table. Keep assertions on timings loose, and prefer ratios measured in the
# same run over absolute numbers.
#
# Further reading
# ---------------
# * `torch.utils.benchmark <https://docs.pytorch.org/docs/stable/benchmark_utils.html>`__
# * `torch.compile <https://docs.pytorch.org/docs/stable/generated/torch.compile.html>`__
# * `torch.accelerator.synchronize
#   <https://docs.pytorch.org/docs/stable/generated/torch.accelerator.synchronize.html>`__
# * `torch.get_num_threads
#   <https://docs.pytorch.org/docs/stable/generated/torch.get_num_threads.html>`__
# * `time.perf_counter <https://docs.python.org/3/library/time.html#time.perf_counter>`__
#
