"""Properties of the GitHub workflows that the linters do not know about.

Each property is a `check_*` function that takes the parsed workflows (and
returns what is wrong, as a list of sentences), so that the same function is
run on the repository's files and, in `test_checks_catch_*`, on copies broken
on purpose: every check is shown to fail when its property does not hold.

Fast and offline: PyYAML only, plus shell snippets taken from the workflows
(docs.yml's shard matrix, the torch.compile cache hashes).
"""

import copy
import fnmatch
import functools
import json
import os
import re
import shutil
import subprocess
import tempfile
import textwrap
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
DEPENDABOT = ROOT / ".github" / "dependabot.yml"
README = ROOT / "README.md"

# The one condition that keeps pull requests from forks off self-hosted runners,
# written the same in every job that runs there.
TRUSTED = (
    "github.event_name != 'pull_request'"
    " || github.event.pull_request.head.repo.full_name == github.repository"
)
# Events whose runs a fork can start.
FORK_EVENTS = {"pull_request", "pull_request_target"}
# Labels of GitHub's own runners; any other label is a self-hosted runner.
# GitHub's own runner images, by the labels GitHub documents; anything else (a
# self-hosted runner called "ubuntu-gpu", say) is self-hosted.
GITHUB_HOSTED = re.compile(
    r"^(ubuntu-(latest|\d\d\.04)(-arm)?|windows-(latest|20\d\d|11-arm)"
    r"|macos-(latest|\d\d)(-(large|xlarge|intel))?)$"
)
# Never used: the fork switch for the GPU runner and its environment, and the
# events that run a fork's change with this repository's privileges.
FORBIDDEN = ["GPU_ALLOW_FORKS", "gpu-fork", "pull_request_target", "workflow_run"]
SHA_PIN = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


# --- reading ---------------------------------------------------------------


def load(text):
    """A workflow as a dict; YAML 1.1 reads the key `on` as True, put it back."""
    data = yaml.safe_load(text)
    assert isinstance(data, dict), "a workflow is a mapping"
    if True in data:
        data["on"] = data.pop(True)
    return data


def load_all():
    files = sorted(WORKFLOWS.glob("*.yml")) + sorted(WORKFLOWS.glob("*.yaml"))
    return {p.name: load(p.read_text(encoding="utf-8")) for p in files}


@pytest.fixture(scope="module")
def workflows():
    found = load_all()
    assert {"docs.yml", "tests.yml", "links.yml"} <= set(found), sorted(found)
    return found


def events(workflow):
    on = workflow.get("on")
    if isinstance(on, str):
        return {on}
    return set(on or ())


def jobs(workflow):
    return (workflow.get("jobs") or {}).items()


def steps(workflow):
    """(job id, step) for every step of every job."""
    for job_id, job in jobs(workflow):
        for step in job.get("steps") or []:
            yield job_id, step


def uses(step, action):
    """Whether `step` runs `action` (owner/repo or owner/repo/path), at any ref."""
    return str(step.get("uses", "")).split("@")[0] == action


def strip_expression(value):
    value = " ".join(str(value).split())
    match = re.fullmatch(r"\$\{\{\s*(.*?)\s*\}\}", value)
    return match.group(1) if match else value


def split_top_level(expr, operator):
    """`expr` split at `operator` outside parentheses and quotes."""
    parts, depth, quoted, start, i = [], 0, False, 0, 0
    while i < len(expr):
        char = expr[i]
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        elif not quoted and depth == 0 and expr.startswith(operator, i):
            parts.append(expr[start:i])
            start = i + len(operator)
            i = start
            continue
        i += 1
    parts.append(expr[start:])
    return [p.strip() for p in parts]


def unwrap(expr):
    """`expr` without parentheses that enclose all of it."""
    expr = expr.strip()
    while expr.startswith("(") and expr.endswith(")"):
        inner, depth = expr[1:-1], 0
        for char in inner:
            depth += char == "("
            depth -= char == ")"
            if depth < 0:  # "(a) || (b)": the first "(" closes before the end
                return expr
        expr = inner.strip()
    return expr


def conjuncts(condition):
    """The top-level `&&` terms of an `if:` (one term when `||` is at the top)."""
    expr = unwrap(strip_expression(condition))
    if len(split_top_level(expr, "||")) > 1:
        return [expr]
    return [unwrap(term) for term in split_top_level(expr, "&&")]


def runs_on_labels(job):
    runs_on = job.get("runs-on")
    if isinstance(runs_on, str):
        return [runs_on]
    if isinstance(runs_on, list):
        return [str(label) for label in runs_on]
    if isinstance(runs_on, dict):  # {group: ..., labels: ...}: a runner group
        return ["group:" + str(runs_on.get("group"))] + list(runs_on.get("labels") or [])
    return []  # a reusable workflow (`uses:`): its jobs may run anywhere


def is_github_hosted(job):
    labels = runs_on_labels(job)
    return bool(labels) and all(GITHUB_HOSTED.match(label) for label in labels)


def resolve(value, workflow, job_id):
    """Follow `${{ env.X }}` and `${{ needs.J.outputs.X }}` to the text they stand for."""
    for _ in range(10):
        expr = strip_expression(value)
        if match := re.fullmatch(r"env\.([\w-]+)", expr):
            name = match.group(1)
            job_env = workflow["jobs"][job_id].get("env") or {}
            value = job_env.get(name, (workflow.get("env") or {}).get(name))
        elif match := re.fullmatch(r"needs\.([\w-]+)\.outputs\.([\w-]+)", expr):
            job_id, output = match.groups()
            value = (workflow["jobs"][job_id].get("outputs") or {}).get(output)
        else:
            return " ".join(str(value).split())
        if value is None:
            return None
    return None


# --- checks ------------------------------------------------------------------


