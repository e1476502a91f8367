"""Capacity: how many concurrent sessions one app process holds, generated app against naive.

    .venv/bin/python bench/capacity.py            # `make bench-capacity`: prints the table
    .venv/bin/python bench/capacity.py --out docs # also docs/img/benchmarks-capacity.png

Reuses bench/run.py (render, PostgreSQL primary + replica with the demo data, servers,
sampler) and bench/driver.py (Streamlit's websocket protocol). Each server runs in a
memory cgroup of its own limited to 1 GiB (cgroup v1 or v2, created under the root
hierarchy like podman does) when /sys/fs/cgroup is writable; otherwise its RSS is only
reported against 1 GiB. Streamlit's `server.disconnectedSessionTTL` is set short on the
command line (5 s, default 120 s) so a run sees disconnected sessions expire.

1. The floor: four servers at once, one session each, taking turns: 60 reruns of the
   default page on a one-line `st.write` app with the generated app's server fixes
   (bench/floor_serve.py), the same app under plain `streamlit run`, the generated app
   (cached) and the naive app; latency and server CPU per rerun.
2. For each app, one server process: warm up, wait the TTL, note the warm RSS; then for
   N = 2, 5, 10, 20, 40, 80, 120, ...: open N sessions (25 per second, each loads the
   default page), then every session performs one interaction cycle (driver.CYCLE, two
   below N = 10) with think time; RSS while all N are still connected; close them; RSS at
   once and after the TTL. A series stops after a step with a failure or a p95 past
   --stop-ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import statistics
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import driver
import report
import run
from run import MIB, PACKAGE, REPO, Databases, Sampler, Server, log

CGROUP_V1 = Path("/sys/fs/cgroup/memory")
CGROUP_V2 = Path("/sys/fs/cgroup")


class MemoryCgroup:
    """A fresh memory cgroup with a limit; `wrap(command)` starts a command inside it."""

    def __init__(self, name: str, limit_mib: int, state: Path) -> None:
        self.path: Path | None = None
        self.version = 0
        self.reason = ""
        v1 = CGROUP_V1.is_dir() and (CGROUP_V1 / "memory.limit_in_bytes").exists()
        base, limit_file = (CGROUP_V1, "memory.limit_in_bytes") if v1 else (CGROUP_V2, "memory.max")
        path = base / f"st-prod-capacity-{name}-{uuid.uuid4().hex[:8]}"
        try:
            path.mkdir()
            (path / limit_file).write_text(str(limit_mib * MIB))
        except OSError as error:
            with contextlib.suppress(OSError):
                path.rmdir()
            self.reason = f"{base} not writable ({error.strerror})"
            return
        self.path, self.version = path, (1 if v1 else 2)
        # The generated app's memory guard reads <CGROUP_ROOT>/memory/memory.limit_in_bytes
        # (v1) or <CGROUP_ROOT>/memory.max (v2): point it at this cgroup.
        self.guard_root = state / f"cgroup-{name}"
        self.guard_root.mkdir(parents=True, exist_ok=True)
        link = self.guard_root / "memory" if v1 else self.guard_root
        if v1:
            with contextlib.suppress(FileNotFoundError):
                link.unlink()
            link.symlink_to(path)
        else:
            self.guard_root = path

    def wrap(self, command: list[str]) -> list[str]:
        if self.path is None:
            return command
        return ["sh", "-c", f'echo $$ > {self.path}/cgroup.procs && exec "$@"', "sh", *command]

    def peak_mib(self) -> float | None:
        name = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
        with contextlib.suppress(OSError, TypeError, ValueError):
            return int((self.path / name).read_text()) / MIB  # type: ignore[operator]
        return None

    def oom_kills(self) -> int | None:
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        with contextlib.suppress(OSError, TypeError):
            text = (self.path / name).read_text()  # type: ignore[operator]
            found = re.search(r"oom_kill (\d+)", text)
            return int(found.group(1)) if found else 0
        return None

    def remove(self) -> None:
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.rmdir()


def active_sessions(port: int) -> int | None:
    """Streamlit's own count (`/_stcore/metrics`); reading it also expires stale sessions."""
    url = f"http://127.0.0.1:{port}/_stcore/metrics"
    with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
        found = re.search(r"^active_sessions(?:\{[^}]*\})? (\d+(?:\.\d+)?)", text, re.M)
        return int(float(found.group(1))) if found else None
    return None


