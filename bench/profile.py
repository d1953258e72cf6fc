"""`--profile`: sample the gateway with py-spy (--native) while wrk saturates it, and summarise
where its CPU goes (self and inclusive time per function, per library, and the share of the
garbage collector and of SQLite). py-spy is optional
(`.venv/bin/pip install py-spy`); the collapsed stacks are kept for flame-graph tools
(speedscope.app and inferno read them)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.procs import BenchError, spawn
from bench.wrk import WrkScript, run_wrk

__all__ = ["profile_gateway", "summarise_collapsed"]

_ROOT = str(Path(__file__).resolve().parents[1]) + "/"
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

# library buckets, first match wins (matched against the frame's file path)
_BUCKETS = [
    ("tollgate", ("tollgate/", _ROOT + "gateway/", "gateway/")),
    ("prometheus_client", ("prometheus_client",)),
    ("pydantic", ("pydantic",)),
    ("fastapi", ("fastapi/",)),
    ("starlette", ("starlette/",)),
    ("uvicorn/httptools", ("uvicorn/", "httptools")),
    ("aiohttp/yarl/multidict", ("aiohttp/", "yarl/", "multidict/", "aiohappyeyeballs")),
    ("orjson/json", ("orjson", "json/")),
    ("logging", ("logging/",)),
    ("asyncio/uvloop", ("asyncio/", "uvloop")),
]


def _py_spy() -> str | None:
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


def _parse(frame: str) -> tuple[str, str]:
    match = _FRAME.match(frame)
    if match is None:
        return frame, ""
    path = match.group("file")
    return match.group("func"), path


def _short(path: str) -> str:
    for marker in ("site-packages/", "/lib/python3", _ROOT):
        if marker in path:
            path = path.split(marker, 1)[1]
    return path


def _bucket(path: str) -> str:
    # py-spy shortens file names relative to sys.path (`starlette/routing.py`), so match prefixes
    # of the short name as well as substrings of a full one.
    for name, needles in _BUCKETS:
        if any(path.startswith(n) or ("/" + n) in path for n in needles):
            return name
    return "other (stdlib, C)"


# A sample whose innermost frames are one of these is a thread waiting, not working (py-spy's
# --native mode samples idle threads too, e.g. a thread pool waiting for work).
_IDLE = ("_queue_SimpleQueue_get", "PyThread_acquire_lock", "pthread_cond", "epoll_wait",
         "epoll_pwait", "sem_wait", "futex", "select (", "poll (")
_SPECIAL = (("garbage collection", ("gc_collect", "collect_with_callback")),
            ("sqlite (C)", ("sqlite3", "pysqlite")))


_ENTRY = ("<module> ", "main (", "_gateway (")  # the process entry points: on every stack


def _is_python(path: str) -> bool:
    return path.endswith(".py") or path.startswith("<")


def summarise_collapsed(text: str, top: int = 15) -> dict[str, Any]:
    """Self and inclusive sample shares from py-spy's `raw` (collapsed stack) output.

    Native frames (py-spy --native) are charged to the innermost Python frame above them,
    except the garbage collector and SQLite, which get buckets of their own."""
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    ours: Counter[str] = Counter()  # tollgate's own functions, inclusive
    buckets_self: Counter[str] = Counter()
    buckets_incl: Counter[str] = Counter()
    total = idle = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if " (" in f and not f.startswith(("process ",
                                                                               "thread "))]
        if not frames:
            continue
        if any(marker in frame for frame in frames[-4:] for marker in _IDLE):
            idle += count
            continue
        total += count
        special = next((name for name, needles in _SPECIAL
                        if any(n in frame for frame in frames for n in needles)), None)
        parsed = [_parse(frame) for frame in frames]
        python = [(func, path) for func, path in parsed if _is_python(path)]
        seen: set[str] = set()
        seen_buckets: set[str] = set()
        for func, path in python:
            name = f"{func} ({_short(path)})"
            bucket = _bucket(path)
            if name not in seen:
                inclusive[name] += count
                if bucket == "tollgate" and not name.startswith(_ENTRY):
                    ours[name] += count
                seen.add(name)
            if bucket not in seen_buckets:
                buckets_incl[bucket] += count
                seen_buckets.add(bucket)
        if special is not None:
            buckets_incl[special] += count
            buckets_self[special] += count
        if python:
            func, path = python[-1]
            self_time[f"{func} ({_short(path)})" + (f" [{special}]" if special else "")] += count
            if special is None:
                buckets_self[_bucket(path)] += count

    def share(counter: Counter[str], limit: int | None) -> list[dict[str, Any]]:
        return [{"name": name, "share": round(n / total, 4)}
                for name, n in counter.most_common(limit)] if total else []

    return {
        "samples": total,
        "idle_samples_dropped": idle,
        "self_by_library": share(buckets_self, None),
        "inclusive_by_library": share(buckets_incl, None),
        "top_self": share(self_time, top),
        "top_inclusive": share(inclusive, top * 2),
        "tollgate_inclusive": share(ours, top * 2),
    }


def profile_gateway(pid: int, url: str, script: WrkScript, *, seconds: int, connections: int,
                    load_prefix: list[str], out_dir: Path, stamp: str) -> dict[str, Any]:
    """py-spy (on the load CPU) samples the gateway while wrk saturates it."""
    py_spy = _py_spy()
    if py_spy is None:
        raise BenchError("--profile needs py-spy: .venv/bin/pip install py-spy")
    out_dir.mkdir(parents=True, exist_ok=True)
    raw_path = out_dir / f"{stamp}-profile.collapsed"
    # --native: C frames too (the garbage collector, SQLite, syscalls), and whole coroutine
    # stacks; it pauses the process while it samples, so the gateway runs slower meanwhile.
    command = [*load_prefix, py_spy, "record", "--pid", str(pid), "--rate", "200",
               "--duration", str(seconds + 1), "--format", "raw", "--output", str(raw_path),
               "--native"]
    spy = spawn(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(0.5)  # let py-spy attach
        load = run_wrk(url, script, connections=connections, seconds=seconds,
                       cpu_prefix=load_prefix)
    except BaseException:
        spy.kill()
        spy.communicate()
        raise
    try:
        _, err = spy.communicate(timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.communicate()
        raise BenchError("py-spy did not finish") from None
    if spy.returncode != 0 or not raw_path.exists():
        raise BenchError(f"py-spy failed (exit {spy.returncode}): {err.decode(errors='replace')}")
    summary = summarise_collapsed(raw_path.read_text(errors="replace"))
    summary["collapsed_stacks"] = str(raw_path)
    summary["load"] = load.as_dict()
    return summary


def format_profile(profile: dict[str, Any], top: int = 12) -> str:
    lines = [f"\nprofile of the gateway at full load ({profile['samples']} samples, "
             f"{profile['load']['rps']:.0f} req/s while py-spy --native paused it to sample); "
             "stacks: "
             f"{profile['collapsed_stacks']}", "", "CPU by library (self / inclusive):"]
    inclusive = {e["name"]: e["share"] for e in profile["inclusive_by_library"]}
    for entry in profile["self_by_library"]:
        lines.append(f"  {entry['share']:6.1%} / {inclusive.get(entry['name'], 0):6.1%}  "
                     f"{entry['name']}")
    lines += ["", "top functions by self time:"]
    lines += [f"  {e['share']:6.1%}  {e['name']}" for e in profile["top_self"][:top]]
    lines += ["", "the gateway's own functions by inclusive time (with what they call):"]
    lines += [f"  {e['share']:6.1%}  {e['name']}" for e in profile["tollgate_inclusive"][:top * 2]]
    return "\n".join(lines)
