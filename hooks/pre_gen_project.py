"""Validate every answer before cookiecutter writes anything.

Each problem is reported on its own line naming the field, the value and the
rule. Exiting non-zero makes cookiecutter remove the half-made output folder.
"""

from __future__ import annotations

import json
import keyword
import re
import sys

ANSWERS: dict[str, str] = {
    "project_name": json.loads({{ cookiecutter.project_name | tojson | tojson }}),
    "project_slug": json.loads({{ cookiecutter.project_slug | tojson | tojson }}),
    "package_name": json.loads({{ cookiecutter.package_name | tojson | tojson }}),
    "description": json.loads({{ cookiecutter.description | tojson | tojson }}),
    "author_name": json.loads({{ cookiecutter.author_name | tojson | tojson }}),
    "author_email": json.loads({{ cookiecutter.author_email | tojson | tojson }}),
    "memory_limit_mib": json.loads({{ cookiecutter.memory_limit_mib | tojson | tojson }}),
}

SLUG_MAX_LENGTH = 40
# DNS-1035 label: names Services, Deployments and the CloudNativePG cluster.
SLUG_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
PACKAGE_RE = re.compile(r"^[a-z][a-z0-9_]*$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
FORBIDDEN_IN_TEXT = ('"', "\\", "\n", "\r")
MEMORY_MIN_MIB = 256  # below this Streamlit itself does not start reliably
MEMORY_MAX_MIB = 65536


def problems(answers: dict[str, str]) -> list[str]:
    found: list[str] = []

    def bad(field: str, rule: str) -> None:
        found.append(f"{field}={answers[field]!r}: {rule}")

    if not answers["project_name"].strip():
        bad("project_name", "must not be empty")
    # Free text lands inside Python, TOML and YAML strings of the generated project.
    for field in ("project_name", "description", "author_name"):
        if any(char in answers[field] for char in FORBIDDEN_IN_TEXT):
            bad(field, "must not contain double quotes, backslashes or line breaks")

    slug = answers["project_slug"]
    if len(slug) > SLUG_MAX_LENGTH:
        bad("project_slug", f"must be at most {SLUG_MAX_LENGTH} characters")
    elif not SLUG_RE.match(slug):
        bad(
            "project_slug",
            "must be lower-case letters, digits and '-', start with a letter and "
            "not end with '-' (a DNS label), e.g. 'sales-dashboard'",
        )

    package = answers["package_name"]
    if not PACKAGE_RE.match(package) or keyword.iskeyword(package):
        bad(
            "package_name",
            "must be a lower-case Python identifier (letters, digits, '_'; "
            "starting with a letter; not a keyword), e.g. 'sales_dashboard'",
        )

    if not EMAIL_RE.match(answers["author_email"]):
        bad("author_email", "must be an e-mail address like 'name@example.com'")

    memory = answers["memory_limit_mib"]
    if not memory.isdigit() or not MEMORY_MIN_MIB <= int(memory) <= MEMORY_MAX_MIB:
        bad(
            "memory_limit_mib",
            f"must be a whole number of MiB between {MEMORY_MIN_MIB} and {MEMORY_MAX_MIB}",
        )
    return found


def main() -> int:
    found = problems(ANSWERS)
    for line in found:
        print(f"ERROR: {line}", file=sys.stderr)
    if found:
        print("Nothing was generated. Fix the answers above and run again.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
