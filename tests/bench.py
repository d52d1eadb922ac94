"""Build-speed figures for this site, measured in one run on this machine.

Run with ``make bench``. It builds copies of the site in a temporary folder
(the working tree's own build is untouched) and prints:

* cold build wall time (empty torch.compile cache) and the same with a warm cache,
* no-op rebuild wall time and its ratio to the cold build (goal <= 5%),
* one-edit rebuild wall time and the recipes it executed (goal: exactly 1),
* JOBS=2 speedup over JOBS=1 on the recipes that allow parallel runs (goal >= 1.6x),
* isolation overhead per recipe, N tiny recipes with and without it (goal <= 0.3 s),
* shard balance for N=2 and N=4: longest shard / (total / N) (goal <= 1.15),
* build overhead: (wall - sum of recipe run times) / wall (goal <= 10%).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from conftest import REPO, make_project, sphinx_build
from recipes_site import meta, select


def build(root: Path, *options: str, cache: Path) -> tuple[float, dict]:
    start = time.perf_counter()
    proc = sphinx_build(root, *options, env={"TORCHINDUCTOR_CACHE_DIR": str(cache)}, timeout=3600)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"build of {root} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    data = json.loads((root / "_build/html/recipes/timings.json").read_text())
    return wall, {r["recipe"]: r for r in data["recipes"]}


def ran(rows: dict) -> list[str]:
    return sorted(n for n, r in rows.items() if r["ran_in_this_build"])


def wipe_outputs(root: Path) -> None:
    shutil.rmtree(root / "docs" / "recipes", ignore_errors=True)
    shutil.rmtree(root / "_build", ignore_errors=True)


def copy_recipes(dest: Path, keep) -> None:
    src = REPO / "recipes"
    shutil.copytree(
        src,
        dest,
        ignore=lambda d, names: [n for n in names if n.endswith(".py") and not keep(Path(d) / n)],
    )


def main() -> None:
    out = []

    def report(label: str, value: str, goal: str = "") -> None:
        line = f"{label:<46} {value:>22}  {goal}"
        out.append(line)
        print(line, flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="recipes-bench-"))
    try:
        cache = tmp / "compile-cache"
        site = make_project(tmp / "site", REPO / "recipes")
        n = len(meta.find_recipes(site / "recipes"))

        cold, rows = build(site, cache=cache)
        executed = ran(rows)
        recipe_sum = sum(rows[r]["seconds"] for r in executed)
        report("recipes", f"{n} ({len(executed)} executed)")
        report("cold build, empty compile cache", f"{cold:.1f} s")
        report("  sum of recipe run times", f"{recipe_sum:.1f} s")
        report(
            "  build overhead (wall - recipes) / wall",
            f"{(cold - recipe_sum) / cold:.1%}",
            "goal <= 10%",
        )

        noop, rows = build(site, cache=cache)
        report("no-op rebuild", f"{noop:.1f} s, {len(ran(rows))} executed")
        report("  no-op / cold", f"{noop / cold:.1%}", "goal <= 5%")

        seed = site / "recipes" / "torch_compile_torch_function_modes.py"
        with seed.open("a") as f:
            f.write("# an edit\n")
        edit, rows = build(site, cache=cache)
        report(
            "one-edit rebuild", f"{edit:.1f} s, executed {', '.join(ran(rows))}", "goal: exactly 1"
        )

        wipe_outputs(site)
        warm, rows = build(site, cache=cache)
        warm_sum = sum(r["seconds"] for r in rows.values() if r["ran_in_this_build"])
        report("cold build, warm compile cache", f"{warm:.1f} s")
        report("  gain from the compile cache", f"{cold / warm:.2f}x ({cold - warm:.0f} s)")
        report(
            "  build overhead (wall - recipes) / wall",
            f"{(warm - warm_sum) / warm:.1%}",
            "goal <= 10%",
        )

        par = make_project(tmp / "parallel")
        shutil.rmtree(par / "recipes")
        copy_recipes(par / "recipes", lambda p: meta.read_recipe(p).parallel)
        m = len(meta.find_recipes(par / "recipes"))
        one, par_rows = build(par, "-D", "recipes_jobs=1", cache=cache)
        work = sum(r["seconds"] for r in par_rows.values() if r["ran_in_this_build"])
        wipe_outputs(par)
        two, _ = build(par, "-D", "recipes_jobs=2", cache=cache)
        report(f"JOBS=1 vs JOBS=2 on {m} parallel-safe recipes", f"{one:.1f} s vs {two:.1f} s")
        report("  of which recipe run time (JOBS=1)", f"{work:.1f} s")
        report("  JOBS=2 speedup", f"{one / two:.2f}x", "goal >= 1.6x")

        # The same comparison where the recipes' own work dominates the build:
        # 8 recipes that each compute for about 4 s on one core.
        heavy = {
            f"heavy_{i}.py": f'"""\nHeavy {i}\n=======\n\nCPU-bound work.\n"""\n\n'
            f"import time\n\nstart = time.perf_counter()\ntotal = 0\n"
            f"while time.perf_counter() - start < 4.0:\n    total += sum(range(1000))\n"
            f"print(total > 0)\n"
            for i in range(8)
        }
        hv = make_project(tmp / "heavy", recipes=heavy)
        one, _ = build(hv, "-D", "recipes_jobs=1", cache=cache)
        wipe_outputs(hv)
        two, _ = build(hv, "-D", "recipes_jobs=2", cache=cache)
        report("JOBS=1 vs JOBS=2, 8 CPU-bound recipes of 4 s", f"{one:.1f} s vs {two:.1f} s")
        report("  JOBS=2 speedup", f"{one / two:.2f}x", "goal >= 1.6x")

        tiny = {
            f"tiny_{i:02d}.py": f'"""\nTiny {i}\n=======\n\nA small recipe.\n"""\n\n'
            f"import torch\n\nx = torch.rand(64, 64)\nprint(float((x @ x).sum()) > 0)\n"
            for i in range(10)
        }
        iso = make_project(tmp / "isolation", recipes=tiny)
        walls = {True: [], False: []}
        for _ in range(2):
            for isolate in (True, False):
                wipe_outputs(iso)
                wall, _ = build(iso, "-D", f"recipes_isolate={int(isolate)}", cache=cache)
                walls[isolate].append(wall)
        per = (min(walls[True]) - min(walls[False])) / len(tiny)
        report(
            f"isolation, {len(tiny)} tiny recipes",
            f"{min(walls[True]):.1f} s vs {min(walls[False]):.1f} s without",
        )
        report("  isolation overhead per recipe", f"{per:.3f} s", "goal <= 0.3 s")

        durations = {name: r["seconds"] for name, r in rows.items() if r["status"] == "executed"}
        total = sum(durations.values())
        for count in (2, 4):
            shards = select.assign_shards(durations, count)
            longest = max(sum(durations[x] for x in s) for s in shards)
            report(
                f"shard balance N={count}",
                f"{longest / (total / count):.3f}",
                "goal <= 1.15 (longest / mean)",
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n".join(["", "summary:"] + out))


if __name__ == "__main__":
    main()
