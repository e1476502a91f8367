"""Prune what the answers turned off, create local secrets, print next steps."""

from __future__ import annotations

import re
import secrets
import shutil
from pathlib import Path

PROJECT = Path.cwd()
INCLUDE_KUBERNETES = "{{ cookiecutter.include_kubernetes }}" == "yes"
INCLUDE_GITHUB_ACTIONS = "{{ cookiecutter.include_github_actions }}" == "yes"
OPEN_SOURCE = "{{ cookiecutter.open_source_license }}" != "Proprietary"
OIDC = "{{ cookiecutter.auth }}" == "oidc"
PACKAGE = PROJECT / "src" / "{{ cookiecutter.package_name }}"
# One uv.lock per dependency set, written by the template's `make lock` (scripts/lock.py).
LOCKS = PROJECT / ".locks"
LOCK = LOCKS / "uv.auth-{{ cookiecutter.auth }}.lock"

# A committed `*.example` file holds placeholders such as `change-me-postgres-password`;
# the same placeholder gets the same generated value in every file that uses it.
PLACEHOLDER_RE = re.compile(r"change-me-[a-z0-9-]+")


def prune() -> None:
    unwanted = {
        "deploy": not INCLUDE_KUBERNETES,
        ".github": not INCLUDE_GITHUB_ACTIONS,
        ".github/workflows/kind.yml": not INCLUDE_KUBERNETES,
        "LICENSE": not OPEN_SOURCE,
        str(PACKAGE / "auth.py"): not OIDC,
        str(PACKAGE / "sign_in_routes.py"): not OIDC,
        "tests/test_auth.py": not OIDC,
        "tests/test_login.py": not OIDC,
        "tests/login_support.py": not OIDC,
    }
    for name, remove in unwanted.items():
        path = PROJECT / name
        if remove and path.is_dir():
            shutil.rmtree(path)
        elif remove and path.exists():
            path.unlink()
    # Deepest folders first, so a folder emptied by pruning its children goes too.
    for folder in sorted(PROJECT.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def keep_matching_lock() -> None:
    LOCK.replace(PROJECT / "uv.lock")
    shutil.rmtree(LOCKS)


def write_local_secrets() -> list[Path]:
    generated: dict[str, str] = {}

    def fill(match: re.Match[str]) -> str:
        return generated.setdefault(match.group(0), secrets.token_urlsafe(24))

    written = []
    for example in sorted(PROJECT.rglob("*.example")):
        target = example.with_suffix("")
        if target.exists():
            continue
        target.write_text(PLACEHOLDER_RE.sub(fill, example.read_text()))
        target.chmod(0o600)
        written.append(target.relative_to(PROJECT))
    return written


def main() -> None:
    keep_matching_lock()
    prune()
    written = write_local_secrets()
    print()
    print("Created {{ cookiecutter.project_slug }}/ with fresh local secrets in:")
    for path in written:
        print(f"  {path}  (gitignored)")
    print()
    print("Next steps:")
    print("  cd {{ cookiecutter.project_slug }}")
    print("  make install      # .venv with the app and dev tools from uv.lock (needs uv)")
    print("  make run          # http://localhost:8501 on the embedded SQLite database")
    print("  make test         # the project's own test suite")
    print("  make up           # https://localhost: Caddy, app, PostgreSQL primary/replica, Prometheus")
{%- if cookiecutter.include_kubernetes == "yes" %}
    print("  kubectl apply -k deploy/  # see README.md, 'Deploy to Kubernetes'")
{%- endif %}


if __name__ == "__main__":
    main()
