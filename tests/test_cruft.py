"""Keeping a generated project in step with the template: `cruft create`, then `cruft update`.

The template is copied into a temporary git repository with two commits: the one the
projects are created from, and a later one that changes a page, the README and adds a
file. Projects are created with the options of the README's `cruft create` line.
Local secrets (.env, secrets.toml) are generated afresh by every render, so "equal to a
fresh render" compares what git tracks; the secrets are checked apart: an update keeps
the project's own and leaves no conflict files.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import BIN_DIR, TEMPLATE_DIR, run

PAGE = Path("src/streamlit_dashboard/pages/dashboard.py")
TEMPLATE_PAGE = Path("{{cookiecutter.project_slug}}/src/{{cookiecutter.package_name}}/pages/dashboard.py")
SECRETS = [Path(".env"), Path(".streamlit/secrets.toml"), Path("deploy/base/secrets.env")]
# `cruft create <template> <options>` as the template README tells users to run it.
README_CREATE = re.search(r"^cruft create \S+(.*)$", (TEMPLATE_DIR / "README.md").read_text(), re.MULTILINE)
GIT_USER = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}


def git(cwd: Path, *args: str) -> str:
    return run(["git", *args], cwd, **GIT_USER).stdout.strip()


def commit_all(cwd: Path, message: str) -> str:
    git(cwd, "add", "-A")
    git(cwd, "commit", "-q", "-m", message)
    return git(cwd, "rev-parse", "HEAD")


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{path}: expected one {old!r}"
    path.write_text(text.replace(old, new))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A git copy of the template (what this checkout tracks, plus new files): (path, old, new)."""
    repo = tmp_path_factory.mktemp("template") / "st-prod"
    listed = git(TEMPLATE_DIR, "ls-files", "--cached", "--others", "--exclude-standard", "-z")
    for name in filter(None, listed.split("\0")):
        if (TEMPLATE_DIR / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(TEMPLATE_DIR / name, repo / name)
    git(repo, "init", "-q", "-b", "main")
    old = commit_all(repo, "The template a project was created from")
    edit(repo / TEMPLATE_PAGE, "DEFAULT_PERIOD_DAYS = 90", "DEFAULT_PERIOD_DAYS = 120")
    edit(repo / "{{cookiecutter.project_slug}}/README.md", "## Quick start\n", "## Quick start\n\nUpdated.\n")
    (repo / "{{cookiecutter.project_slug}}/CHANGES.md").write_text("# {{ cookiecutter.project_name }}\n")
    new = commit_all(repo, "A later template: a page, the README and a new file change")
    return repo, old, new


def cruft(cwd: Path, *args: str) -> str:
    return run([str(BIN_DIR / "cruft"), *args], cwd, **GIT_USER).stdout


def create(template: Path, output: Path, checkout: str | None = None) -> Path:
    output.mkdir()
    assert README_CREATE, "README.md shows no `cruft create` command"
    options = shlex.split(README_CREATE.group(1))
    cruft(
        output,
        "create",
        str(template),
        *options,
        "--no-input",
        *(["--checkout", checkout] if checkout else []),
    )
    (project,) = output.iterdir()
    git(project, "init", "-q", "-b", "main")
    commit_all(project, "Generated")
    return project


def tracked(project: Path) -> dict[str, bytes]:
    git(project, "add", "-A")
    return {name: (project / name).read_bytes() for name in git(project, "ls-files").splitlines()}


def update(project: Path) -> dict[Path, bytes]:
    """`cruft update`, checking it kept the local secrets and left no conflict files."""
    secrets = {path: (project / path).read_bytes() for path in SECRETS}
    output = cruft(project, "update", "--skip-apply-ask")
    assert "Good work!" in output, output
    assert {path: (project / path).read_bytes() for path in SECRETS} == secrets
    leftovers = subprocess.run(
        ["git", "status", "--porcelain", "--ignored"], cwd=project, capture_output=True
    )
    assert b".rej" not in leftovers.stdout and b".orig" not in leftovers.stdout, leftovers.stdout
    return secrets


def test_update_of_an_untouched_project_equals_a_fresh_render(
    tmp_path: Path, template: tuple[Path, str, str]
) -> None:
    repo, old, _ = template
    project = create(repo, tmp_path / "old", checkout=old)
    assert "DEFAULT_PERIOD_DAYS = 90" in (project / PAGE).read_text()
    update(project)
    fresh = create(repo, tmp_path / "fresh")
    assert tracked(project) == tracked(fresh)
    assert "DEFAULT_PERIOD_DAYS = 120" in (project / PAGE).read_text()
    assert (project / "CHANGES.md").is_file()


def test_update_keeps_a_user_edit_in_a_page(tmp_path: Path, template: tuple[Path, str, str]) -> None:
    repo, old, _ = template
    project = create(repo, tmp_path / "old", checkout=old)
    mine = '"""Our sales dashboard, with the regions our team cares about."""'
    edit(
        project / PAGE,
        '"""Sales dashboard: filters in a form, data from cached loaders, an explicit refresh."""',
        mine,
    )
    commit_all(project, "Our own page text")
    update(project)
    page = (project / PAGE).read_text()
    assert page.startswith(mine)
    assert "DEFAULT_PERIOD_DAYS = 120" in page
    assert "Updated." in (project / "README.md").read_text()
