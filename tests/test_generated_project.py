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
    result = run(["make", "test"], cwd=project)
    summary = re.findall(r"^=+ (.+) in [\d.]+s", result.stdout, re.MULTILINE)[-1]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) >= 20, summary
    assert "failed" not in summary and "error" not in summary, summary
