"""Time `make demo` from a fresh clone to a healthy app, as a new user runs it.

    .venv/bin/python bench/demo_time.py                 # the working tree's HEAD
    .venv/bin/python bench/demo_time.py --rev 919661e   # any commit, e.g. before a change

Clones the repository into a temporary folder, checks out the revision, runs
`make demo` on a free port and prints the seconds until `/_stcore/health` answers
`ok`, then stops make and the server. Package caches (pip's, uv's) are whatever the
machine has: run it twice to see the warm figure, and say which one you quote.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read() == b"ok"
    except OSError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="HEAD", help="commit to clone (default HEAD)")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="st-prod-demo-") as tmp:
        clone = Path(tmp) / "st-prod"
        subprocess.run(["git", "clone", "--quiet", str(REPOSITORY), str(clone)], check=True)
        subprocess.run(["git", "-C", str(clone), "checkout", "--quiet", args.rev], check=True)
        port = free_port()
        log = Path(tmp) / "make-demo.log"
        env = {key: value for key, value in os.environ.items() if key not in {"MAKEFLAGS", "MAKELEVEL"}}
        started = time.monotonic()
        with log.open("w") as output:
            process = subprocess.Popen(
                ["make", "demo", f"PORT={port}"],
                cwd=clone,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            while not healthy(f"http://127.0.0.1:{port}/_stcore/health"):
                if process.poll() is not None or time.monotonic() - started > args.timeout:
                    print(log.read_text()[-4000:])
                    return 1
                time.sleep(0.25)
            elapsed = time.monotonic() - started
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
    print(f"make demo ({args.rev}) healthy after {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