def check_fork_guard(workflows):
    """Self-hosted jobs of fork-triggered workflows must carry TRUSTED as an `&&` term."""
    problems = []
    for name, workflow in workflows.items():
        if not events(workflow) & FORK_EVENTS:
            continue
        for job_id, job in jobs(workflow):
            if is_github_hosted(job):
                continue
            if TRUSTED not in conjuncts(job.get("if", "true")):
                problems.append(
                    f"{name}: job {job_id} runs on {runs_on_labels(job) or 'a called workflow'}"
                    f" without `if: {TRUSTED}`"
                )
    return problems


def check_forbidden(texts):
    """No fork switch, no fork environment, no privileged fork-triggered events."""
    return [
        f"{name}: mentions {word}"
        for name, text in texts.items()
        for word in FORBIDDEN
        if word in text
    ]


def check_cache_keys(workflows):
    """No cache key holds the run id: keys change only when their content does."""
    return [
        f"{name}: job {job_id}, cache key {step['with']['key']!r} holds the run id"
        for name, workflow in workflows.items()
        for job_id, step in steps(workflow)
        if "key" in (step.get("with") or {}) and "run_id" in str(step["with"]["key"])
    ]


def make_calls(workflow, target):
    """(job id, step, command line) of every `make <target>` in the workflow."""
    for job_id, step in steps(workflow):
        for line in str(step.get("run", "")).splitlines():
            if re.search(rf"\bmake\s+(-\S+\s+)*{target}\b", line):
                yield job_id, step, line


def shard_matrix(workflow, n, tmp_path):
    """The shard job's matrix, as GitHub would expand it with RECIPES_SHARDS = n."""
    values = workflow["jobs"]["shard"]["strategy"]["matrix"]["shard"]
    if isinstance(values, list):
        return values
    match = re.fullmatch(
        r"fromJSON\(needs\.([\w-]+)\.outputs\.([\w-]+)\)", strip_expression(values)
    )
    assert match, f"shard matrix {values!r} is neither a list nor a plan job's output"
    job_id, output = match.groups()
    source = strip_expression(workflow["jobs"][job_id]["outputs"][output])
    step_match = re.fullmatch(r"steps\.([\w-]+)\.outputs\.([\w-]+)", source)
    assert step_match, f"output {output} of {job_id} does not come from a step: {source!r}"
    step_id, key = step_match.groups()
    (step,) = [s for s in workflow["jobs"][job_id]["steps"] if s.get("id") == step_id]
    out = tmp_path / f"github_output_{n}"
    out.write_text("")
    env = {**os.environ, "RECIPES_SHARDS": str(n), "GITHUB_OUTPUT": str(out)}
    subprocess.run(["bash", "-e", "-c", step["run"]], env=env, check=True, timeout=30)
    for line in out.read_text().splitlines():
        if line.startswith(f"{key}="):
            return json.loads(line.split("=", 1)[1])
    raise AssertionError(f"step {step_id} wrote no {key}=")


def check_shards_agree(workflow, tmp_path):
    """`make plan SHARDS=N` and `make shard SHARD=i/N` take N from where the matrix comes from."""
    problems = []
    n = str((workflow.get("env") or {}).get("RECIPES_SHARDS", ""))
    if not n.isdigit() or int(n) < 1:
        return [f"workflow env RECIPES_SHARDS is {n!r}, not a whole number from 1 up"]
    plans = [line for *_, line in make_calls(workflow, "plan")]
    if len(plans) != 1 or not re.search(r'SHARDS="?\$RECIPES_SHARDS"?(\s|$)', plans[0]):
        problems.append(f'expected one `make plan SHARDS="$RECIPES_SHARDS"`, found {plans}')
    shards = list(make_calls(workflow, "shard"))
    if len(shards) != 1 or shards[0][0] != "shard":
        problems.append(f"expected one `make shard` in job shard, found {shards}")
    elif not re.search(r'SHARD="?\$\w+/\$RECIPES_SHARDS"?(\s|$)', shards[0][2]):
        problems.append(f"`make shard` does not take N from RECIPES_SHARDS: {shards[0][2]}")
    # The matrix must be 1..N for the workflow's N; one derived from N must
    # follow it when N changes.
    static = isinstance(workflow["jobs"]["shard"]["strategy"]["matrix"]["shard"], list)
    for value in [int(n)] if static else sorted({int(n), 1, 3}):
        matrix = shard_matrix(workflow, value, tmp_path)
        if matrix != list(range(1, value + 1)):
            problems.append(f"with RECIPES_SHARDS={value} the shard matrix is {matrix}")
    return problems


def check_shard_artifacts(workflow):
    """The merge downloads every shard's store into _build/shards, one layout for any N."""
    problems = []
    uploads = [
        s["with"]["name"]
        for job_id, s in steps(workflow)
        if job_id == "shard" and uses(s, "actions/upload-artifact")
    ]
    downloads = [
        s["with"]
        for job_id, s in steps(workflow)
        if job_id == "merge" and uses(s, "actions/download-artifact")
    ]
    if len(uploads) != 1 or len(downloads) != 1:
        return [f"expected one shard upload and one merge download: {uploads}, {downloads}"]
    (name,), (download,) = uploads, downloads
    if not fnmatch.fnmatch(name.replace("${{ matrix.shard }}", "1"), download.get("pattern", "")):
        problems.append(f"merge pattern {download.get('pattern')!r} misses {name!r}")
    if download.get("merge-multiple") is not True or download.get("path") != "_build/shards":
        problems.append(f"merge download is not merge-multiple into _build/shards: {download}")
    if "shard" not in str(workflow["jobs"]["merge"].get("needs")):
        problems.append("merge does not need the shard job")
    return problems


def check_device(workflow):
    """Every plan/shard/merge call names the device kind from RECIPES_DEVICE."""
    problems = []
    device = strip_expression((workflow.get("env") or {}).get("RECIPES_DEVICE", ""))
    if device != "vars.RECIPES_DEVICE || 'cuda'":
        problems.append(f"workflow env RECIPES_DEVICE is {device!r}")
    for target in ("plan", "shard", "merge"):
        calls = list(make_calls(workflow, target))
        if not calls:
            problems.append(f"no `make {target}`")
        for _, _, line in calls:
            if 'DEVICE="$RECIPES_DEVICE"' not in line:
                problems.append(f'`{line.strip()}` does not pass DEVICE="$RECIPES_DEVICE"')
    return problems


