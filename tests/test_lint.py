"""The workflow linters of `make lint` fail on broken workflows and pass on ours.

Each check runs twice: through the make targets of .github/lint.mk (pointed at
a temporary folder with WORKFLOWS_DIR=...), which proves the real target fails,
and through the tools themselves, taken from the virtualenv next to
sys.executable.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each test runs the linters

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
LINT_MK = ROOT / ".github" / "lint.mk"
BIN = Path(sys.executable).parent  # not resolved: the venv's bin/, not the base Python's

# One job, two faults: a misspelled key (actionlint, the schema) and an untrusted
# pull request title expanded inside a `run:` script (actionlint, zizmor).
BROKEN_NAME = "broken-by-test.yml"
BROKEN = """\
name: broken
on: pull_request
permissions: {}
jobs:
  greet:
    runs-on: ubuntu-latest
    timeout-minuets: 5
    steps:
      - name: Greet
        run: echo "${{ github.event.pull_request.title }}"
"""

# Valid and pinned, with one low-severity finding only (zizmor's obfuscation:
# an expression that is a constant): zizmor must fail from low up.
LOW_NAME = "low-by-test.yml"
LOW = """\
name: low
on: push
permissions: {}
jobs:
  build:
    runs-on: ubuntu-latest
    timeout-minutes: 5
    permissions:
      contents: read
    steps:
      - uses: actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8 # v5.0.0
        with:
          persist-credentials: false
      - run: echo "${{ 'built' }}"
"""

# Dependabot settings with a key the schema does not know, and no cooldown
# (zizmor's dependabot-cooldown, medium).
BROKEN_DEPENDABOT = """\
version: 2
updates:
  - package-ecosystem: pip
    directory: /
    schedule:
      interval: weekly
    groops:
      python:
        patterns: ["*"]
"""

# The make sub-targets of `lint-workflows`, and the same tools called directly.
TARGETS = ["lint-actionlint", "lint-zizmor", "lint-workflow-schema"]


def tool_commands(files):
    return {
        "actionlint": [
            str(BIN / "actionlint"),
            "-no-color",
            f"-shellcheck={BIN / 'shellcheck'}",
            "-pyflakes=",
            *files,
        ],
        "zizmor": [
            str(BIN / "zizmor"),
            "--offline",
            "--no-progress",
            "--color=never",
            "-q",
            "--min-severity=low",
            *files,
        ],
        "check-jsonschema": [
            str(BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.github-workflows",
            *files,
        ],
    }


def clean_env():
    """The environment without what an outer make or the user set for these targets."""
    env = dict(os.environ)
    for key in list(env):
        if key in {
            "MAKEFLAGS",
            "MFLAGS",
            "MAKELEVEL",
            "MAKEOVERRIDES",
            "WORKFLOWS_DIR",
            "DEPENDABOT_CONFIG",
        }:
            del env[key]
        elif key.startswith("ZIZMOR_"):  # zizmor's settings, and lint.mk's ZIZMOR_MIN_SEVERITY
            del env[key]
    env["NO_COLOR"] = "1"
    return env


def make_command():
    """`make`, with the fragment named explicitly until the Makefile includes it."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    if re.search(r"^\s*-?include\s+.*\.github/lint\.mk", makefile, re.M):
        return ["make", "--no-print-directory"]
    return ["make", "--no-print-directory", "-f", "Makefile", "-f", str(LINT_MK.relative_to(ROOT))]


def run(cmd, cwd=ROOT):
    proc = subprocess.run(
        cmd, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=600
    )
    return proc.returncode, proc.stdout + proc.stderr


def workflow_files(folder):
    return sorted(str(p) for p in Path(folder).iterdir() if p.suffix in {".yml", ".yaml"})


@pytest.fixture(scope="module", autouse=True)
def lint_tools():
    """Install requirements-lint.txt into the venv (the fragment's stamp), as `make lint` does."""
    rc, out = run([*make_command(), ".venv/.stamp-lint"])
    assert rc == 0, out
    missing = [
        name
        for name in ("actionlint", "shellcheck", "zizmor", "check-jsonschema")
        if not (BIN / name).exists()
    ]
    assert not missing, f"not installed next to {sys.executable}: {missing}"


@pytest.fixture
def copied(tmp_path):
    """A copy of the repository's workflows, in a folder of its own."""
    folder = tmp_path / "workflows"
    shutil.copytree(WORKFLOWS, folder)
    assert workflow_files(folder), "the repository has no workflow to copy"
    return folder


@pytest.fixture
def broken(copied):
    (copied / BROKEN_NAME).write_text(BROKEN, encoding="utf-8")
    return copied


