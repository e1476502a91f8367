"""Helpers shared by the template tests."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

TEMPLATE_DIR = Path(__file__).resolve().parent.parent
BIN_DIR = Path(sys.executable).parent
CHOICES: dict[str, list[str]] = {
    name: value
    for name, value in json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text()).items()
    if isinstance(value, list)
}


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(command: list[str], cwd: Path, timeout: float = 900, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure, fail with its output so CI logs show why."""
    result = subprocess.run(
        command,
        cwd=cwd,
        # As a user's shell would: no flags inherited from an outer `make test`.
        env={
            **os.environ,
            "PATH": f"{BIN_DIR}{os.pathsep}{os.environ['PATH']}",
            "MAKEFLAGS": "",
            "MAKELEVEL": "",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, (
        f"{' '.join(command)} exited {result.returncode}\n"
        f"--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-6000:]}"
    )
    return result