def check_pages_artifact(workflow):
    """Deploy takes exactly the artifact the merge uploaded, named per attempt."""
    uploads = [
        (job_id, s) for job_id, s in steps(workflow) if uses(s, "actions/upload-pages-artifact")
    ]
    deploys = [(job_id, s) for job_id, s in steps(workflow) if uses(s, "actions/deploy-pages")]
    if len(uploads) != 1 or len(deploys) != 1:
        return [f"expected one Pages upload and one deploy, found {len(uploads)}, {len(deploys)}"]
    (up_job, up), (deploy_job, deploy) = uploads[0], deploys[0]
    uploaded = resolve((up.get("with") or {}).get("name", "github-pages"), workflow, up_job)
    deployed = resolve(
        (deploy.get("with") or {}).get("artifact_name", "github-pages"), workflow, deploy_job
    )
    problems = []
    if uploaded != deployed:
        problems.append(f"uploaded {uploaded!r}, deployed {deployed!r}")
    if "github.run_attempt" not in str(uploaded):
        problems.append(f"Pages artifact {uploaded!r} is not named per attempt")
    if up_job not in str(workflow["jobs"][deploy_job].get("needs")):
        problems.append(f"{deploy_job} does not need {up_job}, which uploads the site")
    return problems


def check_notebooks_after_deploy(workflow):
    """The notebooks branch moves only after the Pages deploy succeeded."""
    deploy_jobs = {j for j, s in steps(workflow) if uses(s, "actions/deploy-pages")}
    job = workflow["jobs"].get("notebooks")
    if job is None:
        return ["no notebooks job"]
    needs = job.get("needs") or []
    needs = [needs] if isinstance(needs, str) else needs
    if not deploy_jobs or not deploy_jobs <= set(needs):
        return [f"notebooks needs {needs}, not the deploy job {sorted(deploy_jobs)}"]
    return []


STATUS_FUNCTION = re.compile(r"\b(success|failure|cancelled|always)\s*\(")
UPLOADS = ("actions/upload-artifact", "actions/upload-pages-artifact")


def status_functions(condition):
    """The status functions an `if:` calls; none means GitHub's implicit `success()`."""
    return STATUS_FUNCTION.findall(str(condition or ""))


def runs_after_failure(condition, allow_always=True):
    """Whether an `if:` runs its step or job after a failure: `!cancelled()` (or `always()`) as
    an `&&` term."""
    terms = conjuncts(condition) if condition else []
    return "!cancelled()" in terms or (allow_always and "always()" in terms)


def merge_steps(workflow):
    """(index, step) of the merge job's steps."""
    return list(enumerate(workflow["jobs"]["merge"].get("steps") or []))


def check_failed_shard_keeps_outputs(workflow):
    """A failed recipe's shard still uploads, and the merge still runs and saves the store."""
    problems = []
    shard_uploads = [s for j, s in steps(workflow) if j == "shard" and uses(s, UPLOADS[0])]
    for step in shard_uploads:
        if not runs_after_failure(step.get("if")):
            problems.append(f"shard upload {step.get('name')!r} is skipped after a failure")
    merge = workflow["jobs"]["merge"]
    terms = conjuncts(merge.get("if")) if merge.get("if") else []
    if not runs_after_failure(merge.get("if"), allow_always=False):
        problems.append(
            f"merge does not run after a failed shard (or runs when cancelled): {terms}"
        )
    if "needs.plan.result == 'success'" not in terms:
        problems.append(f"merge does not require the plan to have succeeded: {terms}")
    savers = [
        (i, s)
        for i, s in merge_steps(workflow)
        if "store-id" in str(s.get("run", "")) or uses(s, "actions/cache/save")
    ]
    if len(savers) != 2:
        problems.append(f"expected the merge to hash and save the store, found {savers}")
    merges = [
        i for i, s in merge_steps(workflow) if re.search(r"\bmake merge\b", str(s.get("run")))
    ]
    for i, step in savers:
        if not runs_after_failure(step.get("if")):
            problems.append(f"merge step {step.get('name')!r} is skipped when `make merge` failed")
        if not merges or i < merges[0]:
            problems.append(f"merge step {step.get('name')!r} comes before `make merge`")
    return problems


def check_failure_publishes_nothing(workflow):
    """A failed shard fails the merge before any upload; deploy and notebooks need success."""
    problems = []
    gates = [
        i
        for i, s in merge_steps(workflow)
        if strip_expression(s.get("if", "")) == "needs.shard.result != 'success'"
        and re.search(r"\bexit 1\b", str(s.get("run", "")))
    ]
    if len(gates) != 1:
        return ["no merge step fails the job when `needs.shard.result != 'success'`"]
    for i, step in merge_steps(workflow):
        if any(uses(step, action) for action in UPLOADS):
            if i < gates[0]:
                problems.append(
                    f"merge uploads {step['with'].get('name')!r} before the shard check"
                )
            if status_functions(step.get("if")):
                problems.append(f"merge upload {step.get('name')!r} may run after a failure")
    for job_id in ("deploy", "notebooks"):
        job = workflow["jobs"].get(job_id) or {}
        if status_functions(job.get("if")):
            problems.append(f"{job_id} may run after a failure: {job.get('if')}")
        if "merge" not in str(job.get("needs")):
            problems.append(f"{job_id} does not need the merge")
    return problems


# `make test` itself, not `make test-fast` or another target that starts alike.
MAKE_TEST = re.compile(r"\bmake\s+(-\S+\s+)*test(\s|$)")