def percentile(values: list[float], q: int) -> float:
    return report.percentile(sorted(values), q)


# --- the floor ---------------------------------------------------------------------
async def _paired_reruns(servers: list[Server], count: int) -> dict[str, dict]:
    """One session per server; rerun the default page on each in turn, so load swings hit all alike."""
    sessions = [driver.Session(server.port, 0, seed=5) for server in servers]
    processes = [psutil.Process(server.process.pid) for server in servers]  # type: ignore[union-attr]
    latencies: list[list[float]] = [[] for _ in servers]
    try:
        for session in sessions:
            await session.open()
            for _ in range(5):  # warm: the first reruns import, compile and fill caches
                await session.rerun()
        cpu_before = [sum(p.cpu_times()[:2]) for p in processes]
        for _ in range(count):
            for session, values in zip(sessions, latencies, strict=True):
                values.append(1000 * await session.rerun())
        cpu = [sum(p.cpu_times()[:2]) - b for p, b in zip(processes, cpu_before, strict=True)]
    finally:
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
    return {
        server.name: {
            "p50": percentile(values, 50),
            "p95": percentile(values, 95),
            "cpu_ms": 1000 * cpu_s / count,
        }
        for server, values, cpu_s in zip(servers, latencies, cpu, strict=True)
    }


def floor_reruns(servers: list[Server], count: int) -> dict[str, dict]:
    try:
        for server in servers:
            server.start()
        result = asyncio.run(_paired_reruns(servers, count))
    finally:
        for server in servers:
            server.stop()
    for name, r in result.items():
        log(f"[floor] {name}: p50 {r['p50']:.1f} ms, p95 {r['p95']:.1f} ms, CPU {r['cpu_ms']:.1f} ms/rerun")
    return result


# --- the ramp ----------------------------------------------------------------------
async def _step(port: int, n: int, args: argparse.Namespace, rss) -> dict:  # type: ignore[no-untyped-def]
    sessions = [driver.Session(port, i, seed=n * 1000 + i) for i in range(n)]
    loads: list[float] = []
    reruns: list[float] = []
    by_kind: dict[str, list[float]] = {}
    failures: list[str] = []

    async def open_one(i: int, session: driver.Session) -> bool:
        await asyncio.sleep(i / args.open_rate)
        try:
            loads.append(1000 * await session.open())
            return True
        except driver.ScriptError:
            failures.append("load: script error")
        except Exception as error:  # refused (503), reset, timeout: the user sees no app
            failures.append(f"load: {type(error).__name__}")
        return False

    async def interact(session: driver.Session) -> None:
        for index in range(len(driver.CYCLE) * (2 if n < 10 else 1)):
            await asyncio.sleep(session.rng.uniform(args.think_min, args.think_max))
            try:
                latency = await session.act(driver.CYCLE[index % len(driver.CYCLE)])
            except driver.ScriptError:
                failures.append("rerun: script error")
                continue
            except Exception as error:
                failures.append(f"rerun: {type(error).__name__}")
                return
            if latency is not None:
                reruns.append(1000 * latency)
                by_kind.setdefault(driver.CYCLE[index % len(driver.CYCLE)], []).append(1000 * latency)

    opened = await asyncio.gather(*(open_one(i, s) for i, s in enumerate(sessions)))
    started = time.monotonic()
    await asyncio.gather(*(interact(s) for s, ok in zip(sessions, opened, strict=True) if ok))
    interacting_s = time.monotonic() - started
    rss_connected = rss()
    await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
    return {
        "loads": loads,
        "reruns": reruns,
        "by_kind": by_kind,
        "failures": failures,
        "rss_connected": rss_connected,
        "interacting_s": interacting_s,
    }


