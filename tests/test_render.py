"""Render every value of every option; each result is clean, linted and parses."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import BIN_DIR, CHOICES, run

# The default render, then one render per non-default value of each choice option,
# then the free-text answers that most often break templates.
CASES: list[dict[str, str]] = [{}]
CASES += [{name: value} for name, values in CHOICES.items() for value in values[1:]]
CASES += [
    {"project_name": "Über Dashboard 2"},
    {"memory_limit_mib": "512"},
    {"include_kubernetes": "no", "include_github_actions": "no", "open_source_license": "Proprietary"},
]
LEFTOVER = re.compile(r"\{\{|\{%|cookiecutter", re.IGNORECASE)
# Go-template expressions that belong in the output: Prometheus alert annotations
# ({{ $labels.instance }}, {{ $value | humanizePercentage }}) and Grafana legends ({{engine}}).
GO_TEMPLATE = re.compile(r"\{\{ ?(\$[^{}]*|[a-z_]+) ?\}\}")
# GitHub Actions expressions (${{ github.ref }}) in the workflows, which are copied unrendered.
GITHUB_EXPRESSION = re.compile(r"\$\{\{[^{}]*\}\}")


def case_id(case: dict[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in case.items()) or "defaults"


def bake(cookies: Any, **answers: str) -> Path:
    result = cookies.bake(extra_context=answers)
    assert result.exit_code == 0, result.exception
    return Path(result.project_path)


def text_files(project: Path) -> list[Path]:
    return [path for path in project.rglob("*") if path.is_file() and ".git" not in path.parts]


@pytest.mark.parametrize("answers", CASES, ids=case_id)
def test_render_is_clean_linted_and_parses(cookies: Any, answers: dict[str, str]) -> None:
    project = bake(cookies, **answers)
    for path in text_files(project):
        leftovers = LEFTOVER.findall(GO_TEMPLATE.sub("", GITHUB_EXPRESSION.sub("", path.read_text())))
        assert not leftovers, f"{path.relative_to(project)} still has template text: {leftovers}"
        if path.suffix in {".yaml", ".yml"}:
            list(yaml.safe_load_all(path.read_text()))
        elif path.suffix == ".toml":
            tomllib.loads(path.read_text())
        elif path.suffix == ".json":
            json.loads(path.read_text())
    run([str(BIN_DIR / "ruff"), "check", "."], cwd=project)
    run([str(BIN_DIR / "ruff"), "format", "--check", "."], cwd=project)
    workflows = sorted(str(path) for path in project.glob(".github/workflows/*.yml"))
    if workflows:
        schema = ["--builtin-schema", "vendor.github-workflows"]
        run([str(BIN_DIR / "check-jsonschema"), *schema, *workflows], project)
    assert not [path for path in project.rglob("*") if path.is_dir() and not any(path.iterdir())]


def test_unicode_name_derives_dns_slug_and_package(cookies: Any) -> None:
    project = bake(cookies, project_name="Über Dashboard 2")
    assert project.name == "uber-dashboard-2"
    assert (project / "src" / "uber_dashboard_2" / "serve.py").is_file()


def test_long_name_gives_a_slug_of_at_most_40_characters(cookies: Any) -> None:
    project = bake(cookies, project_name="Quarterly Revenue And Churn Analytics For The Northern Region")
    assert len(project.name) <= 40
    assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", project.name)


def test_memory_limit_reaches_the_app_settings(cookies: Any) -> None:
    project = bake(cookies, memory_limit_mib="768")
    settings = (project / "src" / "streamlit_dashboard" / "settings.py").read_text()
    assert 'read.integer("MEMORY_LIMIT_MIB", 768,' in settings
    assert "MEMORY_LIMIT_MIB=768" in (project / ".env").read_text()


def test_oidc_wires_login_and_a_fresh_cookie_secret(cookies: Any) -> None:
    project = bake(cookies, auth="oidc")
    assert (project / "src" / "streamlit_dashboard" / "auth.py").is_file()
    secrets = tomllib.loads((project / ".streamlit" / "secrets.toml").read_text())
    assert len(secrets["auth"]["cookie_secret"]) >= 24
    assert "change-me" not in secrets["auth"]["cookie_secret"]
    assert any(
        dep.startswith("streamlit[auth]")  # Authlib and httpx for st.login
        for dep in tomllib.loads((project / "pyproject.toml").read_text())["project"]["dependencies"]
    )


def test_python_version_sets_the_runtime(cookies: Any) -> None:
    project = bake(cookies, python_version="3.13")
    assert (project / ".python-version").read_text().strip() == "3.13"


@pytest.mark.parametrize("license_name", CHOICES["open_source_license"])
def test_license(cookies: Any, license_name: str) -> None:
    project = bake(cookies, open_source_license=license_name)
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    if license_name == "Proprietary":
        assert not (project / "LICENSE").exists()
        assert "license" not in pyproject["project"]
    else:
        assert pyproject["project"]["license"] == license_name
        first_line = (project / "LICENSE").read_text().strip().splitlines()[0]
        assert {"MIT": "MIT License", "BSD-3-Clause": "BSD 3-Clause License"}.get(
            license_name, "Apache License"
        ) in first_line


def test_turned_off_parts_leave_no_trace(cookies: Any) -> None:
    project = bake(cookies, include_kubernetes="no", include_github_actions="no", auth="none")
    assert not (project / "deploy").exists()
    assert not (project / ".github").exists()
    assert not (project / "src" / "streamlit_dashboard" / "auth.py").exists()
    assert not (project / "tests" / "test_auth.py").exists()
    assert not (project / "tests" / "test_login.py").exists()
    assert not (project / "tests" / "login_support.py").exists()
    assert not (project / "src" / "streamlit_dashboard" / "sign_in_routes.py").exists()
    for path in text_files(project):
        text = path.read_text()
        assert "deploy/" not in text or path.name == ".gitignore", path
        assert "kubectl" not in text, path
        assert ".github" not in text, path
        assert "st.login" not in text and "AUTH_" not in text and "authlib" not in text, path
        assert "streamlit[auth]" not in text and "oidc-provider-mock" not in text, path


def test_local_secrets_are_fresh_and_gitignored(cookies: Any) -> None:
    first = bake(cookies)
    second = bake(cookies, project_name="Second App")
    for project in (first, second):
        env = (project / ".env").read_text()
        assert "change-me" not in env
        assert (project / ".streamlit" / "secrets.toml").is_file()
        assert (project / ".env").stat().st_mode & 0o077 == 0, ".env must be private to its owner"

    def password(project: Path) -> str:
        return re.search(r"^POSTGRES_PASSWORD=(\S+)$", (project / ".env").read_text(), re.MULTILINE).group(1)

    assert password(first) != password(second)
    assert len(password(first)) >= 24
    subprocess.run(["git", "init", "-q"], cwd=first, check=True)
    subprocess.run(["git", "add", "-A"], cwd=first, check=True)
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=first, check=True, capture_output=True, text=True
    ).stdout.splitlines()
    assert ".env" not in tracked and ".streamlit/secrets.toml" not in tracked
    assert ".env.example" in tracked and ".streamlit/secrets.toml.example" in tracked