def check_test_device(workflows):
    """`make test` on a GPU runner passes DEVICE=cuda, so that a runner that would run the recipes
    on the CPU (CUDA hidden, a driver too old) fails the build instead of testing the CPU; on a
    GitHub-hosted runner nothing asks for cuda."""
    problems, kinds = [], set()
    for name, workflow in workflows.items():
        for job_id, step, line in make_calls(workflow, "test"):
            if not MAKE_TEST.search(line):
                continue
            job = workflow["jobs"][job_id]
            given = [d.strip("'\"") for d in re.findall(r"(?:^|\s)DEVICE=(\S*)", line)]
            where = f"{name}: job {job_id}, `{line.strip()}`"
            if is_github_hosted(job):
                kinds.add("cpu")
                envs = [workflow.get("env"), job.get("env"), step.get("env")]
                given += [str(env["DEVICE"]) for env in envs if env and "DEVICE" in env]
                if any(device != "cpu" for device in given):
                    problems.append(f"{where}: a CPU runner asks for DEVICE {given}")
            else:
                kinds.add("gpu")
                if given != ["cuda"]:
                    problems.append(f"{where}: a GPU runner does not pass DEVICE=cuda")
    problems += [f"no `make test` on a {kind.upper()} runner" for kind in {"cpu", "gpu"} - kinds]
    return problems


TORCH_CACHE = ".cache/torch"
CACHE_ACTIONS = ("actions/cache", "actions/cache/restore", "actions/cache/save")
# What a torch.compile cache is restored by; the device kind, then what the
# kernels depend on. Saved keys add a hash of the folder's content.
TORCH_PREFIX = re.compile(
    r"torch-compile-(?P<device>[\w-]+|\$\{\{ env\.RECIPES_DEVICE \}\})"
    r"-\$\{\{ runner\.os \}\}-\$\{\{ runner\.arch \}\}"
    r"-\$\{\{ hashFiles\('requirements\.txt'\) \}\}-"
)
# The `if:` terms of a job that runs only for pull requests from forks.
FORK_ONLY = {
    "github.event_name == 'pull_request'",
    "github.event.pull_request.head.repo.full_name != github.repository",
}


def torch_cache_steps(job):
    """(index, step) of the job's cache steps that hold torch.compile's kernels."""
    return [
        (i, s)
        for i, s in enumerate(job.get("steps") or [])
        if any(uses(s, action) for action in CACHE_ACTIONS)
        and (
            (s.get("with") or {}).get("path") == TORCH_CACHE
            or "torch-compile" in str((s.get("with") or {}).get("key", ""))
        )
    ]


@functools.cache  # the same script, in every job and in most broken copies
def hash_problems(script, output):
    """What is wrong with `script` as the hash of a torch.compile cache's content.

    Run in a scratch folder: with no cache it must succeed; with one it must
    write `output=<id>` to $GITHUB_OUTPUT, the same id again for the same files
    (copied anew, other times), another when a kernel is added or changes size.
    """

    def run(workspace):
        out = workspace / "github_output"
        out.write_text("")
        env = {**os.environ, "GITHUB_OUTPUT": str(out)}
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", script],
            cwd=workspace, env=env, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        if done.returncode != 0:
            raise AssertionError(f"exits {done.returncode}: {done.stderr.strip()}")
        found = [line.split("=", 1)[1] for line in out.read_text().splitlines()
                 if line.startswith(f"{output}=")]  # fmt: skip
        return found[-1] if found else ""

    with tempfile.TemporaryDirectory() as scratch:
        workspace = Path(scratch) / "workspace"
        workspace.mkdir()
        try:
            run(workspace)  # no cache at all
        except AssertionError as error:
            return [f"with no {TORCH_CACHE}: {error}"]
        cache = workspace / TORCH_CACHE
        for path, text in [("inductor/fx/ab/entry", "x" * 10), ("triton/cd/k.cubin", "y" * 20)]:
            (cache / path).parent.mkdir(parents=True, exist_ok=True)
            (cache / path).write_text(text)
        try:
            first = run(workspace)
            moved = Path(scratch) / "moved"
            shutil.move(cache, moved)
            shutil.copytree(moved, cache, copy_function=shutil.copy)
            for path in cache.rglob("*"):
                os.utime(path, (1_000_000_000, 1_000_000_000))
            again = run(workspace)
            (cache / "triton/ef/k2.cubin").parent.mkdir(parents=True)
            (cache / "triton/ef/k2.cubin").write_text("z")
            added = run(workspace)
            (cache / "inductor/fx/ab/entry").write_text("x" * 11)
            grown = run(workspace)
        except AssertionError as error:
            return [f"with a cache: {error}"]
    if not re.fullmatch(r"[A-Za-z0-9._-]+", first):
        return [f"writes {output}={first!r}, not an id for a key"]
    problems = []
    if again != first:
        problems.append("gives another id for the same files")
    if len({first, added, grown}) != 3:
        problems.append("gives the same id after a kernel was added or changed")
    return problems