def ramp(server: Server, cgroup: MemoryCgroup, databases: Databases, args: argparse.Namespace) -> dict:
    log(f"[{server.name}] starting on :{server.port}")
    server.start()
    assert server.process is not None
    process = psutil.Process(server.process.pid)
    steps: list[dict] = []
    try:
        run.warm_up(server.port)
        time.sleep(args.ttl + 2)
        active_sessions(server.port)
        warm = server.rss_mib()
        log(f"[{server.name}] warm RSS {warm:.1f} MiB")
        for n in args.steps:
            before = server.rss_mib()
            cpu_before = sum(process.cpu_times()[:2])
            driver_before = sum(psutil.Process().cpu_times()[:2])
            sampler = Sampler(databases, server.process.pid, time.monotonic())
            sampler.start()
            step_started = time.monotonic()
            result = asyncio.run(_step(server.port, n, args, server.rss_mib))
            step_s = time.monotonic() - step_started
            cpu_s = sum(process.cpu_times()[:2]) - cpu_before
            driver_s = sum(psutil.Process().cpu_times()[:2]) - driver_before
            rss_disconnected = server.rss_mib()
            time.sleep(args.ttl + 2)
            left = active_sessions(server.port)  # also makes Streamlit drop expired sessions
            time.sleep(0.5)
            sampler.stop()
            samples = sampler.samples
            step = {
                "n": n,
                "reruns": len(result["reruns"]),
                "p50": percentile(result["reruns"], 50),
                "p95": percentile(result["reruns"], 95),
                "load_p95": percentile(result["loads"], 95),
                "p95_by_kind": {k: round(percentile(v, 95)) for k, v in result["by_kind"].items()},
                "failures": len(result["failures"]),
                "failure_kinds": sorted(set(result["failures"])),
                "rss_before": before,
                "rss_connected": result["rss_connected"],
                "rss_peak": max((s[3] for s in samples), default=float("nan")),
                "rss_disconnected": rss_disconnected,
                "rss_after_ttl": server.rss_mib(),
                "sessions_after_ttl": left,
                "db_primary": max((s[1] for s in samples), default=0),
                "db_replica": max((s[2] for s in samples), default=0),
                "cpu_ms_per_rerun": 1000 * cpu_s / max(1, len(result["reruns"]) + len(result["loads"])),
                "cpu_busy": cpu_s / step_s,
                "driver_busy": driver_s / step_s,
                "reruns_per_s": len(result["reruns"]) / max(result["interacting_s"], 1e-9),
                "cgroup_peak": cgroup.peak_mib(),
            }
            steps.append(step)
            log(
                f"[{server.name}] N={n}: p50 {step['p50']:.0f} ms, p95 {step['p95']:.0f} ms, "
                f"{step['failures']} failed {step['failure_kinds'][:3]}, RSS {step['rss_connected']:.0f} MiB "
                f"connected / {step['rss_after_ttl']:.0f} after TTL, "
                f"db {step['db_primary']}+{step['db_replica']}, "
                f"CPU {step['cpu_ms_per_rerun']:.1f} ms/rerun, p95 by kind {step['p95_by_kind']}"
            )
            if server.process.poll() is not None:
                log(f"[{server.name}] server exited with {server.process.returncode}")
                break
            if step["failures"] or step["p95"] > args.stop_ms:
                break
        final = server.rss_mib()
    except (psutil.NoSuchProcess, ProcessLookupError):
        final = float("nan")
    finally:
        server.stop()
    return {
        "name": server.name,
        "warm": warm,
        "final": final,
        "steps": steps,
        "oom_kills": cgroup.oom_kills(),
        "cgroup_peak": cgroup.peak_mib(),
        "returncode": server.process.returncode,
    }


# --- figures -----------------------------------------------------------------------
def held(series: dict, budget_ms: float) -> int:
    ok = [s["n"] for s in series["steps"] if s["failures"] == 0 and s["p95"] <= budget_ms]
    return max(ok, default=0)


def slope(series: dict) -> float:
    """MiB per connected session: least squares of RSS (all N connected) over N, N ≥ 10."""
    points = [(s["n"], s["rss_connected"]) for s in series["steps"] if s["n"] >= 10]
    if len(points) < 2:
        return float("nan")
    return statistics.linear_regression([p[0] for p in points], [p[1] for p in points]).slope