def test_repository_workflows_pass_make_lint_workflows():
    rc, out = run([*make_command(), "lint-workflows"])
    assert rc == 0, out


@pytest.mark.parametrize("tool", ["actionlint", "zizmor", "check-jsonschema"])
def test_repository_workflows_pass_each_tool(tool):
    rc, out = run(tool_commands(workflow_files(WORKFLOWS))[tool])
    assert rc == 0, out


@pytest.mark.parametrize("tool", ["actionlint", "zizmor", "check-jsonschema"])
def test_copied_workflows_pass_each_tool(copied, tool):
    # The control for the tests below: the copy alone passes, so their failures
    # come from the broken file, not from where the copy lies.
    rc, out = run(tool_commands(workflow_files(copied))[tool], cwd=copied.parent)
    assert rc == 0, out


@pytest.mark.parametrize("target", TARGETS)
def test_broken_workflow_fails_make_target(broken, target):
    # -s: make echoes no command line, so the file is named by the tool's diagnostic.
    rc, out = run([*make_command(), "-s", target, f"WORKFLOWS_DIR={broken}"])
    assert rc != 0, out
    assert BROKEN_NAME in out, out


def test_broken_workflow_fails_make_lint_workflows(broken):
    rc, out = run([*make_command(), "-k", "lint-workflows", f"WORKFLOWS_DIR={broken}"])
    assert rc != 0, out
    # Every one of the three linters named the broken file.
    assert 'unexpected key "timeout-minuets"' in out, out  # actionlint
    assert "template-injection" in out, out  # zizmor
    assert "'timeout-minuets' was unexpected" in out, out  # check-jsonschema
    for line in out.splitlines():
        if re.match(r"^\S+\.ya?ml:\d+:\d+: ", line):  # actionlint's error lines
            assert BROKEN_NAME in line, out


@pytest.mark.parametrize("tool", ["actionlint", "zizmor", "check-jsonschema"])
def test_broken_workflow_fails_each_tool(broken, tool):
    rc, out = run(tool_commands(workflow_files(broken))[tool], cwd=broken.parent)
    assert rc != 0, out
    assert BROKEN_NAME in out, out


def test_zizmor_fails_from_low_severity(copied):
    (copied / LOW_NAME).write_text(LOW, encoding="utf-8")
    rc, out = run([*make_command(), "lint-zizmor", f"WORKFLOWS_DIR={copied}"])
    assert rc != 0, out
    assert "obfuscation" in out and LOW_NAME in out, out
    assert "1 low, 0 medium, 0 high" in out, out  # the finding is low, and the only one
    # Only because the threshold is low: from medium up the same file passes.
    rc, out = run(
        [*make_command(), "lint-zizmor", f"WORKFLOWS_DIR={copied}", "ZIZMOR_MIN_SEVERITY=medium"]
    )
    assert rc == 0, out
    # The same file is valid for the other two linters.
    for target in ("lint-actionlint", "lint-workflow-schema"):
        rc, out = run([*make_command(), target, f"WORKFLOWS_DIR={copied}"])
        assert rc == 0, out


def test_empty_workflows_dir_fails(tmp_path):
    rc, out = run([*make_command(), "lint-actionlint", f"WORKFLOWS_DIR={tmp_path}"])
    assert rc != 0, out
    assert "no workflow" in out, out


def test_repository_dependabot_passes(copied):
    assert (ROOT / ".github" / "dependabot.yml").is_file()
    # Each tool's own verdict (make -s echoes no command line that could match).
    rc, out = run([*make_command(), "-s", "lint-dependabot-schema", f"WORKFLOWS_DIR={copied}"])
    assert rc == 0 and "ok -- validation done" in out and "nothing to check" not in out, out
    rc, out = run([*make_command(), "-s", "lint-zizmor", f"WORKFLOWS_DIR={copied}"])
    assert rc == 0 and "No findings to report" in out, out
    # ...and zizmor did read dependabot.yml: test_broken_dependabot_fails.


def test_broken_dependabot_fails(copied, tmp_path):
    config = tmp_path / "dependabot.yml"
    config.write_text(BROKEN_DEPENDABOT, encoding="utf-8")
    rc, out = run([*make_command(), "lint-dependabot-schema", f"DEPENDABOT_CONFIG={config}"])
    assert rc != 0, out
    assert "'groops' was unexpected" in out, out
    rc, out = run(
        [*make_command(), "lint-zizmor", f"WORKFLOWS_DIR={copied}", f"DEPENDABOT_CONFIG={config}"]
    )
    assert rc != 0, out
    assert "dependabot-cooldown" in out, out
