"""Start-up cost of the generated settings module against a pydantic-settings equivalent.

    .venv/bin/python bench/settings_import.py [--runs 15]

Renders the defaults, installs them from uv.lock into a scratch virtualenv, adds
pydantic-settings there, and times, in fresh interpreters (median of --runs), what each
way costs from import to validated settings. SQLAlchemy is imported before the clock
starts in both: the app imports it anyway, and the current module uses its URL parser.
Also prints `-X importtime`'s heaviest pydantic modules, the installed size each way
would add to the image, and pydantic's message for one bad value.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parent.parent
UV = str(Path(sys.executable).parent / "uv")

CURRENT = """
import time, sqlalchemy.engine
started = time.perf_counter()
from streamlit_dashboard.settings import load_settings
load_settings({})
print(time.perf_counter() - started)
"""

# The same 21 settings, bounds and choices as a pydantic-settings model (no URL check,
# no cross-field rules, no one-line error formatting: those would come on top).
PYDANTIC = """
import time, sqlalchemy.engine
started = time.perf_counter()
from pathlib import Path
from typing import Literal
from pydantic import Field
from pydantic_settings import BaseSettings

class Settings(BaseSettings, frozen=True):
    app_env: Literal["production", "development"] = "production"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    database_url: str | None = None
    database_replica_url: str | None = None
    data_dir: Path = Path("data")
    db_pool_size: int = Field(5, ge=1, le=100)
    db_max_overflow: int = Field(5, ge=0, le=100)
    db_pool_timeout: float = Field(10.0, ge=0.1, le=300)
    db_pool_recycle: int = Field(1800, ge=-1)
    db_statement_timeout_ms: int = Field(15000, ge=0)
    db_replica_max_lag_s: float = Field(30.0, ge=0, le=86400)
    db_replica_recheck_s: float = Field(10.0, ge=0.1, le=3600)
    cache_ttl_s: int = Field(300, ge=1)
    cache_max_entries: int = Field(64, ge=1)
    memory_limit_mib: int = Field(1024, ge=128)
    memory_warn_ratio: float = Field(0.70, ge=0.1, le=1.0)
    memory_act_ratio: float = Field(0.85, ge=0.1, le=1.0)
    memory_check_interval_s: float = Field(5.0, ge=0.1, le=600)
    cgroup_root: Path = Path("/sys/fs/cgroup")
    show_system_page: bool = False
    seed_demo_data: bool = False

Settings()
print(time.perf_counter() - started)
"""

BAD_VALUE = """
import os
os.environ["DB_POOL_SIZE"] = "lots"
exec(compile(open(0).read(), "model", "exec"))
"""

PYDANTIC_PACKAGES = (
    "pydantic",
    "pydantic_core",
    "pydantic_settings",
    "annotated_types",
    "typing_inspection",
    "dotenv",
)


def timed(python: Path, code: str, runs: int) -> float:
    # No bytecode written, as in the image (PYTHONDONTWRITEBYTECODE=1); what is compiled is used.
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    command = [str(python), "-c", code]
    samples = [
        float(subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout)
        for _ in range(runs)
    ]
    return statistics.median(samples) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="st-prod-settings-") as tmp:
        project = Path(cookiecutter(str(TEMPLATE), no_input=True, output_dir=tmp))
        quiet = {"check": True, "capture_output": True}
        subprocess.run([UV, "sync", "--frozen", "--no-dev", "--python", sys.executable], cwd=project, **quiet)
        python = project / ".venv" / "bin" / "python"
        subprocess.run(
            [UV, "pip", "install", "--python", str(python), "pydantic-settings"], cwd=project, **quiet
        )
        show = "import pydantic, pydantic_settings as s; print(pydantic.VERSION, s.__version__)"
        versions = subprocess.run(
            [str(python), "-c", show], check=True, capture_output=True, text=True
        ).stdout.split()
        # First as the image runs (its build deletes every __pycache__), then with bytecode.
        current, pydantic = timed(python, CURRENT, args.runs), timed(python, PYDANTIC, args.runs)
        subprocess.run(
            [str(python), "-m", "compileall", "-q", str(project / ".venv"), str(project / "src")], **quiet
        )
        current_pyc, pydantic_pyc = timed(python, CURRENT, args.runs), timed(python, PYDANTIC, args.runs)
        importtime = subprocess.run(
            [str(python), "-X", "importtime", "-c", "import pydantic_settings"],
            capture_output=True,
            text=True,
        ).stderr
        site = next((project / ".venv" / "lib").glob("python*/site-packages"))
        added = sum(
            path.stat().st_size
            for name in PYDANTIC_PACKAGES
            for path in (site / name).rglob("*")
            if path.is_file() and "__pycache__" not in path.parts
        )
        model = PYDANTIC.split("started = time.perf_counter()\n", 1)[1].rsplit("print(", 1)[0]
        error = subprocess.run(
            [str(python), "-c", BAD_VALUE], input=model, capture_output=True, text=True
        ).stderr
    print(
        f"pydantic {versions[0]}, pydantic-settings {versions[1]}; median of {args.runs} fresh interpreters"
    )
    print("import to validated settings         no bytecode (as the image)   with bytecode")
    print(f"current settings.py, load_settings()  {current:8.1f} ms {current_pyc:24.1f} ms")
    print(f"pydantic-settings model, Settings()   {pydantic:8.1f} ms {pydantic_pyc:24.1f} ms")
    print(f"added to the image by pydantic + pydantic-settings:   {added / 1e6:6.1f} MB")
    cumulative = [
        (int(found.group(2)), found.group(3).strip())
        for found in re.finditer(r"import time:\s+(\d+) \|\s+(\d+) \|(.+)", importtime)
    ]
    print("heaviest imports (cumulative, -X importtime):")
    for micros, module in sorted(cumulative, reverse=True)[:5]:
        print(f"  {micros / 1000:6.1f} ms  {module}")
    last_lines = [line for line in error.strip().splitlines() if line.strip()][-4:]
    print("pydantic's message for DB_POOL_SIZE=lots:\n  " + "\n  ".join(last_lines))
    print(
        json.dumps(
            {
                "current_ms": round(current, 1),
                "pydantic_ms": round(pydantic, 1),
                "current_pyc_ms": round(current_pyc, 1),
                "pydantic_pyc_ms": round(pydantic_pyc, 1),
                "added_mb": round(added / 1e6, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
