"""Imported once by the parent that every recipe process is forked from.

:mod:`recipes_site.executor` names this module (or :mod:`.warm_compile`) in
``multiprocessing``'s ``set_forkserver_preload``: the fork server imports it
before it forks anything, so each recipe process starts with torch, its
compile stack, matplotlib and sphinx-gallery already imported, shared
copy-on-write, instead of paying seconds to import them again.

The parent never initialises CUDA (a process that did cannot fork children
that use it): ``PYTORCH_NVML_BASED_CUDA_CHECK`` makes ``torch.cuda.is_available``
ask the driver through NVML without creating a CUDA context, and
:func:`check` verifies that nothing did.
"""

from __future__ import annotations

import gc
import os
import sys
import warnings

os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")


def _import() -> None:
    # Import-time warnings that PyTorch raises about itself are not a recipe's
    # doing, so they are silenced here rather than charged to the first recipe.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import matplotlib

        matplotlib.use("agg")
        import matplotlib.animation  # noqa: F401
        import matplotlib.pyplot  # noqa: F401
        import PIL.Image  # noqa: F401

        # What a recipe process unpickles and runs: the gallery configuration
        # refers to sphinx_gallery.gen_gallery (which imports Sphinx and
        # Pygments), and generating a page uses the rest.
        import sphinx_gallery.gen_gallery  # noqa: F401
        import sphinx_gallery.gen_rst  # noqa: F401
        import sphinx_gallery.notebook  # noqa: F401
        import torch
        import torch._dynamo  # noqa: F401
        import torch._inductor.compile_fx  # noqa: F401
        import torch._inductor.config as inductor_config
        import torch.utils.benchmark  # noqa: F401

    # One compile worker: a worker pool would be another process that imports
    # torch, per recipe, and a pool in this parent would not survive a fork.
    # Nothing here calls into torch beyond its imports: even a reset of the
    # compiler asks whether CUDA is available, which can load the driver.
    inductor_config.compile_threads = 1


def _exercise() -> None:
    """Once, what every recipe process does around its recipe, so that each child
    inherits the result instead of paying for it again: the first drawing of a
    card thumbnail (fonts found and loaded, the PNG writer imported), the first
    scaling of an image, the parse of a recipe (sphinx-gallery's and our regular
    expressions compiled) and the first reading of memory. None of it is state a
    recipe could see: caches only."""
    import tempfile
    from pathlib import Path

    import matplotlib.pyplot as plt
    from sphinx_gallery.gen_rst import extract_intro_and_title
    from sphinx_gallery.utils import scale_image

    from . import memory, sourcekey, thumbs

    text = '"""\nWarm up\n=======\n\nA recipe.\n"""\n\nprint(1)\n'
    extract_intro_and_title("warm_up.py", sourcekey.blocks(text)[0].content)
    sourcekey.code_key(text)
    with tempfile.TemporaryDirectory(prefix="recipes-warm-") as tmp:
        folder = Path(tmp)
        thumb = folder / "thumb.png"
        thumbs.draw(thumb, "Warm up", ["print(1)"], "recipes", "warm-up")
        scale_image(str(thumb), str(folder / "scaled.png"), 100, 100)
    plt.rcdefaults()
    memory.used(os.getpid())


def driver_initialised(maps: str) -> bool:
    """Whether a process's memory map (``/proc/<pid>/maps``) shows a CUDA context: the
    driver maps its device files (``/dev/nvidiactl``, ``/dev/nvidia0``) once it is
    initialised. Importing torch maps ``libcuda.so`` and NVML opens the device files,
    but neither maps them (seen on an H200 with torch 2.11 and driver 580)."""
    fields = (line.split(maxsplit=5) for line in maps.splitlines())
    return any(len(f) == 6 and f[5].strip().startswith("/dev/nvidia") for f in fields)


def check(maps_file: str = "/proc/self/maps") -> None:
    """Fail if this process set up CUDA: by torch's own flag, or, where torch does not
    know (a driver query that fell back to cudaGetDeviceCount), by the driver's
    device files mapped into it."""
    torch = sys.modules["torch"]
    if torch.cuda.is_initialized():
        raise RuntimeError("the warm parent initialised CUDA; its children could not use it")
    try:
        maps = open(maps_file).read()  # noqa: SIM115 - Linux only; elsewhere torch's flag
    except OSError:
        return
    if driver_initialised(maps):
        raise RuntimeError(
            "the warm parent initialised the CUDA driver (its device files are mapped into "
            "it); its children could not use CUDA"
        )


def freeze() -> None:
    """Move what imports created out of the collector's sight: a child's
    collections then walk only what its recipe allocated, and do not touch
    (and so copy) the parent's pages."""
    gc.collect()
    gc.freeze()


def warm() -> None:
    _import()
    try:
        _exercise()
    except Exception as exc:  # an optimisation only: recipes still run without it
        print(f"[recipes] warm-up skipped: {exc!r}", file=sys.stderr)
    check()
    freeze()


warm()
