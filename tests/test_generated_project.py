"""The generated project's own lint and test suite pass in its own virtualenv."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cookiecutter.main import cookiecutter

from .conftest import TEMPLATE_DIR, run

COMBINATIONS = [
    pytest.param({}, id="defaults"),
    pytest.param(
        {
            "project_name": "Über Dashboard 2",
            "python_version": "3.11",
            "memory_limit_mib": "512",
            "include_kubernetes": "no",
            "include_github_actions": "no",
            "open_source_license": "Apache-2.0",
            "auth": "oidc",
        },
        id="non-defaults",
    ),
]


@pytest.mark.parametrize("answers", COMBINATIONS)
def test_generated_project_lints_and_passes_its_own_tests(tmp_path: Path, answers: dict[str, str]) -> None:
    project = Path(
        cookiecutter(str(TEMPLATE_DIR), no_input=True, extra_context=answers, output_dir=str(tmp_path))
    )
    run(["make", "install"], cwd=project)
    run(["make", "lint"], cwd=project)
    output = run(["make", "test", "PYTEST_ARGS=-rA"], cwd=project).stdout  # -rA: list every passed test
    summary = pytest_summary(output)
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) >= 20, summary
    assert "failed" not in summary and "error" not in summary, summary
    if answers.get("auth") == "oidc":  # the real provider + Chromium sign-in ran, not skipped
        assert len(re.findall(r"^PASSED tests/test_login\.py::", output, re.MULTILINE)) >= 10, output[-6000:]


def test_generated_project_passes_against_real_postgres(tmp_path: Path) -> None:
    """The whole suite, Postgres-only tests included, on a real primary and streaming replica."""
    project = Path(cookiecutter(str(TEMPLATE_DIR), no_input=True, output_dir=str(tmp_path)))
    run(["make", "install"], cwd=project)
    output = run(["make", "test-postgres", "PYTEST_ARGS=-s"], cwd=project).stdout
    summary = pytest_summary(output)
    assert re.fullmatch(r"\d+ passed", summary), f"expected only passes, got: {summary}"
    # The figures the Postgres tests measured, for the CI log.
    for line in output.splitlines():
        if "peak connections" in line or "executed" in line or "pool exhausted" in line:
            print(line.strip())


def pytest_summary(output: str) -> str:
    return re.findall(r"^=+ (.+) in [\d.]+s", output, re.MULTILINE)[-1]
