"""Replay a GitHub Actions workflow on this machine: its own jobs, steps and commands.

:class:`Replay` reads a workflow file and runs it the way GitHub would, in
the order its ``needs`` give, each job (and each matrix entry) in a fresh
copy of the project, with the ``run:`` steps executed by bash exactly as
written. What GitHub provides is emulated with folders: ``actions/cache``
(restore by key or key prefix, save only under a new key), artifacts
(upload, download by name or pattern, ``merge-multiple``), and the
expression contexts (``github``, ``env``, ``vars``, ``matrix``, ``needs``,
``steps``, ``strategy``, ``runner``). Because it reads the workflow itself,
the replay cannot drift from what CI runs. An action it does not know
fails the replay rather than being skipped silently.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import yaml

NO_OP = ("actions/checkout", "actions/setup-python", "actions/deploy-pages")
_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<op>\|\||&&|==|!=|<=|>=|!|<|>|\(|\)|,)"
    r"|(?P<num>\d+(?:\.\d+)?)|(?P<name>[A-Za-z_][\w-]*(?:\.[\w*-]+|\[[^\]]*\])*))"
)


# A call of one of these in an `if:` takes the place of the implicit `success()`.
STATUS_FUNCTIONS = re.compile(r"\b(?:success|failure|cancelled|always)\s*\(")


class ReplayError(AssertionError):
    pass


class StepFailed(ReplayError):
    """A step failed as it would on GitHub: its job fails, the replay goes on."""

    def __init__(self, message: str, outputs: dict | None = None):
        super().__init__(message)
        self.outputs = outputs or {}


class Run(list):
    """One run: its job records (one per job or matrix entry that ran), in order.

    ``jobs`` maps every job of the workflow to its result (``success``,
    ``failure`` or ``skipped``), ``result`` is the run's (``failure`` when any
    job failed), ``artifacts`` the names of the artifacts it uploaded.
    """

    def __init__(self, records: list, jobs: dict[str, str], artifacts: list[str]):
        super().__init__(records)
        self.jobs = jobs
        self.artifacts = artifacts
        self.result = "failure" if "failure" in jobs.values() else "success"

    def having(self, result: str) -> list[str]:
        return [name for name, r in self.jobs.items() if r == result]

    @property
    def failed(self) -> list[str]:
        return self.having("failure")

    @property
    def skipped(self) -> list[str]:
        return self.having("skipped")

    @property
    def ran(self) -> list[str]:
        return [name for name, r in self.jobs.items() if r != "skipped"]

    def errors(self) -> str:
        return "\n".join(e for record in self for e in record["errors"])


class Context(dict):
    """A context object: missing properties are null, as in GitHub's expressions."""

    def lookup(self, path: str):
        value = self
        for part in re.findall(r"[\w*-]+", path):
            if isinstance(value, dict):
                value = value.get(part)
            elif isinstance(value, list) and part.isdigit():
                value = value[int(part)] if int(part) < len(value) else None
            else:
                return None
        return value


def _python(expression: str) -> str:
    """A GitHub expression as Python source: names become ``_(path)`` lookups."""
    out, pos, text = [], 0, expression.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ReplayError(f"cannot read the expression {expression!r} at {text[pos:]!r}")
        pos = m.end()
        if m["str"]:
            out.append(repr(m["str"][1:-1].replace("''", "'")))
        elif m["op"]:
            out.append({"||": " or ", "&&": " and ", "!": " not "}.get(m["op"], m["op"]))
        elif m["num"]:
            out.append(m["num"])
        elif text[pos : pos + 1] == "(" or re.match(r"\s*\(", text[pos:]):
            out.append(f"_fn_{m['name']}")
        else:
            literal = {"true": "True", "false": "False", "null": "None"}.get(m["name"])
            out.append(literal or f"_({m['name']!r})")
    return "".join(out)


