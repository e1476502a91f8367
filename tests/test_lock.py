"""Every render ships a uv.lock that matches its pyproject.toml, and the image installs it.

The `uv lock --check` runs are offline, against an empty uv cache: a lock that matches
needs no package index to prove it. A stale lock is fixed with the template's
`make lock`. The podman tests build the generated Dockerfile on the stand-in bases
(tests/images.py) and compare what the image holds with what the lock says.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from packaging.markers import Marker
from packaging.utils import canonicalize_name

from . import images
from .conftest import BIN_DIR, CHOICES, run
from .test_render import CASES, bake, case_id
from .tooling import render_project

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


def test_make_install_without_uv_says_how_to_get_it(cookies: Any) -> None:
    project = bake(cookies)
    result = subprocess.run(
        ["make", "install", "UV=uv-not-installed"],
        cwd=project,
        capture_output=True,
        text=True,
        env=os.environ,
    )
    assert result.returncode != 0
    assert "uv is not installed: 'pipx install uv'" in result.stderr, result.stderr
    assert not (project / ".venv").exists()


# --- podman: the image installs exactly the lock ------------------------------------------------

INSTALLED = """
import importlib.metadata, json, os, platform, sys
print(json.dumps({
    "installed": sorted(f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions()),
    "environment": {
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "python_full_version": platform.python_version(),
        "sys_platform": sys.platform, "platform_machine": platform.machine(),
        "platform_system": platform.system(), "os_name": os.name,
        "implementation_name": sys.implementation.name,
        "platform_python_implementation": platform.python_implementation(),
    },
}))
"""


def canonical(requirement: str) -> str:
    name, version = requirement.split("==")
    return f"{canonicalize_name(name)}=={version}"


@pytest.fixture(scope="module")
def locked_build(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, list[str]]]:
    images.require_podman()
    base, uv = images.python_base(), images.uv_image()
    project = render_project(tmp_path_factory.mktemp("lock-image"), python_version=images.PYTHON_VERSION)
    tag = f"localhost/st-prod-test/{project.name}-locked:{uuid.uuid4().hex[:8]}"
    build = [
        "build",
        *images.BUILD_FLAGS,
        "--build-arg",
        f"PYTHON_IMAGE={base}",
        "--build-arg",
        f"UV_IMAGE={uv}",
    ]
    started = time.monotonic()
    images.podman(*build, "-t", tag, str(project))
    print(f"\n[lock] image build: {time.monotonic() - started:.0f} s, {images.image_size_mb(tag):.0f} MB")
    try:
        yield project, tag, build
    finally:
        subprocess.run(["podman", "rmi", "--force", tag], capture_output=True)


def test_the_image_installs_exactly_the_locked_runtime_packages(
    locked_build: tuple[Path, str, list[str]],
) -> None:
    project, tag, _ = locked_build
    found = json.loads(images.podman("run", "--rm", "--entrypoint", "python", tag, "-c", INSTALLED).stdout)
    exported = run(
        [
            UV,
            "export",
            "--frozen",
            "--no-dev",
            "--no-emit-project",
            "--no-hashes",
            "--no-header",
            "--no-annotate",
        ],
        cwd=project,
    ).stdout
    expected = {f"{project.name}==0.1.0"}
    for line in exported.splitlines():
        requirement, _, marker = line.partition(";")
        if not marker.strip() or Marker(marker).evaluate(found["environment"]):
            expected.add(canonical(requirement.strip()))
    installed = {canonical(requirement) for requirement in found["installed"]}
    assert installed == expected, (
        f"only in the image: {sorted(installed - expected)}; only in the lock: {sorted(expected - installed)}"
    )


def test_uv_stays_in_the_builder(locked_build: tuple[Path, str, list[str]]) -> None:
    _, tag, _ = locked_build
    search = "command -v uv uvx; find / -xdev \\( -name uv -o -name uvx \\) -type f"
    found = images.podman(
        "run", "--rm", "--user", "0", "--entrypoint", "sh", tag, "-c", f"{search}; true"
    ).stdout
    assert not found.strip(), f"uv in the final image: {found}"


def test_a_code_change_reuses_the_dependency_layer(locked_build: tuple[Path, str, list[str]]) -> None:
    project, tag, build = locked_build
    page = next((project / "src").glob("*/pages/dashboard.py"))
    page.write_text(page.read_text() + f"\n# a code change {uuid.uuid4().hex}\n")
    rebuilt = f"{tag}-code"
    started = time.monotonic()
    output = images.podman(*build, "-t", rebuilt, str(project)).stdout
    print(f"\n[lock] rebuild after a code change: {time.monotonic() - started:.0f} s")
    subprocess.run(["podman", "rmi", "--force", rebuilt], capture_output=True)
    steps = re.split(r"^\[\d+/\d+\] STEP ", output, flags=re.MULTILINE)
    dependencies = next(step for step in steps if "--no-install-project" in step.split("\n", 1)[0])
    project_install = next(
        step for step in steps if "--no-editable" in step.split("\n", 1)[0] and step != dependencies
    )
    assert "Using cache" in dependencies, dependencies
    assert "Using cache" not in project_install, project_install


def test_the_uv_stand_in_is_the_release_the_dockerfile_names() -> None:
    containerfile = (images.STAND_INS / "uv" / "Containerfile").read_text()
    version = re.search(r"^ARG UV_VERSION=(\S+)$", containerfile, re.MULTILINE)
    assert version and f"ghcr.io/astral-sh/uv:{version.group(1)}" == images.DEFAULT_UV_IMAGE
