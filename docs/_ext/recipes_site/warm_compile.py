"""The warm parent, plus one small ``torch.compile`` done once before any fork.

Preloaded instead of :mod:`.warm` when a recipe to execute uses the compiler.
Where CUDA is available it compiles nothing: on an H200, compiling even a CPU
function initialised CUDA in the parent (the compiler saves and restores the
CUDA random state when CUDA is available), and a process that did cannot fork
children that use CUDA. There the children pay for their first compile.
The first compile in a process pays for set-up that later ones do not (lazy
imports of the lowering and code-generation modules, the C++ toolchain
probe, loading the compile cache); done here, every recipe process inherits
it and pays only for its own graphs. The result is thrown away and the
compiler reset, so recipes start from the state a fresh import gives.
"""

from __future__ import annotations

import sys

from . import warm


def step(x, w):
    """Compiled here once; the scout (child.scout) compiles it again: a cache hit."""
    import torch

    return torch.nn.functional.gelu(x @ w).sum(dim=-1) + x.sin().mean()


def _compile_once() -> bool:
    import torch
    from torch._dynamo.utils import counters

    if torch.cuda.is_available():  # asks NVML (see warm.py): no CUDA context yet
        return False

    class Block(torch.nn.Module):  # what recipes compile most: a module, tensor methods
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(8, 8)

        def forward(self, x):
            return (self.linear(x).relu().cos() + 3) * 2

    torch.compile(step)(torch.rand(8, 8), torch.rand(8, 8))
    with torch.no_grad():
        float(torch.compile(Block())(torch.rand(4, 8)).sum())
    torch.compiler.reset()
    counters.clear()
    torch.manual_seed(0)
    return True


COMPILED = False  # whether it compiled (the scout then learns what a compile writes)
try:
    COMPILED = _compile_once()
except Exception as exc:  # an optimisation only: recipes still run without it
    print(f"[recipes] compile warm-up skipped: {exc!r}", file=sys.stderr)
warm.check()
warm.freeze()
