"""The parts of ``tests/check_gpu.py`` (``make check-gpu``) that need no GPU.

The check itself runs on a machine with an NVIDIA GPU; these tests prove, on
any machine, what it reads (nvidia-smi's output, timings.json), what it
decides (whether there is a GPU, each step's time limit), what it prints, and
that where there is no GPU it says so and stops at once with status 2.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time

import check_gpu as cg
import pytest
from conftest import REPO

SCRIPT = REPO / "tests" / "check_gpu.py"

SMI = """\
0, NVIDIA H200, 143771, 9.0, Disabled, 580.159.04
1, NVIDIA A100-SXM4-80GB, 81920, 8.0, Enabled, 580.159.04
2, Tesla T4, 15360, 7.5, [N/A], 580.159.04

"""


def facts(**changes) -> cg.Facts:
    """The facts of a machine with one GPU and a CUDA build of torch, changed as asked."""
    base = dict(
        driver_files={"/dev/nvidiactl": True, "/proc/driver/nvidia": True},
        nvidia_smi="/usr/bin/nvidia-smi",
        gpus=[cg.Gpu(0, "NVIDIA H200", 143771, "9.0", "Disabled", "580.159.04")],
        smi_error="",
        python="/usr/bin/python3",
        torch="2.11.0+cu130",
        visible=None,
    )
    base.update(changes)
    return cg.Facts(**base)


ROWS = [
    {
        "recipe": "compile/graph_breaks",
        "status": "executed",
        "seconds": 2.5,
        "peak_cuda_mb": 12.25,
        "device": "cuda (NVIDIA H200)",
    },
    {
        "recipe": "performance/needs_two_gpus",
        "status": "skipped",
        "seconds": None,
        "peak_cuda_mb": None,
        "device": None,
    },
    {
        "recipe": "extending/custom_op_compile",
        "status": "executed",
        "seconds": 0.75,
        "peak_cuda_mb": 0.0,
        "device": "cuda (NVIDIA H200)",
    },
]


# ------------------------------------------------------------------- nvidia-smi


def test_nvidia_smi_rows_become_gpus():
    gpus = cg.parse_smi_csv(SMI)
    assert gpus == [
        cg.Gpu(0, "NVIDIA H200", 143771, "9.0", "Disabled", "580.159.04"),
        cg.Gpu(1, "NVIDIA A100-SXM4-80GB", 81920, "8.0", "Enabled", "580.159.04"),
        cg.Gpu(2, "Tesla T4", 15360, "7.5", None, "580.159.04"),
    ]
    assert gpus[0].describe() == (
        "GPU 0: NVIDIA H200, 143771 MiB, compute capability 9.0, MIG Disabled, driver 580.159.04"
    )
    assert "MIG not supported" in gpus[2].describe()


def test_nvidia_smi_without_compute_cap_and_with_unknown_values():
    fields = tuple(f for f in cg.SMI_FIELDS if f != "compute_cap")
    (gpu,) = cg.parse_smi_csv("3, NVIDIA H100 80GB HBM3, [N/A], N/A, 550.54.15\n", fields)
    assert gpu == cg.Gpu(3, "NVIDIA H100 80GB HBM3", None, None, None, "550.54.15")


def test_nvidia_smi_output_of_another_shape_is_refused():
    with pytest.raises(ValueError, match="6"):
        cg.parse_smi_csv("0, NVIDIA H200, 143771\n")
    assert cg.parse_smi_csv("") == []


# ------------------------------------------------------------------- is there a GPU


def test_a_gpu_with_its_driver_and_a_cuda_torch_is_enough():
    assert cg.no_gpu_reasons(facts()) == []
    assert cg.no_gpu_reasons(facts(visible="0")) == []
    assert cg.no_gpu_reasons(facts(nvidia_smi=None, gpus=None)) == []  # the driver decides


@pytest.mark.parametrize(
    "changes, reason",
    [
        (
            {"driver_files": {"/dev/nvidiactl": False, "/proc/driver/nvidia": False}},
            "the NVIDIA driver is not loaded",
        ),
        ({"gpus": []}, "nvidia-smi lists no GPU"),
        ({"torch": "2.13.0+cpu"}, "is a CPU build (2.13.0+cpu)"),
        ({"torch": None}, "/usr/bin/python3 has no torch"),
        ({"visible": ""}, "CUDA_VISIBLE_DEVICES='' hides every GPU"),
        ({"visible": "-1"}, "CUDA_VISIBLE_DEVICES='-1' hides every GPU"),
    ],
)
def test_each_missing_piece_is_a_reason(changes, reason):
    reasons = cg.no_gpu_reasons(facts(**changes))
    assert len(reasons) == 1 and reason in reasons[0], reasons


def test_the_message_says_what_it_looked_for_in_one_paragraph():
    machine = facts(
        driver_files={"/dev/nvidiactl": False, "/proc/driver/nvidia": False},
        nvidia_smi=None,
        gpus=None,
        torch="2.13.0+cpu",
    )
    text = cg.no_gpu_message(machine, cg.no_gpu_reasons(machine))
    assert "\n" not in text
    assert text.startswith("No GPU here: the NVIDIA driver is not loaded; the torch of ")
    for looked_for in (
        "/dev/nvidiactl (absent)",
        "/proc/driver/nvidia (absent)",
        "nvidia-smi command (not on PATH)",
        "/usr/bin/python3 (2.13.0+cpu)",
        "CUDA_VISIBLE_DEVICES is unset",
        "Nothing was built",
    ):
        assert looked_for in text


# ------------------------------------------------------------------- the table


def test_the_table_has_a_row_per_recipe_and_a_total():
    lines = cg.format_table(ROWS).splitlines()
    assert lines[0].split() == ["recipe", "status", "seconds", "peak", "CUDA", "MB", "device"]
    first = ["compile/graph_breaks", "executed", "2.50", "12.2", "cuda", "(NVIDIA", "H200)"]
    assert lines[2].split() == first
    assert lines[3].split() == ["performance/needs_two_gpus", "skipped", "-", "-", "-"]
    assert lines[4].split()[2:4] == ["0.75", "0.0"]
    assert lines[-1].split() == ["total", "3", "recipes", "3.25"]
    # Numbers are right-aligned under their headers.
    end = lines[0].index("seconds") + len("seconds")
    assert all(line[:end].endswith(("2.50", "   -", "0.75")) for line in lines[2:5])
    assert len(lines) == 7  # header, rule, three recipes, rule, total


def test_the_table_of_no_recipe():
    assert cg.format_table([]).splitlines()[-1].split() == ["total", "0", "recipes", "0.00"]


# ------------------------------------------------------------------- pure helpers


def test_requirements_leave_out_torch_and_the_browser_tools():
    texts = [
        "# comment\ntorch==2.13.0\nnumpy==2.4.6  # why\n\nsphinx-gallery==0.22.1\n",
        "pytest==9.2.0\nplaywright==1.65.2\naxe_playwright_python==0.1.8\n",
        "rich>=13; python_version>'3'\n",
    ]
    lines = cg.requirements(texts)
    assert lines == [
        "numpy==2.4.6",
        "sphinx-gallery==0.22.1",
        "pytest==9.2.0",
        "rich>=13; python_version>'3'",
    ]
    assert cg.pins(lines) == {"numpy": "2.4.6", "sphinx-gallery": "0.22.1", "pytest": "9.2.0"}
    assert "torch" in cg.pins(cg.requirements(texts, left_out={}))


def test_the_project_requirements_are_read():
    texts = [(REPO / name).read_text() for name in cg.REQUIREMENT_FILES]
    wanted = cg.pins(cg.requirements(texts))
    assert "torch" not in wanted and {"sphinx", "sphinx-gallery", "pytest"} <= set(wanted)


def test_time_limits_keep_the_later_steps_reserve():
    assert cg.step_limit(300, left=570, reserved_later=150) == 300
    assert cg.step_limit(300, left=400, reserved_later=150) == 250
    assert cg.step_limit(300, left=155, reserved_later=150) == 0.0  # under MIN_STEP
    assert cg.step_limit(300, left=-5, reserved_later=0) == 0.0
    # The defaults fit the budget: every step's reserve, and each step's own limit.
    assert sum(s.reserve for s in cg.STEPS) < cg.DEFAULT_BUDGET
    assert all(s.reserve <= s.limit for s in cg.STEPS)


def test_the_shards_execute_the_quickest_recipes():
    assert cg.choose_stale(ROWS, 1) == ["extending/custom_op_compile"]
    assert cg.choose_stale(ROWS, 4) == ["extending/custom_op_compile", "compile/graph_breaks"]
    assert cg.choose_stale(ROWS, None) == cg.choose_stale(ROWS, 2)
    assert cg.choose_stale(ROWS, 0) == []


def test_the_fork_check_is_judged():
    good = {
        "parent_libcuda": [],
        "parent_cuda_initialized": False,
        "child": {"ok": True, "libcuda": True},
        "parent_libcuda_after": [],
    }
    assert cg.judge_fork(good, "cuda") == []
    bad = dict(good, parent_libcuda=["/dev/nvidiactl"])
    assert cg.judge_fork(bad, "cuda") == [
        "the preloaded parent has the CUDA driver initialised (device files mapped): /dev/nvidiactl"
    ]
    broken = dict(good, child={"ok": False, "error": "RuntimeError('bad fork')"})
    assert cg.judge_fork(broken, "cuda") == [
        "the forked child could not use cuda: RuntimeError('bad fork')"
    ]
    no_driver = dict(good, child={"ok": True, "libcuda": False})
    assert cg.judge_fork(no_driver, "cpu") == []
    assert cg.judge_fork(no_driver, "cuda") == [
        "the forked child computed on cuda with no /dev/nvidia* mapped: the maps prove nothing"
    ]


def test_the_plan_is_judged_against_what_the_store_lacked():
    rows = [*ROWS, {"recipe": "compile/broken", "status": "failed"}]
    left_out = ["extending/custom_op_compile"]
    assert cg.judge_plan(["extending/custom_op_compile"], left_out, rows, seeded=True) == []
    # A recipe that failed in the site build was never stored: stale too.
    both = ["compile/broken", "extending/custom_op_compile"]
    assert cg.judge_plan(both, left_out, rows, seeded=True) == []
    assert cg.judge_plan([], left_out, rows, seeded=True) == [
        "the plan left out extending/custom_op_compile, whose outputs the store lacked"
    ]
    assert cg.judge_plan(["compile/graph_breaks", *left_out], left_out, rows, seeded=True) == [
        "the plan found compile/graph_breaks stale, though the store held them"
    ]
    assert cg.judge_plan(["compile/graph_breaks"], [], rows, seeded=False) == []


def test_the_compile_check_is_judged_and_described():
    result = {
        "children": {
            "empty cache": {"ok": True, "seconds": [12.5, 1.25], "fxgraph_cache_hits": 1},
            "warm cache": {"ok": False, "error": "BackendCompilerFailed()"},
        }
    }
    assert cg.judge_compile(result) == [
        "compiling with the warm cache failed: BackendCompilerFailed()"
    ]
    assert cg.describe_compile(result) == (
        "empty cache: first 12.50 s, second 1.25 s (1 FX graph cache hit(s))"
    )


def test_a_child_program_result_is_its_last_result_line():
    out = cg.Outcome(0, 1.0, 'noise\nRESULT {"a": 1}\nmore\nRESULT {"a": 2}\ntrailing\n')
    assert cg.result_of(out) == {"a": 2}
    assert cg.result_of(cg.Outcome(1, 1.0, "Traceback ...")) is None


def test_commands_run_side_by_side_and_stop_at_their_limit(tmp_path):
    log = tmp_path / "step.log"
    quick = [sys.executable, "-c", "print('hello')"]
    stuck = [sys.executable, "-c", "import time; print('waiting', flush=True); time.sleep(60)"]
    start = time.monotonic()
    outs = cg.run(
        [("quick", quick, tmp_path), ("stuck", stuck, tmp_path)], dict(os.environ), 2, log
    )
    assert time.monotonic() - start < 20
    assert [o.returncode for o in outs] == [0, None]
    assert outs[0].ok and not outs[1].ok
    assert outs[0].output.strip() == "hello"
    assert "waiting" in outs[1].output and "ran past its limit of 2 s" in outs[1].output
    text = log.read_text()
    assert "# quick" in text and "# stuck" in text and "stuck: status None" in text
    assert not list(tmp_path.glob("*.part"))
    assert cg.failure(outs[1], "make html") == "make html ran out of time"


def test_a_copy_of_the_project_leaves_out_what_builds_make(tmp_path):
    copy = cg.copy_project(REPO, tmp_path / "copy")
    for kept in ("Makefile", "conf.py", "requirements.txt", "recipes", "tests/conftest.py"):
        assert (copy / kept).exists(), kept
    for left_out in (".git", ".venv", "_build", ".cache", "docs/recipes"):
        assert not (copy / left_out).exists(), left_out
    assert not list(copy.rglob("__pycache__"))


@pytest.mark.skipif(shutil.which("make") is None, reason="no make here to compare with")
@pytest.mark.parametrize(
    "target, variables",
    [
        ("html", {"DEVICE": "cuda", "STRICT": "1"}),
        ("plan", {"SHARDS": "2", "DEVICE": "cuda"}),
        ("shard", {"SHARD": "1/2", "DEVICE": "cuda"}),
        ("merge", {"DEVICE": "cuda"}),
    ],
)
def test_the_commands_for_a_machine_without_make_are_the_makefiles(target, variables):
    argv = cg.make(target, **variables)
    assert argv == ["make", target, *(f"{k}={v}" for k, v in variables.items())]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    dry = subprocess.run(
        ["make", "-n", *argv[1:]], cwd=REPO, capture_output=True, text=True, env=env, check=True
    )
    ran = [
        shlex.split(line)
        for line in dry.stdout.splitlines()
        if line.startswith((".venv/bin/python -m sphinx", "PYTHONPATH=docs/_ext"))
    ]
    exports, *commands = cg.without_make(target, variables).split(" && ")
    assert exports.startswith("export TORCHINDUCTOR_CACHE_DIR=")
    assert [shlex.split(c) for c in commands] == ran


def test_steps_are_chosen_by_name():
    assert cg.parse_args(["--steps", "env,site"]).steps == ["env", "site"]
    with pytest.raises(SystemExit):
        cg.parse_args(["--steps", "env,nonsense"])
    with pytest.raises(SystemExit):
        cg.parse_args(["--steps", "site"])  # every step needs the environment
    with pytest.raises(SystemExit):
        cg.parse_args(["--shard-recipes", "some"])


def test_the_summary_ends_with_the_table_and_the_problems(tmp_path):
    check = cg.Check(cg.parse_args([]), tmp_path, tmp_path)
    check.rows = ROWS
    check.lines.append("GPU 0: NVIDIA H200")
    (tmp_path / "site.log").write_text("whole\n")
    results = [
        cg.StepResult("env", True, 30.0),
        cg.StepResult(
            "site",
            False,
            90.0,
            problems=["make html exited with status 2"],
            output="\n".join(f"line {i}" for i in range(100)),
        ),
        cg.StepResult("tests", False, skipped=True, problems=["not run: needs env"]),
    ]
    text = cg.summary(check, results, time.monotonic())
    assert "  GPU 0: NVIDIA H200" in text
    assert cg.format_table(ROWS) in text
    assert "steps: env ok 30 s, site FAILED 90 s, tests skipped 0 s" in text
    assert "- site: make html exited with status 2" in text
    assert "    line 99" in text and "    line 74" not in text  # the last lines only
    assert f"whole output: {tmp_path / 'site.log'}" in text
    assert "- tests: not run: needs env" in text
    assert text.index("recipe") < text.index("problems (2 step(s)):")
    assert cg.summary(check, results[:1], time.monotonic()).endswith("problems: none")


# ------------------------------------------------------------------- the script, where no GPU is


def run_script(*args: str, **env: str) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **env},
        timeout=120,
    )
    return proc, time.monotonic() - start


def test_hidden_gpus_stop_the_check_at_once_with_status_2(tmp_path):
    proc, seconds = run_script("--workdir", str(tmp_path / "work"), CUDA_VISIBLE_DEVICES="")
    assert proc.returncode == cg.NO_GPU, proc.stdout + proc.stderr
    assert proc.stderr.startswith("No GPU here: ")
    assert "CUDA_VISIBLE_DEVICES='' hides every GPU" in proc.stderr
    assert "Nothing was built" in proc.stderr
    assert not (tmp_path / "work").exists()
    assert seconds < 30


def test_no_gpu_here_stops_the_check_at_once_with_status_2(tmp_path):
    if not cg.no_gpu_reasons(cg.gather_facts(sys.executable)):
        pytest.skip("this machine has a GPU: make check-gpu runs the whole check here")
    proc, seconds = run_script("--workdir", str(tmp_path / "work"))
    assert proc.returncode == cg.NO_GPU, proc.stdout + proc.stderr
    assert proc.stdout == ""
    message = proc.stderr.strip()
    assert message.startswith("No GPU here: ") and "\n" not in message
    for looked_for in ("/dev/nvidiactl", "/proc/driver/nvidia", "nvidia-smi", sys.executable):
        assert looked_for in message
    assert not (tmp_path / "work").exists()
    assert seconds < 30
