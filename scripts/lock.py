"""Refresh the generated project's uv.lock files, one per dependency set (`make lock`).

    .venv/bin/python scripts/lock.py             # re-lock after a change to pyproject.toml
    .venv/bin/python scripts/lock.py --upgrade   # also move every package to its newest allowed release

The only answer that changes the dependencies is `auth`, so the template keeps one lock
per auth value in `{{cookiecutter.project_slug}}/.locks/uv.auth-<value>.lock`; the
post-generation hook keeps the one that matches and names it `uv.lock`. Each lock is
written by uv itself: the template is rendered with that auth value (and a placeholder
slug), `uv lock` runs in the render, and the project's own name is put back as the
`{{ cookiecutter.project_slug }}` expression. Without `--upgrade`, uv keeps every locked
version that still fits, so a lock changes only where pyproject.toml did.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent.parent
LOCKS = TEMPLATE / "{{cookiecutter.project_slug}}" / ".locks"
OPTION = "auth"
# A slug no dependency is called, so it can be swapped back for the template expression.
PLACEHOLDER = "st-prod-lock-placeholder"
SLUG_EXPRESSION = "{{ cookiecutter.project_slug }}"
UV = Path(sys.executable).parent / "uv"
COOKIECUTTER = Path(sys.executable).parent / "cookiecutter"


def lock_path(value: str) -> Path:
    return LOCKS / f"uv.{OPTION}-{value}.lock"


def relock(value: str, upgrade: bool, workdir: Path) -> str:
    """The lock uv writes for a render with `OPTION=value`, as template text."""
    answers = [f"{OPTION}={value}", f"project_slug={PLACEHOLDER}"]
    render = [str(COOKIECUTTER), str(TEMPLATE), "--no-input", "--output-dir", str(workdir / value), *answers]
    rendered = subprocess.run(render, capture_output=True, text=True)  # the hook's "next steps": noise here
    if rendered.returncode:
        sys.exit(f"rendering {OPTION}={value} failed:\n{rendered.stderr}")
    project = workdir / value / PLACEHOLDER
    # The interpreter running this script: the lock is universal (requires-python), so any
    # supported Python resolves the same, and none has to match .python-version.
    command = [str(UV), "lock", "--python", sys.executable, *(["--upgrade"] if upgrade else [])]
    subprocess.run(command, cwd=project, check=True)
    text = (project / "uv.lock").read_text()
    names = re.findall(rf'^name = "{PLACEHOLDER}"$', text, re.MULTILINE)
    if len(names) != 1 or text.count(PLACEHOLDER) != 1:
        sys.exit(
            f"{OPTION}={value}: expected the project's name once in uv.lock, found {text.count(PLACEHOLDER)}"
        )
    if re.search(r"\{\{|\{%|\{#", text):
        sys.exit(f"{OPTION}={value}: uv.lock holds Jinja syntax; it would not render")
    return text.replace(PLACEHOLDER, SLUG_EXPRESSION)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--upgrade", action="store_true", help="move every package to its newest allowed release"
    )
    args = parser.parse_args()
    values = json.loads((TEMPLATE / "cookiecutter.json").read_text())[OPTION]
    LOCKS.mkdir(exist_ok=True)
    # A new value starts from another value's lock: the hook needs a file to keep, and uv
    # treats the old pins as preferences only.
    seed = next((lock_path(value) for value in values if lock_path(value).exists()), None)
    with tempfile.TemporaryDirectory(prefix="st-prod-lock-") as tmp:
        for value in values:
            started = time.monotonic()
            target = lock_path(value)
            if not target.exists():
                if seed is None:
                    sys.exit(f"no lock in {LOCKS} to start from; restore one with git")
                target.write_text(seed.read_text())
            text = relock(value, args.upgrade, Path(tmp))
            changed = text != target.read_text()
            target.write_text(text)
            packages, state = text.count("\n[[package]]\n"), "updated" if changed else "unchanged"
            took = time.monotonic() - started
            print(f"{target.relative_to(TEMPLATE)}: {packages} packages, {state} ({took:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
