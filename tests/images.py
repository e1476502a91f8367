"""Stand-in container images for the container tests, built from Debian packages.

No registry is reachable on the build machines, so `python:3.11-slim`, `postgres:17`
and `prom/prometheus` cannot be pulled. A Debian root filesystem made by
`debootstrap` stands in for the Python base image, and small builds on top of it
(`tests/stand-ins/<name>/Containerfile`) stand in for the PostgreSQL and Prometheus
images with the same interface (entrypoint, environment, paths). Each image is
tagged with a digest of what it is built from and reused while that tag exists.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from .conftest import run

STAND_INS = Path(__file__).resolve().parent / "stand-ins"
SUITE = "bookworm"
# The suite's own Python: the generated project is rendered with this version.
PYTHON_VERSION = "3.11"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
REPOSITORY = "localhost/st-prod-stand-in"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# pip and apt inside builds go through the machine's TLS setup.
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# The uv image the generated Dockerfile copies uv from (`ARG UV_IMAGE=...`).
DEFAULT_UV_IMAGE = re.search(
    r"^ARG UV_IMAGE=(\S+)$",
    (Path(__file__).resolve().parent.parent / "{{cookiecutter.project_slug}}" / "Dockerfile").read_text(),
    re.MULTILINE,
).group(1)
BUILD_FLAGS = ["--format", "docker", "--network", "host"]
if Path(CA_BUNDLE).is_file():
    BUILD_FLAGS += ["--volume", f"{CA_BUNDLE}:{CA_BUNDLE}:ro"]


def require_podman() -> str:
    """The podman executable; a visible skip without it, a failure if CI is set."""
    podman = shutil.which("podman")
    if podman is None:
        message = "podman is not installed (scripts/install-system-deps.sh installs it)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI is set, so container tests must run")
        pytest.skip(message)
    return podman


def podman(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return run(["podman", *args], cwd=Path.cwd(), timeout=timeout)


def compose_nofile() -> str:
    """APP_NOFILE for compose stacks: the generated default (65536), capped by this process's
    hard limit, which the engine cannot exceed (20000 in the build sandbox, where even root
    may not raise it)."""
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return str(65536 if hard == resource.RLIM_INFINITY else min(65536, hard))


def image_exists(tag: str) -> bool:
    return subprocess.run(["podman", "image", "exists", tag], check=False).returncode == 0


def image_size_mb(tag: str) -> float:
    return int(podman("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip()) / 1e6


def debian_mirror() -> str:
    """The machine's Debian mirror (apt sources), so debootstrap uses what apt uses."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        if not path.is_file() or path.suffix not in {".list", ".sources", ""}:
            continue
        for line in path.read_text().splitlines():
            found = re.match(r"\s*(?:deb\s+(?:\[[^]]*\]\s+)?|URIs:\s*)(\S+)", line)
            if found and found.group(1).rstrip("/").endswith("/debian"):
                return found.group(1)
    return DEFAULT_MIRROR


def _digest(*parts: str | bytes) -> str:
    sha = hashlib.sha256()
    for part in parts:
        sha.update(part if isinstance(part, bytes) else part.encode())
    return sha.hexdigest()[:12]


def python_base() -> str:
    """A `python:<version>-slim` stand-in: Debian minbase with python3, venv and CA certificates.

    The uv stand-in comes with it, so every build of the generated Dockerfile finds its
    default `UV_IMAGE` without being told (see `uv_image()`).
    """
    base = _python_base()
    uv_image()
    return base


def uv_image() -> str:
    """The `ghcr.io/astral-sh/uv` stand-in, also tagged as the generated Dockerfile's default
    `UV_IMAGE`: podman then finds that name locally instead of pulling it."""
    tag = stand_in("uv")
    podman("tag", tag, DEFAULT_UV_IMAGE)
    return tag


def _python_base() -> str:
    tag = f"{REPOSITORY}/python:{PYTHON_VERSION}-{SUITE}-{_digest(SUITE, *BASE_PACKAGES)}"
    if image_exists(tag):
        return tag
    if shutil.which("debootstrap") is None:
        pytest.fail("debootstrap is missing; run scripts/install-system-deps.sh")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="st-prod-rootfs-", dir="/var/tmp") as tmp:
        root = Path(tmp) / "root"
        include = ",".join(BASE_PACKAGES)
        run(
            ["debootstrap", "--variant=minbase", f"--include={include}", SUITE, str(root), debian_mirror()],
            cwd=Path(tmp),
        )
        (root / "usr/bin/python").symlink_to("python3")
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (root / cache).glob("*"):
                if path.is_file():
                    path.unlink()
        archive = Path(tmp) / "root.tar"
        run(["tar", "-C", str(root), "-cf", str(archive), "."], cwd=Path(tmp))
        podman(
            "import",
            "--change",
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--change",
            "ENV LANG=C.UTF-8",
            "--change",
            'CMD ["python3"]',
            str(archive),
            tag,
        )
    print(f"\n[images] debootstrapped {tag} in {time.monotonic() - started:.0f} s")
    _remove_other_tags(f"{REPOSITORY}/python", keep=tag)
    return tag


def stand_in(name: str) -> str:
    """`tests/stand-ins/<name>/Containerfile` built on the Python stand-in."""
    base = _python_base()
    folder = STAND_INS / name
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    digest = _digest(base, *(f"{path.relative_to(folder)}\0".encode() + path.read_bytes() for path in files))
    tag = f"{REPOSITORY}/{name}:{digest}"
    if image_exists(tag):
        return tag
    started = time.monotonic()
    podman("build", *BUILD_FLAGS, "--build-arg", f"BASE_IMAGE={base}", "-t", tag, str(folder))
    print(f"\n[images] built {tag} in {time.monotonic() - started:.0f} s")
    _remove_other_tags(f"{REPOSITORY}/{name}", keep=tag)
    return tag


def _remove_other_tags(repository: str, keep: str) -> None:
    """Stand-ins built from older versions of their files: nothing uses them any more."""
    listing = podman("images", "--filter", f"reference={repository}", "--format", "{{.Repository}}:{{.Tag}}")
    for old in set(listing.stdout.split()) - {keep}:
        subprocess.run(["podman", "rmi", old], capture_output=True, check=False)
