"""Every render ships a uv.lock that matches its pyproject.toml (`uv lock --check`).

The checks run offline, against an empty uv cache: a lock that matches needs no
package index to prove it. A stale lock is fixed with the template's `make lock`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from .conftest import BIN_DIR, CHOICES
from .test_render import CASES, bake, case_id

UV = str(BIN_DIR / "uv")
# Packages only auth=oidc may bring (Streamlit's st.login).
OIDC_ONLY = {"authlib"}


def uv_lock_check(project: Path, cache: Path | None) -> subprocess.CompletedProcess[str]:
    """Offline against an empty cache when given one; else online with the user's cache."""
    # The lock is universal (requires-python), so the test interpreter can check it
    # whatever .python-version names.
    command = [UV, "lock", "--check", "--python", sys.executable, *(["--offline"] if cache else [])]
    env = {**os.environ, **({"UV_CACHE_DIR": str(cache)} if cache else {})}
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)


def locked_packages(project: Path) -> dict[str, dict[str, Any]]:
    lock = tomllib.loads((project / "uv.lock").read_text())
    return {package["name"]: package for package in lock["package"]}


@pytest.mark.parametrize("answers", CASES, ids=case_id)
def test_every_render_ships_a_lock_that_matches_it(
    cookies: Any, answers: dict[str, str], tmp_path: Path
) -> None:
    project = bake(cookies, **answers)
    assert not (project / ".locks").exists(), "the hook leaves only the matching lock"
    result = uv_lock_check(project, tmp_path / "uv-cache")
    assert result.returncode == 0, f"uv.lock does not match pyproject.toml; run `make lock`\n{result.stderr}"
    packages = locked_packages(project)
    own = packages[project.name]
    assert own["source"] == {"editable": "."}, "the project's own entry carries its slug"
    oidc = answers.get("auth") == "oidc"
    for name in OIDC_ONLY:
        assert (name in packages) is oidc, f"{name} locked with auth={answers.get('auth', 'none')}"
    lock = tomllib.loads((project / "uv.lock").read_text())
    python = answers.get("python_version", CHOICES["python_version"][0])
    assert lock["requires-python"] == ">=3.11" and int(python.split(".")[1]) >= 11


def test_a_changed_dependency_fails_the_check(cookies: Any) -> None:
    """Online (PyPI): offline, any re-resolution fails on the first package not cached."""
    project = bake(cookies)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('"psutil>=5.9,<8",', '"psutil>=5.9,<8",\n    "httpx>=0.27",')
    )
    result = uv_lock_check(project, cache=None)
    assert result.returncode != 0, "uv lock --check passed on a lock that lacks a new dependency"
    assert "needs to be updated" in result.stderr, result.stderr


def test_dev_tools_are_a_dependency_group_not_an_extra(cookies: Any) -> None:
    pyproject = tomllib.loads((bake(cookies) / "pyproject.toml").read_text())
    assert "optional-dependencies" not in pyproject["project"]
    dev = {requirement.split(">")[0].split("=")[0] for requirement in pyproject["dependency-groups"]["dev"]}
    assert {"pytest", "ruff", "mypy"} <= dev