def check_torch_compile_caches(workflows):
    """Every torch.compile cache is restored by prefix (the newest one for its device kind and
    requirements) and saved at the end of its job under a hash of its content computed there, only
    for code of this repository: a job that compiled nothing new then saves nothing, and one that
    compiled new kernels saves them."""
    problems = []
    for name, workflow in workflows.items():
        forks_start_it = bool(events(workflow) & FORK_EVENTS)
        for job_id, job in jobs(workflow):
            cached = torch_cache_steps(job)
            if not cached:
                continue
            where, job_steps = f"{name}: job {job_id}", job.get("steps") or []
            for _, step in cached:
                if uses(step, "actions/cache"):
                    problems.append(
                        f"{where}: {step.get('name')!r} keeps the cache under one key"
                        " (actions/cache): the first job saves it, no later one"
                    )
            restores = [(i, s) for i, s in cached if uses(s, "actions/cache/restore")]
            saves = [(i, s) for i, s in cached if uses(s, "actions/cache/save")]
            if len(restores) != 1:
                problems.append(f"{where}: {len(restores)} restores of the torch.compile cache")
                continue
            ((restore_at, restore),) = restores
            given = restore.get("with") or {}
            prefix = str(given.get("restore-keys", "")).strip()
            match = TORCH_PREFIX.fullmatch(prefix)
            if not match:
                problems.append(
                    f"{where}: restored by {prefix!r}, not by the prefix"
                    " torch-compile-<device>-<os>-<arch>-<requirements hash>-"
                )
                continue
            if not str(given.get("key", "")).startswith(prefix):
                problems.append(f"{where}: key {given.get('key')!r} is not under {prefix!r}")
            if is_github_hosted(job) != (match["device"] == "cpu"):
                problems.append(
                    f"{where}: {match['device']} kernels on {runs_on_labels(job)} runners"
                )
            fork_only = FORK_ONLY <= set(conjuncts(job.get("if", "true")))
            if fork_only or not saves:
                if fork_only and saves:
                    problems.append(f"{where}: runs only for forks, and saves their kernels")
                if not fork_only:
                    problems.append(f"{where}: never saves the kernels it compiled")
                continue
            if len(saves) != 1:
                problems.append(f"{where}: {len(saves)} saves of the torch.compile cache")
                continue
            ((save_at, save),) = saves
            key = str((save.get("with") or {}).get("key", ""))
            key_match = re.fullmatch(
                re.escape(prefix) + r"\$\{\{ steps\.([\w-]+)\.outputs\.([\w-]+) \}\}", key
            )
            if not key_match:
                problems.append(
                    f"{where}: saved under {key!r}, not {prefix!r} followed by a content hash"
                )
                continue
            if (save.get("with") or {}).get("path") != given.get("path"):
                problems.append(f"{where}: restores {given.get('path')}, saves another path")
            step_id, output = key_match.groups()
            hashers = [(i, s) for i, s in enumerate(job_steps) if s.get("id") == step_id]
            if len(hashers) != 1 or "run" not in hashers[0][1] or hashers[0][0] > save_at:
                problems.append(f"{where}: no `run:` step {step_id} before the save hashes it")
                continue
            ((hash_at, hasher),) = hashers
            builds = [
                i
                for i, s in enumerate(job_steps)
                if re.search(r"\bmake\b", str(s.get("run", ""))) and i != hash_at
            ]
            if not builds or hash_at < max(builds) or hash_at < restore_at:
                problems.append(f"{where}: the cache is hashed before the job's last `make`")
            problems += [
                f"{where}: step {step_id} {problem}"
                for problem in hash_problems(str(hasher["run"]), output)
            ]
            trusted = TRUSTED in conjuncts(job.get("if", "true")) or TRUSTED in conjuncts(
                save.get("if", "true")
            )
            if forks_start_it and not trusted:
                problems.append(f"{where}: saves the kernels of a fork's pull request")
    return problems


def torch_cache_jobs(workflows):
    return {
        (name, job_id) for name, w in workflows.items() for job_id, job in jobs(w)
        if torch_cache_steps(job)
    }  # fmt: skip


def check_dependabot(config):
    """Weekly, grouped updates for the actions and the pip requirements."""
    problems = []
    updates = {u.get("package-ecosystem"): u for u in (config or {}).get("updates") or []}
    for ecosystem in ("github-actions", "pip"):
        update = updates.get(ecosystem)
        if update is None:
            problems.append(f"no {ecosystem} updates")
            continue
        if update.get("directory") != "/":
            problems.append(f"{ecosystem}: directory {update.get('directory')!r}")
        if (update.get("schedule") or {}).get("interval") != "weekly":
            problems.append(f"{ecosystem}: not weekly")
        groups = update.get("groups") or {}
        if len(groups) != 1 or "*" not in next(iter(groups.values())).get("patterns", []):
            problems.append(f"{ecosystem}: not one group of every update: {groups}")
    wanted = {"version-update:semver-major", "version-update:semver-minor"}
    torch_rules = [
        rule
        for rule in (updates.get("pip") or {}).get("ignore") or []
        if rule.get("dependency-name") == "torch"
    ]
    if not any(
        wanted <= set(rule.get("update-types", wanted)) and "versions" not in rule
        for rule in torch_rules
    ):
        problems.append("pip: torch minor and major updates are not ignored")
    return problems


# --- the repository's workflows --------------------------------------------


def test_self_hosted_jobs_never_run_fork_code(workflows):
    assert check_fork_guard(workflows) == []
    # Not vacuous: the GPU jobs are self-hosted and are checked.
    self_hosted = {
        (name, job_id)
        for name, w in workflows.items()
        for job_id, job in jobs(w)
        if not is_github_hosted(job)
    }
    assert {("docs.yml", "shard"), ("tests.yml", "gpu")} <= self_hosted, self_hosted


def test_fork_pull_requests_get_a_github_hosted_preview(workflows):
    preview = workflows["docs.yml"]["jobs"]["preview"]
    assert is_github_hosted(preview)
    assert strip_expression(preview["if"]) == (
        "github.event_name == 'pull_request'"
        " && github.event.pull_request.head.repo.full_name != github.repository"
    )
    assert any(s.get("run") == "make html" for s in preview["steps"])


def test_gpu_jobs_use_the_gpu_environment_without_deployments(workflows):
    for name, workflow in workflows.items():
        for job_id, job in jobs(workflow):
            if not is_github_hosted(job):
                assert job.get("environment") == {"name": "gpu", "deployment": False}, (
                    name,
                    job_id,
                )


def test_nothing_forbidden():
    texts = {p.name: p.read_text(encoding="utf-8") for p in [*WORKFLOWS.iterdir(), DEPENDABOT]}
    assert check_forbidden(texts) == []
    readme = README.read_text(encoding="utf-8")
    assert "GPU_ALLOW_FORKS" not in readme and "gpu-fork" not in readme


def test_cache_keys_never_hold_the_run_id(workflows):
    assert check_cache_keys(workflows) == []


def test_shard_matrix_and_plan_agree(workflows, tmp_path):
    assert check_shards_agree(workflows["docs.yml"], tmp_path) == []


def test_merge_collects_every_shard(workflows):
    assert check_shard_artifacts(workflows["docs.yml"]) == []


def test_every_pipeline_step_names_the_device(workflows):
    assert check_device(workflows["docs.yml"]) == []


def test_deploy_takes_the_uploaded_pages_artifact(workflows):
    assert check_pages_artifact(workflows["docs.yml"]) == []