class Replay:
    """One workflow, replayed run after run with the same caches."""

    def __init__(self, workflow: Path, project: Path, scratch: Path, variables: dict):
        self.spec = yaml.safe_load(workflow.read_text(encoding="utf-8"))
        self.project = project
        self.scratch = scratch
        self.vars = variables
        self.caches = scratch / "caches"
        self.saved: list[str] = []  # cache keys, oldest first
        self.run_id = 0
        self.log: list[dict] = []

    # ---------------------------------------------------------------- expressions

    def evaluate(self, expression, ctx: dict):
        if not isinstance(expression, str):
            return expression
        names = {
            "_": lambda path: Context(ctx).lookup(path),
            "_fn_fromJSON": json.loads,
            "_fn_toJSON": json.dumps,
            "_fn_format": lambda f, *a: re.sub(r"\{(\d+)\}", lambda m: str(a[int(m[1])]), f),
            "_fn_contains": lambda a, b: b in (a or ""),
            "_fn_startsWith": lambda a, b: str(a or "").startswith(b),
            "_fn_hashFiles": lambda *globs: self._hash_files(ctx["_workspace"], globs),
            "_fn_always": lambda: True,
            "_fn_success": lambda: ctx.get("_status", {}).get("success", True),
            "_fn_failure": lambda: ctx.get("_status", {}).get("failure", False),
            "_fn_cancelled": lambda: False,  # nothing cancels a replayed run
        }
        return eval(_python(expression), {"__builtins__": {}}, names)  # noqa: S307

    def interpolate(self, value, ctx: dict):
        if isinstance(value, dict):
            return {k: self.interpolate(v, ctx) for k, v in value.items()}
        if isinstance(value, list):
            return [self.interpolate(v, ctx) for v in value]
        if not isinstance(value, str):
            return value
        whole = re.fullmatch(r"\s*\$\{\{(.*?)\}\}\s*", value, re.S)
        if whole:
            return self.evaluate(whole[1], ctx)
        return re.sub(r"\$\{\{(.*?)\}\}", lambda m: _text(self.evaluate(m[1], ctx)), value)

    def condition(self, expression, ctx: dict) -> bool:
        """An `if:` as GitHub reads it: `success() && (...)` unless it calls a status function."""
        text = "" if expression is None else str(expression).strip()
        if text.startswith("${{"):
            text = text[3:].rstrip()[:-2]
        if not STATUS_FUNCTIONS.search(text) and not self.evaluate("success()", ctx):
            return False
        return bool(self.evaluate(text, ctx)) if text.strip() else True

    @staticmethod
    def _hash_files(workspace: Path, globs) -> str:
        digest = hashlib.sha256()
        for path in sorted(p for g in globs for p in Path(workspace).glob(g) if p.is_file()):
            digest.update(path.read_bytes())
        return digest.hexdigest()

    # ---------------------------------------------------------------- runs, jobs, steps

    def run(
        self, event: str = "workflow_dispatch", ref: str = "refs/heads/replay", check: bool = True
    ) -> Run:
        """One run of the workflow; returns its jobs as they ran.

        With ``check`` (the default) a failed run raises :class:`ReplayError`
        with what failed; without, the returned :class:`Run` says it.
        """
        self.run_id += 1
        self.artifacts = self.scratch / f"run-{self.run_id}" / "artifacts"
        self.artifacts.mkdir(parents=True)
        github = {
            "event_name": event, "ref": ref, "sha": f"sha{self.run_id}",
            "run_id": str(self.run_id), "run_attempt": "1",
            "repository": "owner/name", "event": {},
        }  # fmt: skip
        outputs, ran = {}, []
        for name in self._order():
            job = self.spec["jobs"][name]
            needs = self._needs(name)
            ancestors = [outputs[a]["result"] for a in self._ancestors(name)]
            status = {
                "success": all(r == "success" for r in ancestors),
                "failure": "failure" in ancestors,
            }
            ctx = {"github": github, "vars": self.vars, "_status": status}
            ctx["needs"] = {n: outputs[n] for n in needs}
            ctx["runner"] = {"os": "Linux", "arch": "X64"}
            ctx["env"] = {}
            ctx["env"] = self.interpolate(self.spec.get("env", {}), ctx)
            outputs[name] = {"outputs": {}, "result": "skipped"}
            if not self.condition(job.get("if"), ctx):
                continue
            records = [
                self._job(name, job, {**ctx, "matrix": matrix}, outputs[name])
                for matrix in self._matrix(job, ctx)
            ]
            failed = any(r["result"] == "failure" for r in records)
            outputs[name]["result"] = "failure" if failed else "success"
            ran.extend(records)
        self.log.extend(ran)
        artifacts = sorted(p.name for p in self.artifacts.iterdir())
        result = Run(ran, {n: o["result"] for n, o in outputs.items()}, artifacts)
        if check and result.result != "success":
            raise ReplayError(f"run {self.run_id} failed: jobs {result.failed}\n{result.errors()}")
        return result

    def _needs(self, name: str) -> list[str]:
        needs = self.spec["jobs"][name].get("needs", [])
        return [needs] if isinstance(needs, str) else list(needs)

    def _ancestors(self, name: str) -> list[str]:
        """Every job `name` needs, directly or through others: job-level success() asks them all."""
        found, todo = [], self._needs(name)
        while todo:
            job = todo.pop()
            if job not in found:
                found.append(job)
                todo.extend(self._needs(job))
        return found

    def _order(self) -> list[str]:
        jobs, order = self.spec["jobs"], []
        while len(order) < len(jobs):
            for name in jobs:
                if name not in order and all(n in order for n in self._needs(name)):
                    order.append(name)
        return order

    def _matrix(self, job: dict, ctx: dict) -> list[dict]:
        matrix = self.interpolate((job.get("strategy") or {}).get("matrix"), ctx)
        if not matrix:
            return [{}]
        ((key, values),) = matrix.items()  # the workflows here use one dimension
        return [{key: v, "_total": len(values), "_index": i} for i, v in enumerate(values)]

    def _job(self, name: str, job: dict, ctx: dict, result: dict) -> dict:
        matrix = ctx["matrix"]
        label = f"{name}-{matrix[next(iter(matrix))]}" if matrix else name
        workspace = self.scratch / f"run-{self.run_id}" / label
        self._checkout(workspace)
        ctx = {**ctx, "_workspace": workspace, "steps": {}}
        ctx["strategy"] = {
            "job-total": matrix.get("_total", 1),
            "job-index": matrix.get("_index", 0),
        }
        ctx["env"] = {**ctx["env"], **self.interpolate(job.get("env", {}), ctx)}
        record = {
            "job": name, "label": label, "workspace": workspace, "commands": [], "saved": [],
            "steps": [], "errors": [], "result": "success",
        }  # fmt: skip
        posts, failed = [], False
        for number, step in enumerate(job["steps"], 1):
            step_name = step.get("name") or step.get("uses") or f"step {number}"
            ctx["_status"] = {"success": not failed, "failure": failed}
            if not self.condition(step.get("if"), ctx):
                outcome, outputs = "skipped", {}
            else:
                try:
                    outcome, outputs = "success", self._step(step, ctx, workspace, record, posts)
                except StepFailed as error:
                    outcome, outputs = "failure", error.outputs
                    record["errors"].append(f"{label}: {step_name}: {error}")
            conclusion = outcome
            if outcome == "failure" and self.interpolate(step.get("continue-on-error"), ctx):
                conclusion = "success"
            failed = failed or conclusion == "failure"
            record["steps"].append({"name": step_name, "outcome": outcome})
            if step.get("id"):
                ctx["steps"][step["id"]] = {
                    "outputs": outputs, "outcome": outcome, "conclusion": conclusion,
                }  # fmt: skip
        if not failed:  # actions/cache saves in its post step, `post-if: success()`
            for post in reversed(posts):
                post()
        record["result"] = "failure" if failed else "success"
        result["outputs"].update(self.interpolate(job.get("outputs", {}), ctx))
        return record

    def _checkout(self, workspace: Path) -> None:
        def generated(folder, names):
            skip = {"_build", ".cache", "__pycache__"}
            if Path(folder) == self.project / "docs":
                skip |= {"recipes", "sg_execution_times.rst"}
            return [n for n in names if n in skip]

        shutil.copytree(self.project, workspace, symlinks=True, ignore=generated)

    def _step(self, step: dict, ctx: dict, workspace: Path, record: dict, posts: list) -> dict:
        env = {**ctx["env"], **self.interpolate(step.get("env", {}), ctx)}
        if "run" in step:
            return self._run(step, env, ctx, workspace, record)
        uses = step["uses"].split("@")[0]
        given = self.interpolate(step.get("with", {}), ctx)
        if uses in NO_OP:
            return {}
        if uses == "actions/cache":
            hit = self._restore(workspace, given)
            posts.append(lambda: hit or self._save(workspace, given, record))
            return {"cache-hit": str(hit).lower()}
        actions = {
            "actions/cache/restore": lambda: {
                "cache-hit": str(self._restore(workspace, given)).lower()
            },
            "actions/cache/save": lambda: self._save(workspace, given, record) or {},
            "actions/upload-artifact": lambda: self._upload(workspace, given) or {},
            "actions/upload-pages-artifact": lambda: self._upload(workspace, given) or {},
            "actions/download-artifact": lambda: self._download(workspace, given) or {},
        }  # fmt: skip
        if uses not in actions:
            raise ReplayError(f"the replay does not know the action {uses}; teach it")
        return actions[uses]()

    def _run(self, step: dict, env: dict, ctx: dict, workspace: Path, record: dict) -> dict:
        script = self.interpolate(step["run"], ctx)
        output = workspace / ".github-output"
        output.write_text("")
        full_env = {**os.environ, **{k: _text(v) for k, v in env.items()}}
        full_env["GITHUB_OUTPUT"] = str(output)
        for var in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS"):
            full_env.pop(var, None)
        cwd = workspace / step.get("working-directory", ".")
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", script],
            cwd=cwd, env=full_env, capture_output=True, text=True, timeout=1800,
        )  # fmt: skip
        record["commands"].append({"run": script, "stdout": done.stdout, "stderr": done.stderr})
        pairs = [line.split("=", 1) for line in output.read_text().splitlines() if "=" in line]
        if done.returncode != 0:
            raise StepFailed(
                f"`{script.strip()}` exited {done.returncode}\n"
                f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}",
                dict(pairs),
            )
        return dict(pairs)

    # ---------------------------------------------------------------- what GitHub stores

    def _restore(self, workspace: Path, given: dict) -> bool:
        key = given["key"]
        prefixes = [p.strip() for p in str(given.get("restore-keys", "")).splitlines() if p.strip()]
        found = key if key in self.saved else None
        for prefix in prefixes:
            found = found or next((k for k in reversed(self.saved) if k.startswith(prefix)), None)
        if found:
            target = workspace / given["path"]
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(self.caches / found, target, symlinks=True)
        return found == key

    def _save(self, workspace: Path, given: dict, record: dict) -> None:
        key, source = given["key"], workspace / given["path"]
        if key in self.saved or not source.exists():
            return  # GitHub never overwrites a key
        shutil.copytree(source, self.caches / key, symlinks=True)
        self.saved.append(key)
        record["saved"].append(key)

    def _upload(self, workspace: Path, given: dict) -> None:
        name = given.get("name", "github-pages")
        pattern = str(given["path"])
        root = workspace / re.split(r"[*?\[]", pattern)[0]
        root = root if root.is_dir() else root.parent
        files = [p for p in workspace.glob(pattern) if p.is_file()] if "*" in pattern else (
            [p for p in root.rglob("*") if p.is_file()] if root.is_dir() else []
        )  # fmt: skip
        if not given.get("include-hidden-files"):
            files = [p for p in files if not any(part.startswith(".") for part in
                     p.relative_to(root).parts)]  # fmt: skip
        if not files:
            if given.get("if-no-files-found", "warn") == "error":
                raise StepFailed(f"upload {name}: no files at {pattern}")
            return
        for path in files:
            target = self.artifacts / name / path.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)

    def _download(self, workspace: Path, given: dict) -> None:
        target = workspace / given.get("path", ".")
        if "name" in given:
            names = [given["name"]]
        else:
            names = sorted(p.name for p in self.artifacts.iterdir()
                           if fnmatch.fnmatch(p.name, given.get("pattern", "*")))  # fmt: skip
        for name in names:
            source = self.artifacts / name
            if not source.is_dir():
                raise StepFailed(f"download: no artifact named {name}")
            alone = "name" in given or given.get("merge-multiple") or len(names) == 1
            shutil.copytree(source, target if alone else target / name, dirs_exist_ok=True)


def _text(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return "" if value is None else str(value)
