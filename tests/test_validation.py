"""Bad answers: one clear line per field, a non-zero exit and no output folder."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from cookiecutter.exceptions import FailedHookException
from cookiecutter.main import cookiecutter

from .conftest import BIN_DIR, TEMPLATE_DIR

BAD_ANSWERS = [
    ("project_slug", "Bad Slug!", "must be lower-case letters, digits and '-'"),
    ("project_slug", "9lives", "start with a letter"),
    ("project_slug", "trailing-", "not end with '-'"),
    ("project_slug", "a" * 41, "must be at most 40 characters"),
    ("package_name", "my-package", "must be a lower-case Python identifier"),
    ("package_name", "class", "not a keyword"),
    ("author_email", "not-an-email", "must be an e-mail address"),
    ("memory_limit_mib", "lots", "must be a whole number of MiB between 256 and 65536"),
    ("memory_limit_mib", "128", "must be a whole number of MiB between 256 and 65536"),
    ("project_name", 'The "Best" App', "must not contain double quotes"),
    ("project_name", "   ", "must not be empty"),
]


@pytest.mark.parametrize(("field", "value", "rule"), BAD_ANSWERS, ids=lambda v: str(v)[:20])
def test_bad_answer_is_named_and_nothing_is_left(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], field: str, value: str, rule: str
) -> None:
    # Fix the derived names so that only the field under test is wrong.
    answers = {"project_slug": "valid-slug", "package_name": "valid_slug", field: value}
    with pytest.raises(FailedHookException):
        cookiecutter(str(TEMPLATE_DIR), no_input=True, extra_context=answers, output_dir=str(tmp_path))
    errors = [line for line in capfd.readouterr().err.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"ERROR: {field}={value!r}: ")
    assert rule in errors[0]
    assert list(tmp_path.iterdir()) == [], "output folder left behind"


def test_every_bad_field_is_reported_together(cookies: Any, capfd: pytest.CaptureFixture[str]) -> None:
    result = cookies.bake(
        extra_context={"project_slug": "Bad!", "author_email": "x", "memory_limit_mib": "0"}
    )
    assert result.exit_code != 0
    err = capfd.readouterr().err
    for field in ("project_slug", "author_email", "memory_limit_mib"):
        assert f"ERROR: {field}=" in err


def test_command_line_user_sees_the_error_and_no_folder(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            str(BIN_DIR / "cookiecutter"),
            str(TEMPLATE_DIR),
            "--no-input",
            "-o",
            str(tmp_path),
            "project_slug=Bad Slug!",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "ERROR: project_slug='Bad Slug!': must be lower-case letters" in result.stderr
    assert list(tmp_path.iterdir()) == []