def chart(runs: list[dict], budget_ms: float, path: Path) -> None:
    plt = report.plt
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6.5), sharex=True)
    for series, colour in zip(runs, ("tab:red", "tab:blue"), strict=True):
        ns = [s["n"] for s in series["steps"]]
        top.plot(ns, [s["p95"] for s in series["steps"]], "o-", color=colour, label=f"{series['name']} p95")
        failed = [s for s in series["steps"] if s["failures"]]
        top.plot([s["n"] for s in failed], [s["p95"] for s in failed], "x", color="black", markersize=10)
        bottom.plot(ns, [s["rss_connected"] for s in series["steps"]], "o-", color=colour,
                    label=f"{series['name']}, N connected")  # fmt: skip
        bottom.plot(ns, [s["rss_after_ttl"] for s in series["steps"]], "s--", color=colour, alpha=0.5,
                    label=f"{series['name']}, after disconnect + TTL")  # fmt: skip
    top.axhline(budget_ms, color="grey", linestyle=":", label=f"{budget_ms:.0f} ms budget")
    top.set_yscale("log")
    top.set_ylabel("rerun p95 (ms, log)")
    top.set_title("One app process (1 GiB cgroup), N concurrent sessions (x: failures)")
    top.legend(fontsize=8)
    bottom.set_xscale("log", base=2)
    steps = sorted({s["n"] for series in runs for s in series["steps"]})
    bottom.set_xticks(steps, [str(n) for n in steps])
    bottom.set_xlabel("concurrent sessions N")
    bottom.set_ylabel("server RSS (MiB)")
    bottom.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(runs: list[dict], floor: dict, args: argparse.Namespace, load: dict) -> str:
    lines = [
        "| App | N | reruns (per s) | p50 ms | p95 ms | load p95 ms | failed | RSS connected MiB "
        "| RSS after TTL MiB | sessions left | DB conns (primary+replica) | CPU ms/rerun "
        "| server / driver CPU (cores) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for series in runs:
        for s in series["steps"]:
            failed = f"{s['failures']} ({', '.join(s['failure_kinds'])})" if s["failures"] else "0"
            lines.append(
                f"| {series['name']} | {s['n']} | {s['reruns']} ({s['reruns_per_s']:.0f}) | "
                f"{s['p50']:.0f} | {s['p95']:.0f} | "
                f"{s['load_p95']:.0f} | {failed} | {s['rss_connected']:.0f} | {s['rss_after_ttl']:.0f} | "
                f"{s['sessions_after_ttl']} | {s['db_primary']}+{s['db_replica']} | "
                f"{s['cpu_ms_per_rerun']:.1f} | {s['cpu_busy']:.2f} / {s['driver_busy']:.2f} |"
            )
    naive, generated = runs
    ratio = floor["generated"]["p50"] / floor["floor"]["p50"]
    summary = ["", "| Figure | naive | generated |", "|---|---:|---:|"]

    def row(label: str, a: str, b: str) -> None:
        summary.append(f"| {label} | {a} | {b} |")

    row(
        f"Largest N at p95 ≤ {args.budget_ms:.0f} ms, no failure",
        str(held(naive, args.budget_ms)),
        str(held(generated, args.budget_ms)),
    )
    row("MiB per connected session (RSS slope over N ≥ 10)", f"{slope(naive):.2f}", f"{slope(generated):.2f}")
    for series in (naive, generated):
        last = series["steps"][-1] if series["steps"] else None
        series["idle_per_session"] = (
            (last["rss_after_ttl"] - last["rss_before"]) / last["n"] if last else float("nan")
        )
        series["return_pct"] = 100 * (series["final"] - series["warm"]) / series["warm"]
    row(
        "MiB left per disconnected session after the TTL (last step)",
        f"{naive['idle_per_session']:.2f}",
        f"{generated['idle_per_session']:.2f}",
    )
    row("Warm RSS (MiB)", f"{naive['warm']:.0f}", f"{generated['warm']:.0f}")
    row(
        "RSS after all disconnect + TTL (MiB, vs warm)",
        f"{naive['final']:.0f} ({naive['return_pct']:+.0f} %)",
        f"{generated['final']:.0f} ({generated['return_pct']:+.0f} %)",
    )
    row(
        "Peak cgroup charge (MiB) / OOM kills",
        f"{naive['cgroup_peak'] or 0:.0f} / {naive['oom_kills']}",
        f"{generated['cgroup_peak'] or 0:.0f} / {generated['oom_kills']}",
    )
    labels = {
        "floor": "one-line `st.write` app, the generated app's server fixes (bench/floor_serve.py)",
        "floor-plain": "one-line `st.write` app, plain `streamlit run` (no fixes)",
        "generated": "generated app, default page (cached)",
        "naive": "naive app, default page (uncached)",
    }
    summary += [
        "",
        f"Rerun of the page, one session per server taking turns, {args.floor_reruns} reruns each:",
        "",
        "| Server | p50 ms | p95 ms | server CPU ms per rerun |",
        "|---|---:|---:|---:|",
    ]
    summary += [
        f"| {labels[name]} | {f['p50']:.1f} | {f['p95']:.1f} | {f['cpu_ms']:.1f} |"
        for name, f in floor.items()
    ]
    cpu_ratio = floor["generated"]["cpu_ms"] / floor["floor"]["cpu_ms"]
    summary.append(
        f"\nGenerated / floor with the same fixes: {ratio:.2f}x by p50 latency, {cpu_ratio:.2f}x by CPU "
        f"(target ≤ 1.5x). Load average (1, 5, 15 min) before: {load['before']}; after: "
        f"{load['after']}. Memory limit: {load['limit']}. disconnectedSessionTTL: {args.ttl} s."
    )
    return "\n".join(lines + summary)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--steps", default="2,5,10,20,40,80,120,160,320,640", help="session counts, comma-separated"
    )
    parser.add_argument("--think-min", type=float, default=1.0)
    parser.add_argument("--think-max", type=float, default=3.0)
    parser.add_argument("--open-rate", type=float, default=25.0, help="new sessions per second")
    parser.add_argument("--ttl", type=int, default=5, help="server.disconnectedSessionTTL, seconds")
    parser.add_argument("--limit-mib", type=int, default=1024)
    parser.add_argument("--budget-ms", type=float, default=200.0)
    parser.add_argument("--stop-ms", type=float, default=1000.0, help="stop a series past this p95")
    parser.add_argument("--floor-reruns", type=int, default=60)
    parser.add_argument("--build", type=Path, default=REPO / "build/bench")
    parser.add_argument(
        "--out", type=Path, help="write img/benchmarks-capacity.png here (default: build dir)"
    )
    args = parser.parse_args()
    args.steps = [int(n) for n in args.steps.split(",")]
    build = args.build.resolve()
    build.mkdir(parents=True, exist_ok=True)
    out = (args.out or build).resolve()
    load = {"before": os.getloadavg()}

    log("rendering the template ...")
    project, _ = run.render(build)
    python = str(project / ".venv/bin/python")
    ttl = ["--server.disconnectedSessionTTL", str(args.ttl)]
    logs = build / "logs"
    cgroups = {name: MemoryCgroup(name, args.limit_mib, build) for name in ("naive", "generated")}
    enforced = all(c.path for c in cgroups.values())
    load["limit"] = (
        f"{args.limit_mib} MiB enforced by a cgroup v{cgroups['naive'].version} per server"
        if enforced
        else f"NOT enforced ({cgroups['naive'].reason}); RSS reported against {args.limit_mib} MiB"
    )
    try:
        with run.database(project) as (databases, env):
            generated_command = [python, "-m", PACKAGE, *ttl]
            floor_app = [python, "-m", "streamlit", "run", str(REPO / "bench/floor_serve.py"), *ttl]
            plain_floor = [python, "-m", "streamlit", "run", str(REPO / "bench/floor_app.py"), *ttl]
            plain_floor += ["--server.headless", "true", "--server.fileWatcherType", "none"]
            floor = floor_reruns(
                [
                    Server("floor", floor_app, project, env, logs / "capacity-floor.log"),
                    Server("floor-plain", plain_floor, build, env, logs / "capacity-floor-plain.log"),
                    Server(
                        "generated", generated_command, project, env, logs / "capacity-floor-generated.log"
                    ),
                    run.naive_server(python, build, env, logs / "capacity-floor-naive.log", *ttl),
                ],
                args.floor_reruns,
            )
            naive = run.naive_server(python, build, env, logs / "capacity-naive.log", *ttl)
            naive.command = cgroups["naive"].wrap(naive.command)
            guard = cgroups["generated"]
            generated_env = {**env, "CGROUP_ROOT": str(guard.guard_root)} if guard.path else env
            generated = Server(
                "generated",
                guard.wrap(generated_command),
                project,
                generated_env,
                logs / "capacity-generated.log",
            )
            runs = [ramp(naive, cgroups["naive"], databases, args), ramp(generated, guard, databases, args)]
    finally:
        for cgroup in cgroups.values():
            cgroup.remove()
    load["after"] = os.getloadavg()
    load = {k: (", ".join(f"{x:.1f}" for x in v) if isinstance(v, tuple) else v) for k, v in load.items()}
    (build / "capacity.json").write_text(json.dumps({"floor": floor, "runs": runs, "load": load}, indent=1))
    chart(runs, args.budget_ms, out / "img/benchmarks-capacity.png")
    print()
    print(table(runs, floor, args, load))
    return 0


if __name__ == "__main__":
    sys.exit(main())