def test_notebooks_wait_for_the_deploy(workflows):
    assert check_notebooks_after_deploy(workflows["docs.yml"]) == []


def test_a_failed_shard_still_saves_the_good_outputs(workflows):
    assert check_failed_shard_keeps_outputs(workflows["docs.yml"]) == []


def test_a_failed_shard_fails_the_run_and_publishes_nothing(workflows):
    assert check_failure_publishes_nothing(workflows["docs.yml"]) == []


def test_gpu_tests_fail_rather_than_test_the_cpu(workflows):
    assert check_test_device(workflows) == []


def test_torch_compile_caches_are_saved_by_content(workflows):
    assert check_torch_compile_caches(workflows) == []
    # Not vacuous: every job that compiles keeps its kernels, and is checked.
    assert torch_cache_jobs(workflows) == {
        ("docs.yml", "shard"), ("docs.yml", "preview"), ("tests.yml", "cpu"), ("tests.yml", "gpu"),
    }  # fmt: skip


def test_dependabot_covers_actions_and_pip():
    assert check_dependabot(yaml.safe_load(DEPENDABOT.read_text(encoding="utf-8"))) == []


def test_actions_pinned_to_one_commit_each():
    """Full SHAs with a version comment; one SHA per action repository everywhere."""
    pins = {}
    for path in sorted(WORKFLOWS.glob("*.y*ml")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            match = re.match(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$", line)
            if not match:
                continue
            ref, comment = match.groups()
            where = f"{path.name}:{number}"
            assert SHA_PIN.match(ref), f"{where}: {ref} is not pinned to a commit"
            assert re.fullmatch(r"\s+# v\d+\.\d+\.\d+", comment), f"{where}: no `# vX.Y.Z`"
            repo = "/".join(ref.split("@")[0].split("/")[:2])
            pins.setdefault(repo, set()).add(ref.split("@")[1] + comment.strip())
    assert pins, "no action found"
    assert {repo: p for repo, p in pins.items() if len(p) > 1} == {}


# --- the checks themselves ---------------------------------------------------

GUARD_CASES = {
    "unguarded self-hosted": (
        """
        on: pull_request
        jobs:
          gpu: {runs-on: linux-gpu, steps: [{run: "true"}]}
        """,
        ["gpu"],
    ),
    "guarded self-hosted": (
        f"""
        on: [push, pull_request]
        jobs:
          gpu:
            if: {TRUSTED}
            runs-on: [self-hosted, gpu]
            steps: [{{run: "true"}}]
        """,
        [],
    ),
    "guarded, with a further condition": (
        f"""
        on: {{pull_request: {{}}}}
        jobs:
          gpu:
            if: ${{{{ ({TRUSTED}) && github.actor != 'dependabot[bot]' }}}}
            runs-on: ${{{{ vars.GPU_RUNNER || 'linux-gpu' }}}}
            steps: [{{run: "true"}}]
        """,
        [],
    ),
    "guard without parentheses (|| binds last)": (
        f"""
        on: pull_request
        jobs:
          gpu:
            if: {TRUSTED} && github.actor != 'someone'
            runs-on: linux-gpu
            steps: [{{run: "true"}}]
        """,
        ["gpu"],
    ),
    "guard offered as an alternative": (
        f"""
        on: pull_request
        jobs:
          gpu:
            if: ({TRUSTED}) || vars.ALLOW == 'true'
            runs-on: linux-gpu
            steps: [{{run: "true"}}]
        """,
        ["gpu"],
    ),
    "runner from a variable": (
        """
        on: pull_request
        jobs:
          gpu: {runs-on: "${{ vars.GPU_RUNNER || 'ubuntu-latest' }}", steps: [{run: "true"}]}
        """,
        ["gpu"],
    ),
    "GitHub-hosted": (
        """
        on: pull_request
        jobs:
          cpu: {runs-on: ubuntu-latest, steps: [{run: "true"}]}
          win: {runs-on: [windows-2025], steps: [{run: "true"}]}
        """,
        [],
    ),
    "self-hosted, but no fork can start the workflow": (
        """
        on: {push: {branches: [main]}, workflow_dispatch: {}}
        jobs:
          gpu: {runs-on: linux-gpu, steps: [{run: "true"}]}
        """,
        [],
    ),
    "pull_request_target": (
        """
        on: pull_request_target
        jobs:
          gpu: {runs-on: linux-gpu, steps: [{run: "true"}]}
        """,
        ["gpu"],
    ),
}


@pytest.mark.parametrize("case", GUARD_CASES)
def test_fork_guard_check(case):
    text, flagged = GUARD_CASES[case]
    problems = check_fork_guard({"w.yml": load(textwrap.dedent(text))})
    assert [re.search(r"job (\S+)", p).group(1) for p in problems] == flagged, problems


def test_load_restores_the_on_key():
    assert load("on: push\njobs: {}\n")["on"] == "push"


def test_conjuncts():
    assert conjuncts(f"${{{{ ({TRUSTED}) && a }}}}") == [TRUSTED, "a"]
    assert conjuncts(f"({TRUSTED})") == [TRUSTED]
    assert conjuncts("(a) || (b)") == ["(a) || (b)"]
    assert conjuncts("a && (b || c) && 'x && y'") == ["a", "b || c", "'x && y'"]


def step_of(workflow, job_id, text):
    """The one step of `job_id` whose name, `uses` or `run` contains `text`."""
    (found,) = [
        s
        for s in workflow["jobs"][job_id]["steps"]
        if any(text in str(s.get(k, "")) for k in ("name", "uses", "run"))
    ]
    return found


def mutated(workflows, name, change):
    broken = copy.deepcopy(workflows)
    change(broken[name])
    return broken


BREAKAGES = {
    "unguarded GPU job": (
        check_fork_guard,
        lambda w: w["jobs"]["shard"].pop("if"),
    ),
    "GPU job guarded by a weaker condition": (
        check_fork_guard,
        lambda w: w["jobs"]["shard"].update({"if": "github.repository == 'x/y'"}),
    ),
    "run id in a cache key": (
        check_cache_keys,
        lambda w: step_of(w, "shard", "Restore the torch.compile")["with"].update(
            key="torch-${{ runner.os }}-${{ github.run_id }}"
        ),
    ),
    "torch.compile cache under one key (actions/cache)": (
        check_torch_compile_caches,
        lambda w: step_of(w, "shard", "Restore the torch.compile").update(
            uses="actions/cache@27d5ce7f107fe9357f9df03efb73ab90386fccae"
        ),
    ),
    "torch.compile cache restored by its exact key only": (
        check_torch_compile_caches,
        lambda w: step_of(w, "shard", "Restore the torch.compile")["with"].pop("restore-keys"),
    ),
    "torch.compile cache restored by a prefix without the requirements": (
        check_torch_compile_caches,
        lambda w: step_of(w, "shard", "Restore the torch.compile")["with"].update(
            {"restore-keys": "torch-compile-${{ env.RECIPES_DEVICE }}-"}
        ),
    ),
    "GPU job restores the CPU kernels": (
        check_torch_compile_caches,
        lambda w: [
            step_of(w, "shard", f"{verb} the torch.compile")["with"].update(
                {
                    k: v.replace("${{ env.RECIPES_DEVICE }}", "cpu")
                    for k, v in step_of(w, "shard", f"{verb} the torch.compile")["with"].items()
                }
            )
            for verb in ("Restore", "Save")
        ],
    ),
    "torch.compile cache saved under the requirements only": (
        check_torch_compile_caches,
        lambda w: step_of(w, "shard", "Save the torch.compile")["with"].update(
            key="torch-compile-${{ env.RECIPES_DEVICE }}-${{ runner.os }}-${{ runner.arch }}"
            "-${{ hashFiles('requirements.txt') }}-"
        ),
    ),
    "torch.compile cache never saved": (
        check_torch_compile_caches,
        lambda w: w["jobs"]["shard"]["steps"].remove(step_of(w, "shard", "Save the torch.compile")),
    ),
    "torch.compile cache keyed by a step that is not there": (
        check_torch_compile_caches,
        lambda w: w["jobs"]["shard"]["steps"].remove(step_of(w, "shard", "Hash the torch.compile")),
    ),
    "torch.compile cache hashed before the shard ran": (
        check_torch_compile_caches,
        lambda w: w["jobs"]["shard"]["steps"].insert(
            0,
            w["jobs"]["shard"]["steps"].pop(
                w["jobs"]["shard"]["steps"].index(step_of(w, "shard", "Hash the torch.compile"))
            ),
        ),
    ),
    "torch.compile cache 'hash' that ignores the content": (
        check_torch_compile_caches,
        lambda w: step_of(w, "shard", "Hash the torch.compile").update(
            run='echo "id=$(sha256sum <<< "$RUNNER_OS" | cut -c1-16)" >> "$GITHUB_OUTPUT"'
        ),
    ),
    "torch.compile cache hashed with its times": (
        check_torch_compile_caches,
        lambda w: step_of(w, "shard", "Hash the torch.compile").update(
            run="mkdir -p .cache/torch\n"
            "echo \"id=$(find .cache/torch -type f -printf '%P %T@\\n' | sort | sha256sum"
            ' | cut -c1-16)" >> "$GITHUB_OUTPUT"'
        ),
    ),
    "torch.compile cache hash that fails without a cache": (
        check_torch_compile_caches,
        lambda w: step_of(w, "shard", "Hash the torch.compile").update(
            run="id=\"$(find .cache/torch -type f -printf '%P %s\\n' | sort | sha256sum"
            ' | cut -c1-16)"\necho "id=$id" >> "$GITHUB_OUTPUT"'
        ),
    ),
    "fork preview saves its kernels": (
        check_torch_compile_caches,
        lambda w: w["jobs"]["preview"]["steps"].extend(
            [step_of(w, "shard", "Hash the torch.compile"), step_of(w, "shard", "Save the torch")]
        ),
    ),
}


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_checks_catch_breakage(workflows, breakage):
    check, change = BREAKAGES[breakage]
    assert check(workflows) == []
    assert check(mutated(workflows, "docs.yml", change)) != []


DOCS_BREAKAGES = {
    "static matrix of another size": (
        check_shards_agree,
        lambda w: w["jobs"]["shard"]["strategy"]["matrix"].update(shard=[1, 2, 3]),
    ),
    "matrix script ignores N": (
        check_shards_agree,
        lambda w: step_of(w, "plan", "Shard matrix").update(
            run='echo "shards=[1, 2, 3, 4]" >> "$GITHUB_OUTPUT"'
        ),
    ),
    "plan with a literal N": (
        check_shards_agree,
        lambda w: step_of(w, "plan", "make plan").update(run="make plan SHARDS=4 DEVICE=cuda"),
    ),
    "shard with a literal N": (
        check_shards_agree,
        lambda w: step_of(w, "shard", "make shard").update(
            run='make shard SHARD="$SHARD_INDEX/4" DEVICE="$RECIPES_DEVICE"'
        ),
    ),
    "N not a number": (
        check_shards_agree,
        lambda w: w["env"].update(RECIPES_SHARDS="four"),
    ),
    "merge downloads another name": (
        check_shard_artifacts,
        lambda w: step_of(w, "merge", "download-artifact")["with"].update(pattern="shard-*"),
    ),
    "merge without merge-multiple": (
        check_shard_artifacts,
        lambda w: step_of(w, "merge", "download-artifact")["with"].pop("merge-multiple"),
    ),
    "make merge without the device": (
        check_device,
        lambda w: step_of(w, "merge", "make merge").update(run="make merge"),
    ),
    "deploy of the default artifact": (
        check_pages_artifact,
        lambda w: step_of(w, "deploy", "deploy-pages").pop("with"),
    ),
    "Pages artifact named per run only": (
        check_pages_artifact,
        lambda w: w["jobs"]["merge"]["env"].update(PAGES_ARTIFACT="pages-${{ github.run_id }}"),
    ),
    "notebooks before the deploy": (
        check_notebooks_after_deploy,
        lambda w: w["jobs"]["notebooks"].update(needs="merge"),
    ),
    "shard upload only on success": (
        check_failed_shard_keeps_outputs,
        lambda w: step_of(w, "shard", "upload-artifact").pop("if"),
    ),
    "merge only on success": (
        check_failed_shard_keeps_outputs,
        lambda w: w["jobs"]["merge"].update({"if": TRUSTED}),
    ),
    "merge even when cancelled": (
        check_failed_shard_keeps_outputs,
        lambda w: w["jobs"]["merge"].update(
            {"if": f"always() && needs.plan.result == 'success' && ({TRUSTED})"}
        ),
    ),
    "merge after a failed plan": (
        check_failed_shard_keeps_outputs,
        lambda w: w["jobs"]["merge"].update({"if": f"!cancelled() && ({TRUSTED})"}),
    ),
    "store hashed only on success": (
        check_failed_shard_keeps_outputs,
        lambda w: step_of(w, "merge", "store-id").pop("if"),
    ),
    "store saved only on success": (
        check_failed_shard_keeps_outputs,
        lambda w: step_of(w, "merge", "cache/save").pop("if"),
    ),
    "merge without the shard check": (
        check_failure_publishes_nothing,
        lambda w: w["jobs"]["merge"]["steps"].remove(step_of(w, "merge", "if a shard failed")),
    ),
    "shard check that does not fail": (
        check_failure_publishes_nothing,
        lambda w: step_of(w, "merge", "if a shard failed").update(run="echo a shard failed"),
    ),
    "preview uploaded after a failure": (
        check_failure_publishes_nothing,
        lambda w: step_of(w, "merge", "as a preview").update(
            {"if": "always() && github.event_name == 'pull_request'"}
        ),
    ),
    "Pages artifact uploaded before the shard check": (
        check_failure_publishes_nothing,
        lambda w: w["jobs"]["merge"]["steps"].insert(
            0, step_of(w, "merge", "upload-pages-artifact")
        ),
    ),
    "deploy after a failure": (
        check_failure_publishes_nothing,
        lambda w: w["jobs"]["deploy"].update({"if": "always() && github.ref == 'refs/heads/main'"}),
    ),
}


def runs_instead(job: str, run: str):
    """A breakage: the `make test` step of `job` runs `run` instead."""
    return lambda w: step_of(w, job, "make test").update(run=run)


TESTS_BREAKAGES = {
    "GPU tests without DEVICE=cuda": (
        check_test_device,
        runs_instead(job="gpu", run="make test STRICT=1"),
    ),
    "GPU tests on the CPU": (
        check_test_device,
        runs_instead(job="gpu", run="make test STRICT=1 DEVICE=cpu"),
    ),
    "GPU job without make test": (
        check_test_device,
        runs_instead(job="gpu", run="make test-fast DEVICE=cuda"),
    ),
    "CPU tests ask for cuda": (
        check_test_device,
        runs_instead(job="cpu", run="make test DEVICE=cuda"),
    ),
    "CPU job's env asks for cuda": (
        check_test_device,
        lambda w: w["jobs"]["cpu"]["env"].update(DEVICE="cuda"),
    ),
    "CPU torch.compile cache saved for forks": (
        check_torch_compile_caches,
        lambda w: step_of(w, "cpu", "Save the torch.compile").update(
            {"if": "${{ !cancelled() && steps.torch-compile.outcome == 'success' }}"}
        ),
    ),
    "GPU torch.compile cache under one key (actions/cache)": (
        check_torch_compile_caches,
        lambda w: step_of(w, "gpu", "Restore the torch.compile").update(
            uses="actions/cache@27d5ce7f107fe9357f9df03efb73ab90386fccae"
        ),
    ),
    "GPU torch.compile cache never saved": (
        check_torch_compile_caches,
        lambda w: w["jobs"]["gpu"]["steps"].remove(step_of(w, "gpu", "Save the torch.compile")),
    ),
}


@pytest.mark.parametrize("breakage", TESTS_BREAKAGES)
def test_tests_checks_catch_breakage(workflows, breakage):
    check, change = TESTS_BREAKAGES[breakage]
    assert check(workflows) == []
    assert check(mutated(workflows, "tests.yml", change)) != []


@pytest.mark.parametrize("breakage", DOCS_BREAKAGES)
def test_docs_checks_catch_breakage(workflows, breakage, tmp_path):
    check, change = DOCS_BREAKAGES[breakage]
    args = (tmp_path,) if check is check_shards_agree else ()
    assert check(workflows["docs.yml"], *args) == []
    assert check(mutated(workflows, "docs.yml", change)["docs.yml"], *args) != []


def test_forbidden_check_catches_each_word():
    for word in FORBIDDEN:
        assert check_forbidden({"w.yml": f"x: {word}\n"}) != [], word


@pytest.mark.parametrize(
    "change",
    [
        lambda c: c["updates"].pop(0),
        lambda c: c["updates"][1]["schedule"].update(interval="daily"),
        lambda c: c["updates"][0].pop("groups"),
        lambda c: c["updates"][1].pop("ignore"),
    ],
    ids=["no actions", "daily pip", "ungrouped actions", "torch not ignored"],
)
def test_dependabot_check_catches_breakage(change):
    config = yaml.safe_load(DEPENDABOT.read_text(encoding="utf-8"))
    assert check_dependabot(config) == []
    change(config)
    assert check_dependabot(config) != []


@pytest.mark.parametrize(
    "label, hosted",
    [("ubuntu-latest", True), ("ubuntu-24.04", True), ("ubuntu-24.04-arm", True),
     ("macos-15", True), ("windows-2025", True),
     ("ubuntu-gpu", False), ("ubuntu-latest-h100", False), ("linux-gpu", False)],
)  # fmt: skip
def test_only_githubs_own_labels_count_as_github_hosted(label, hosted):
    assert bool(GITHUB_HOSTED.match(label)) is hosted
