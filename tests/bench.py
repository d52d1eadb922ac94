"""Build-speed figures for this site, each measured in one run on this machine.

Run with ``make bench``. It builds copies of the site in a temporary folder
(the working tree's own build is untouched) and prints:

* the cold build (empty torch.compile cache) against plain sphinx-gallery
  building the same recipes in one process with no isolation (goal <= 1.1x);
* the no-op rebuild and a one-edit rebuild (goal: nothing, then exactly 1);
* isolation per recipe (fork + supervision), a process per recipe against all
  recipes in one process forked from the same warm parent, for trivial
  recipes and for recipes that call torch.compile (goal <= 0.05 s);
* JOBS=2 against JOBS=1 on this site's recipes (goal >= 1.3x) and on eight
  CPU-bound recipes (goal >= 1.7x);
* the slowest recipe against the site's budget of 30 s per recipe;
* shard balance for N=2 and N=4: longest shard / (total / N) (goal <= 1.15).

These are figures, not tests: nothing here passes or fails.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conftest import REPO, build_env, make_project, sphinx_build
from recipes_site import meta, select

BUDGET = 30.0


def build(root: Path, *options: str, cache: Path, conf: Path | None = None):
    """(wall seconds, {recipe: row}, seconds executing recipes, warm parent's start excluded)."""
    env = {"TORCHINDUCTOR_CACHE_DIR": str(cache)}
    start = time.perf_counter()
    proc = sphinx_build(root, *options, env=env, timeout=3600, conf=conf)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"build of {root} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    timings = root / "_build/html/recipes/timings.json"
    rows = {r["recipe"]: r for r in json.loads(timings.read_text())["recipes"]} if (
        timings.exists()
    ) else {}  # fmt: skip
    m = re.search(
        r"\[recipes\] executed \d+ recipes .* in ([\d.]+) s, ([\d.]+) s of it", proc.stdout
    )
    return wall, rows, (float(m[1]) - float(m[2])) if m else 0.0


def ran(rows: dict) -> list[str]:
    return sorted(n for n, r in rows.items() if r["ran_in_this_build"])


def wipe(root: Path) -> None:
    for name in ("docs/recipes", "_build", ".cache"):
        shutil.rmtree(root / name, ignore_errors=True)


PLAIN_CONF = r"""
project = "plain"
extensions = ["sphinx_gallery.gen_gallery"]
html_theme = "pydata_sphinx_theme"
sphinx_gallery_conf = {"examples_dirs": "../recipes", "gallery_dirs": "recipes",
                       "filename_pattern": r"\.py$", "only_warn_on_example_error": True}
"""


def plain_project(root: Path) -> Path:
    """The same recipes under plain sphinx-gallery: one process, nothing around them."""
    (root / "docs").mkdir(parents=True)
    shutil.copytree(REPO / "recipes", root / "recipes")
    (root / "docs" / "index.rst").write_text("Plain\n=====\n\n.. toctree::\n\n   recipes/index\n")
    (root / "plain").mkdir()
    (root / "plain" / "conf.py").write_text(PLAIN_CONF)
    return root / "plain"


def tiny(n: int, compiled: bool) -> dict:
    body = (
        "import torch\n\n@torch.compile\ndef f(x):\n    return (x.sin() + {i}) * 2\n\n"
        "print(float(f(torch.rand(64)).sum()) > 0)\n"
        if compiled
        else "import torch\n\nx = torch.rand(64, 64)\nprint(float((x @ x).sum()) > {i})\n"
    )
    return {
        f"tiny_{i:02d}.py": f'"""\nTiny {i}\n=======\n\nA small recipe.\n"""\n\n' + body.format(i=i)
        for i in range(n)
    }


class Report:
    def __init__(self):
        self.lines = []

    def __call__(self, label: str, value: str, goal: str = "") -> None:
        line = f"{label:<52} {value:>24}  {goal}"
        self.lines.append(line)
        print(line, flush=True)


def cold_against_plain(tmp: Path, report: Report) -> dict:
    site = make_project(tmp / "site", REPO / "recipes")
    cold, rows, _ = build(site, cache=tmp / "cache-site")
    plain_root = tmp / "plain"
    plain_wall, _, _ = build(plain_root, cache=tmp / "cache-plain", conf=plain_project(plain_root))
    report("cold build, empty compile cache", f"{cold:.1f} s")
    report("plain sphinx-gallery, same recipes, one process", f"{plain_wall:.1f} s")
    report("  cold build / plain sphinx-gallery", f"{cold / plain_wall:.2f}x", "goal <= 1.1x")
    slowest = max(rows.values(), key=lambda r: r["seconds"] or 0)
    report(
        "slowest recipe in the cold build",
        f"{slowest['seconds']:.1f} s ({slowest['recipe']})",
        f"budget {BUDGET:g} s",
    )
    noop, rows, _ = build(site, cache=tmp / "cache-site")
    report("no-op rebuild", f"{noop:.1f} s, {len(ran(rows))} executed", "goal: 0")
    seed = site / "recipes" / "torch_compile_torch_function_modes.py"
    with seed.open("a") as f:
        f.write("\nprint('an edit')\n")  # code: a comment alone executes nothing
    edit, rows, _ = build(site, cache=tmp / "cache-site")
    report("one-edit rebuild", f"{edit:.1f} s, {len(ran(rows))} executed", "goal: exactly 1")
    return {"site": site, "durations": {n: r["seconds"] for n, r in rows.items()}}


def isolation(tmp: Path, report: Report, compiled: bool) -> None:
    n = 10
    root = make_project(tmp / f"isolation-{compiled}", recipes=tiny(n, compiled))
    cache = tmp / f"cache-isolation-{compiled}"
    build(root, cache=cache)  # fills the compile cache: both sides below find it warm
    walls = {True: [], False: []}
    for _ in range(3):  # the best of three of each, alternating
        for isolate in (True, False):
            wipe(root)
            walls[isolate].append(
                build(root, "-D", f"recipes_isolate={int(isolate)}", cache=cache)[2]
            )
    walls = {isolate: min(times) for isolate, times in walls.items()}
    kind = "torch.compile" if compiled else "trivial"
    report(
        f"{n} {kind} recipes: a process each / one process",
        f"{walls[True]:.2f} s / {walls[False]:.2f} s",
    )
    per = (walls[True] - walls[False]) / n
    report(f"  isolation per {kind} recipe", f"{per:.3f} s", "goal <= 0.05 s")


def _jobs_pair(root: Path, cache: Path) -> dict:
    timing = {}
    for count in (1, 2):
        wipe(root)
        timing[count] = build(root, "-D", f"recipes_jobs={count}", cache=cache)
    return timing


def jobs(tmp: Path, report: Report, site: Path) -> None:
    cache = tmp / "cache-site"
    timing = _jobs_pair(site, cache)
    (one, _, x1), (two, _, x2) = timing[1], timing[2]
    report("this site, JOBS=1 vs JOBS=2, whole build", f"{one:.1f} s vs {two:.1f} s")
    report("  executing its recipes", f"{x1:.1f} s vs {x2:.1f} s")
    report("  JOBS=2 speedup, executing all recipes", f"{x1 / x2:.2f}x", "goal >= 1.3x")
    safe = make_project(tmp / "parallel-safe")
    shutil.rmtree(safe / "recipes")
    shutil.copytree(
        REPO / "recipes",
        safe / "recipes",
        ignore=lambda d, names: [
            n for n in names if n.endswith(".py") and not meta.read_recipe(Path(d) / n).parallel
        ],
    )
    count = len(meta.find_recipes(safe / "recipes"))
    timing = _jobs_pair(safe, cache)
    (_, _, x1), (_, _, x2) = timing[1], timing[2]
    report(f"its {count} recipes that may run side by side", f"{x1:.1f} s vs {x2:.1f} s")
    report("  JOBS=2 speedup, executing them", f"{x1 / x2:.2f}x", "goal >= 1.3x")
    heavy = {
        f"heavy_{i}.py": f'"""\nHeavy {i}\n=======\n\nCPU-bound work.\n"""\n\n'
        f"import time\n\nstart = time.perf_counter()\ntotal = 0\n"
        f"while time.perf_counter() - start < 4.0:\n    total += sum(range(1000))\n"
        f"print(total > 0)\n"
        for i in range(8)
    }
    hv = make_project(tmp / "heavy", recipes=heavy)
    timing = _jobs_pair(hv, cache)
    (_, _, x1), (_, _, x2) = timing[1], timing[2]
    report("8 CPU-bound recipes of 4 s, JOBS=1 vs JOBS=2", f"{x1:.1f} s vs {x2:.1f} s")
    report("  JOBS=2 speedup, executing them", f"{x1 / x2:.2f}x", "goal >= 1.7x")


def shards(report: Report, durations: dict) -> None:
    durations = {k: v for k, v in durations.items() if v}
    total = sum(durations.values())
    for count in (2, 4):
        split = select.assign_shards(durations, count)
        longest = max(sum(durations[x] for x in s) for s in split)
        # No split beats the longest recipe alone on a shard.
        bound = max(total / count, max(durations.values())) / (total / count)
        report(
            f"shard balance N={count} (best possible {bound:.3f})",
            f"{longest / (total / count):.3f}",
            "goal <= 1.15 (longest / mean)",
        )


def open_files(tmp: Path, report: Report, count: int = 300, limit: int = 256) -> None:
    """A long build under a low limit of open files (macOS's default is 256): a build
    that leaked a handle per recipe would die before its summary."""
    recipes = {f"r{i:03d}.py": f'"""\nRecipe {i:03d}\n===========\n\nA.\n"""\n\nprint({i})\n'
               for i in range(count)}  # fmt: skip
    root = make_project(tmp / "many", recipes=recipes)
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-c", str(root),
           str(root / "docs"), str(root / "_build" / "html")]  # fmt: skip
    script = f"ulimit -n {limit} && exec " + " ".join(f"'{c}'" for c in cmd)
    start = time.perf_counter()
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=build_env())
    wall = time.perf_counter() - start
    m = re.search(r"open files before and after: (\d+), (\d+)", done.stdout)
    files = f"open files {m[1]} -> {m[2]}" if m else "no open-files line"
    verdict = "passed" if done.returncode == 0 else f"FAILED ({done.stderr.strip()[-300:]})"
    report(f"{count} trivial recipes under ulimit -n {limit}", f"{verdict}, {wall:.0f} s, {files}",
           "goal: passes, files unchanged")  # fmt: skip


def main() -> None:
    report = Report()
    tmp = Path(tempfile.mkdtemp(prefix="recipes-bench-"))
    try:
        if sys.argv[1:] == ["open-files"]:  # this figure alone
            open_files(tmp, report)
            return
        if sys.argv[1:] == ["isolation"]:  # these figures alone
            isolation(tmp, report, compiled=False)
            isolation(tmp, report, compiled=True)
            return
        site = cold_against_plain(tmp, report)
        isolation(tmp, report, compiled=False)
        isolation(tmp, report, compiled=True)
        jobs(tmp, report, site["site"])
        shards(report, site["durations"])
        open_files(tmp, report)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n".join(["", "summary:"] + report.lines))


if __name__ == "__main__":
    main()
