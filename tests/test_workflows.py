"""GitHub workflows and Dependabot configs, the template's and a render's: audited, valid, pinned.

Also the generated project's pre-commit hooks, run on renders of every option value.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import BIN_DIR, TEMPLATE_DIR, run
from .pre_commit_local import as_local
from .tooling import render_project

PINS: dict[str, dict[str, str]] = {
    action: pin
    for action, pin in json.loads((TEMPLATE_DIR / ".github" / "action-pins.json").read_text()).items()
    if not action.startswith("_")
}
# Every value of the options that change which files exist or what they hold, in four renders.
PRE_COMMIT_CASES = [
    {},
    {"auth": "oidc", "open_source_license": "Apache-2.0"},
    {"include_kubernetes": "no", "include_github_actions": "no", "open_source_license": "BSD-3-Clause"},
    {"open_source_license": "Proprietary"},
]
# Hook environments and mypy's cache survive between runs, beside the test virtualenv:
# mypy checks the same third-party packages in every render (about 45 s each when cold).
PRE_COMMIT_HOME = BIN_DIR.parent / "pre-commit-cache"
MYPY_CACHE_DIR = BIN_DIR.parent / "mypy-cache"
# `uses: owner/repo@<commit> # vX.Y.Z`: a full commit hash, and the release it is.
USES = re.compile(r"uses:\s*(?P<action>[^@\s]+)@(?P<ref>\S+)(?:\s+#\s*(?P<version>\S+))?")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render_project(tmp_path_factory.mktemp("workflows"), include_github_actions="yes")


def workflows(root: Path) -> list[Path]:
    return sorted(root.glob(".github/workflows/*.yml"))


def every_workflow(project: Path) -> list[Path]:
    return workflows(TEMPLATE_DIR) + workflows(project)


def load(path: Path) -> dict[Any, Any]:
    # PyYAML reads the key `on` as True (YAML 1.1); workflows use it as a name.
    data = yaml.safe_load(path.read_text())
    data["on"] = data.pop(True, data.get("on"))
    return data


def test_render_has_ci_release_and_dependabot(project: Path) -> None:
    assert {"ci.yml", "release.yml"} <= {path.name for path in workflows(project)}
    assert (project / ".github" / "dependabot.yml").is_file()


def test_zizmor_finds_nothing(project: Path) -> None:
    """Offline audits (no GitHub API here): pinning, credentials, permissions, injection, caching."""
    for root in (TEMPLATE_DIR, project):
        result = run([str(BIN_DIR / "zizmor"), "--offline", "--no-progress", ".github"], cwd=root)
        assert "No findings to report" in result.stdout, result.stdout


def test_workflows_and_dependabot_match_githubs_schemas(project: Path) -> None:
    check = str(BIN_DIR / "check-jsonschema")
    workflow_files = [str(path) for path in every_workflow(project)]
    run([check, "--builtin-schema", "vendor.github-workflows", *workflow_files], TEMPLATE_DIR)
    dependabot = [str(root / ".github" / "dependabot.yml") for root in (TEMPLATE_DIR, project)]
    run([check, "--builtin-schema", "vendor.dependabot", *dependabot], TEMPLATE_DIR)


def test_every_action_is_pinned_to_the_listed_commit(project: Path) -> None:
    used = set()
    for path in every_workflow(project):
        for match in USES.finditer(path.read_text()):
            action, ref, version = match["action"], match["ref"], match["version"]
            assert action in PINS, f"{path.name}: {action} is not in .github/action-pins.json"
            assert (ref, version) == (PINS[action]["sha"], PINS[action]["version"]), (
                f"{path.name}: {action}@{ref} # {version}; .github/action-pins.json has "
                f"{PINS[action]['sha']} # {PINS[action]['version']}: update both together"
            )
            used.add(action)
    assert used == set(PINS), f"pins nobody uses: {set(PINS) - used}"
    for pin in PINS.values():
        assert re.fullmatch(r"[0-9a-f]{40}", pin["sha"]) and re.fullmatch(r"v\d+\.\d+\.\d+", pin["version"])


def test_least_privilege(project: Path) -> None:
    for path in every_workflow(project):
        workflow = load(path)
        assert workflow["permissions"] == {}, f"{path.name}: top-level permissions must be {{}}"
        for name, job in workflow["jobs"].items():
            assert "permissions" in job, f"{path.name}: job {name} must list its permissions"
            writes = {scope for scope, level in job["permissions"].items() if level == "write"}
            if path.name != "release.yml":
                assert not writes, f"{path.name}: job {name} needs no write access, has {writes}"
            for step in job["steps"]:
                if step.get("uses", "").startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False, f"{path.name}: {name}"


def test_generated_ci_installs_the_lock_with_uv_then_runs_make(project: Path) -> None:
    jobs = load(project / ".github" / "workflows" / "ci.yml")["jobs"]
    targets = set()
    for name, job in jobs.items():
        runs = [step.get("run", "") for step in job["steps"]]
        makes = [line.split()[1] for line in runs if line.startswith("make ")]
        targets.update(makes)
        if makes:
            uv = next(step for step in job["steps"] if step.get("uses", "").startswith("astral-sh/setup-uv@"))
            assert uv["with"]["enable-cache"] is True, name
            assert runs.index("uv sync --frozen") < runs.index(f"make {makes[0]}"), name
    assert targets == {"lint", "test", "test-postgres"}
    cruft = next(step for step in jobs["lint"]["steps"] if step.get("name") == "cruft check")
    assert cruft["if"] == "hashFiles('.cruft.json') != ''"


def test_release_pushes_one_cached_attested_build_and_prints_its_digest(project: Path) -> None:
    release = load(project / ".github" / "workflows" / "release.yml")
    assert release["on"] == {"push": {"tags": ["v*"]}}
    (job,) = release["jobs"].values()
    steps = {step.get("id") or step.get("name") or step["uses"].split("@")[0]: step for step in job["steps"]}
    build = steps["build"]["with"]
    assert build["push"] is True and build["sbom"] is True and build["provenance"] == "mode=max"
    # The CI image job (same action, same build) fills the cache from main; a tag only reads it.
    ci_build = next(
        step["with"]
        for step in load(project / ".github" / "workflows" / "ci.yml")["jobs"]["image"]["steps"]
        if step.get("uses", "").startswith("docker/build-push-action@")
    )
    assert build["cache-from"] == ci_build["cache-from"] == "type=gha,scope=image"
    assert (
        ci_build["cache-to"] == "${{ github.event_name == 'push' && 'type=gha,mode=max,scope=image' || '' }}"
    )
    assert (
        build["context"] == ci_build["context"] and "build-args" not in build and "build-args" not in ci_build
    )
    attest = steps["actions/attest-build-provenance"]["with"]
    assert attest["subject-digest"] == "${{ steps.build.outputs.digest }}" and attest["push-to-registry"]
    assert "GITHUB_STEP_SUMMARY" in steps["Digest to deploy"]["run"]
    assert "${IMAGE}@${DIGEST}" in steps["Digest to deploy"]["run"]


def test_dependabot_sends_at_most_two_pull_requests_a_week(project: Path) -> None:
    config = yaml.safe_load((project / ".github" / "dependabot.yml").read_text())
    ecosystems = {update["package-ecosystem"]: update for update in config["updates"]}
    assert set(ecosystems) == {"uv", "docker", "github-actions", "pre-commit"}
    # One group per ecosystem, or a group shared across ecosystems: each group is one PR.
    pull_requests = set(config.get("multi-ecosystem-groups", {}))
    for name, update in ecosystems.items():
        if "multi-ecosystem-group" in update:
            assert update["multi-ecosystem-group"] in pull_requests and update["patterns"] == ["*"], name
        else:
            assert update["schedule"]["interval"] == "weekly", name
            (group,) = update["groups"].values()
            assert group["patterns"] == ["*"], name
            pull_requests.add(f"{name}-group")
    shared = config.get("multi-ecosystem-groups", {}).values()
    assert all(group["schedule"]["interval"] == "weekly" for group in shared)
    assert len(pull_requests) <= 2


@pytest.mark.parametrize(
    "answers", PRE_COMMIT_CASES, ids=lambda answers: ",".join(answers.values()) or "defaults"
)
def test_pre_commit_passes_on_a_fresh_render(tmp_path: Path, answers: dict[str, str]) -> None:
    """The shipped hooks, installed from PyPI (see tests/pre_commit_local.py), on every file."""
    # mypy runs on the Python of .python-version: the build machines have 3.11 (no downloads).
    project = render_project(tmp_path, python_version="3.11", **answers)
    shipped = yaml.safe_load((project / ".pre-commit-config.yaml").read_text())
    local_config = tmp_path / "pre-commit-local.yaml"
    local_config.write_text(yaml.safe_dump(as_local(shipped), sort_keys=False))
    run(["git", "init", "-q"], project)
    run(["git", "add", "-A"], project)
    # mypy runs from the project's locked environment (`uv run --frozen`): only with a uv.lock.
    skip = "" if (project / "uv.lock").is_file() else "mypy"
    command = [str(BIN_DIR / "pre-commit"), "run", "--all-files", "--show-diff-on-failure"]
    caches = {"PRE_COMMIT_HOME": str(PRE_COMMIT_HOME), "MYPY_CACHE_DIR": str(MYPY_CACHE_DIR)}
    result = run([*command, "--config", str(local_config)], project, SKIP=skip, **caches)
    for hook_id in (hook["id"] for repo in shipped["repos"] for hook in repo["hooks"]):
        outcome = "Skipped" if hook_id == skip else "Passed"
        assert re.search(rf"^{hook_id}\.+{outcome}$", result.stdout, re.MULTILINE), result.stdout
