"""Closed-loop load with `wrk`: a generated Lua script sets the POST body and headers, and its
`done()` hook prints one JSON line with the request count, errors and latency percentiles."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.procs import BenchError, spawn

__all__ = ["WrkResult", "WrkScript", "run_wrk", "write_script"]

_MARK = "BENCH-JSON "

_DONE_HOOK = r"""
function done(summary, latency, requests)
  local e = summary.errors
  io.write("\n" .. "BENCH-JSON " .. string.format(
    [[{"requests":%d,"duration_us":%d,"bytes":%d,"errors_connect":%d,"errors_read":%d,]] ..
    [["errors_write":%d,"errors_status":%d,"errors_timeout":%d,"mean_us":%.2f,"max_us":%.2f,]] ..
    [["p50_us":%.2f,"p90_us":%.2f,"p99_us":%.2f,"p999_us":%.2f}]],
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency.mean, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9)) .. "\n")
end
"""


def _lua_string(text: str) -> str:
    """A Lua long-bracket literal that cannot be closed early by `text`."""
    level = 0
    while ("]" + "=" * level + "]") in text:
        level += 1
    return "[" + "=" * level + "[" + text + "]" + "=" * level + "]"


@dataclass(frozen=True)
class WrkScript:
    """The Lua script's path and text; rewritten when missing (a shared /tmp gets cleaned)."""

    path: Path
    text: str

    def ensure(self) -> Path:
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(self.text)
        return self.path


def write_script(path: Path, body: bytes, headers: dict[str, str]) -> WrkScript:
    lines = ['wrk.method = "POST"', f"wrk.body = {_lua_string(body.decode())}"]
    for name, value in headers.items():
        lines.append(f"wrk.headers[ {_lua_string(name)} ] = {_lua_string(value)}")
    script = WrkScript(path, "\n".join(lines) + "\n" + _DONE_HOOK)
    path.write_text(script.text)
    return script


@dataclass(frozen=True)
class WrkResult:
    connections: int
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    mean_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {
            "connections": self.connections, "requests": self.requests,
            "seconds": round(self.seconds, 3), "rps": round(self.rps, 1),
            "errors": self.errors, "p50_ms": self.p50_ms, "p90_ms": self.p90_ms,
            "p99_ms": self.p99_ms, "p999_ms": self.p999_ms, "mean_ms": self.mean_ms,
            "max_ms": self.max_ms,
        }


def run_wrk(url: str, script: WrkScript, *, connections: int, seconds: int,
            cpu_prefix: list[str], threads: int = 1, timeout_s: int = 5) -> WrkResult:
    """Run wrk for `seconds` and parse its JSON line; fails if any request failed."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchError("wrk is not installed (scripts/ensure-tools.sh installs it)")
    command = [
        *cpu_prefix, wrk, f"-t{threads}", f"-c{connections}", f"-d{max(1, seconds)}s",
        f"--timeout={timeout_s}s", "-s", str(script.ensure()), url,
    ]
    process = spawn(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = process.communicate(timeout=seconds + timeout_s + 30)
    except subprocess.TimeoutExpired as exc:
        process.kill()
        process.communicate()
        raise BenchError(f"wrk did not finish: {' '.join(command)}") from exc
    except BaseException:  # interrupted: do not leave wrk behind
        process.kill()
        process.communicate()
        raise
    line = next((ln for ln in stdout.splitlines() if ln.startswith(_MARK)), None)
    if process.returncode != 0 or line is None:
        raise BenchError(f"wrk failed (exit {process.returncode}):\n{stdout}\n{stderr}")
    raw = json.loads(line[len(_MARK):])
    errors = sum(raw[k] for k in raw if k.startswith("errors_"))
    # Any non-2xx/3xx answer spoils the run; a few socket errors (a server closing a
    # keep-alive connection) are tolerated up to one per connection.
    if raw["requests"] == 0 or raw["errors_status"] or errors > max(connections,
                                                                    raw["requests"] // 1000):
        raise BenchError(
            f"wrk saw failed requests against {url} ({errors} errors of {raw['requests']}: "
            + ", ".join(f"{k[7:]}={raw[k]}" for k in raw if k.startswith("errors_") and raw[k])
            + "); the figures would be meaningless")

    def ms(key: str) -> float:
        return round(raw[key] / 1000.0, 4)

    return WrkResult(
        connections=connections, requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6, errors=errors,
        p50_ms=ms("p50_us"), p90_ms=ms("p90_us"), p99_ms=ms("p99_us"), p999_ms=ms("p999_us"),
        mean_ms=ms("mean_us"), max_ms=ms("max_us"),
    )
