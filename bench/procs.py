"""Processes for the benchmark: CPU pinning, the fake upstream, the gateway, and /proc readings."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "BenchError",
    "Pinning",
    "Proc",
    "NoiseMeter",
    "cpu_seconds",
    "disk_write_bytes",
    "free_port",
    "run_at_priority",
    "spawn",
    "memory_kb",
    "start_fake_upstream",
    "start_gateway",
    "upstream_requests",
    "wait_until_quiet",
]

_CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """The benchmark cannot produce a trustworthy figure (a process died, requests failed …)."""


@dataclass(frozen=True)
class Pinning:
    """Which CPU the gateway gets and which one the load generator and fake upstream share."""

    gateway_cpu: int | None
    load_cpu: int | None

    @classmethod
    def choose(cls, enabled: bool = True) -> Pinning:
        cpus = sorted(os.sched_getaffinity(0))
        if not enabled or len(cpus) < 2 or shutil.which("taskset") is None:
            return cls(None, None)
        return cls(cpus[0], cpus[1])

    @property
    def enabled(self) -> bool:
        return self.gateway_cpu is not None

    def prefix(self, cpu: int | None) -> list[str]:
        return ["taskset", "-c", str(cpu)] if cpu is not None else []

    def pin_self(self) -> None:
        """Move this process (the harness and its in-process clients) to the load CPU."""
        if self.load_cpu is not None:
            os.sched_setaffinity(0, {self.load_cpu})


@dataclass
class Proc:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def spawn(command: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
    """Every process the harness starts goes through here (one place to change how)."""
    return subprocess.Popen(command, **kwargs)


def run_at_priority(argv: list[str], nice: int) -> int:
    """Run `python -m bench.run ARGV` as a child in a session of its own whose autogroup has
    niceness `nice`, and wait for it. With autogroup scheduling (Debian's default) a plain
    `nice` only ranks processes within one session, so this is what actually lets the
    benchmark's processes (harness clients, fake, wrk, gateway: all inherit the autogroup)
    win the CPU from other sessions on a shared machine. Negative values need root."""
    env = {**os.environ, "TOLLGATE_BENCH_CHILD": "1"}
    child = spawn([sys.executable, "-m", "bench.run", *argv], env=env, start_new_session=True,
                  cwd=str(Path(__file__).resolve().parents[1]))
    try:
        with open(f"/proc/{child.pid}/autogroup", "w") as handle:
            handle.write(str(nice))
    except OSError as exc:
        print(f"bench: could not set the autogroup's niceness to {nice} ({exc.strerror}); "
              "running at the normal priority", file=sys.stderr)
    # Its own session does not get the terminal's Ctrl-C: pass SIGINT and SIGTERM on.
    def forward(signum: int, _frame: object) -> None:
        child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            return child.wait(timeout=1800)
        except subprocess.TimeoutExpired:
            child.kill()
            return child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_http(url: str, proc: Proc | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise BenchError(f"{proc.name} exited before {url} answered:\n{proc.log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=1.0):
                return
        except urllib.error.HTTPError:
            return  # it answered
        except (urllib.error.URLError, OSError):
            time.sleep(0.05)
    raise BenchError(f"{url} did not answer within {timeout:.0f} s")


def start_fake_upstream(pinning: Pinning, workdir: Path, port: int = 0,
                        first_event_gap_ms: float = 5.0) -> tuple[Proc, str]:
    """Start bench.fake_upstream on the load CPU; returns it and its base URL."""
    log_path = workdir / "fake-upstream.log"
    command = [
        *pinning.prefix(pinning.load_cpu), sys.executable, "-m", "bench.fake_upstream",
        "--port", str(port), "--first-event-gap-ms", str(first_event_gap_ms),
    ]
    # `-m` from the repository root finds `bench`; PYTHONPATH must not name the root, or the
    # folder operator/ would shadow the standard library's `operator` at interpreter start-up.
    root = str(Path(__file__).resolve().parents[1])
    log = open(log_path, "wb")  # noqa: SIM115 - the child owns it
    process = spawn(command, stdout=subprocess.PIPE, stderr=log, cwd=root)
    log.close()
    proc = Proc("fake upstream", process, log_path)
    assert process.stdout is not None
    line = process.stdout.readline().decode(errors="replace").strip()
    process.stdout.close()
    if not line.startswith("fake-upstream listening on "):
        proc.stop()
        raise BenchError(f"the fake upstream did not start ({line!r}):\n{proc.log_tail()}")
    url = "http://" + line.rsplit(" ", 1)[1]
    _wait_http(url + "/healthz", proc, 10)
    return proc, url


def upstream_requests(upstream_url: str) -> int:
    """How many requests the fake upstream has answered so far (its `/__stats`)."""
    with urllib.request.urlopen(upstream_url + "/__stats", timeout=5) as response:
        return int(json.loads(response.read())["requests"])


def gateway_config(upstream_url: str, token: str, model: str, workdir: Path,
                   with_limits: bool = False, store_url: str | None = None) -> dict[str, object]:
    """One `openai-compatible` provider pointing at the fake, one priced model, one key
    (`with_limits`: the key gets a budget and a rate limit too large to bite, so the governed
    path — store reservation and settlement — is measured as well)."""
    key: dict[str, object] = {
        "id": "bench",
        "customerId": "bench",
        "tokenSHA256": hashlib.sha256(token.encode()).hexdigest(),
    }
    if with_limits:
        key["budget"] = {"maxUSD": "1000000", "period": "monthly"}
        key["rateLimit"] = {"requestsPerMinute": 100_000_000}
    return {
        "apiVersion": "tollgate.dev/v1alpha1",
        "kind": "GatewayConfig",
        "store": {"url": store_url} if store_url else {"path": str(workdir / "state.db")},
        "providers": [{
            "name": "fake",
            "type": "openai-compatible",
            "baseURL": upstream_url + "/v1",
            "models": [model],
        }],
        # Priced, so the gateway never takes its "unpriced model" warning path.
        "pricing": [{
            "provider": "fake", "model": model,
            "inputPerMillionUSD": "0.15", "outputPerMillionUSD": "0.60",
        }],
        "virtualKeys": [key],
    }


def start_gateway(pinning: Pinning, workdir: Path, upstream_url: str, token: str,
                  model: str, with_limits: bool = False,
                  store_url: str | None = None) -> tuple[Proc, str]:
    """`python -m tollgate.gateway gateway …` pinned to the gateway CPU; returns it and its URL."""
    config_path = workdir / "tollgate.yaml"
    document = gateway_config(upstream_url, token, model, workdir, with_limits, store_url)
    config_path.write_text(yaml.safe_dump(document, sort_keys=False))
    port = free_port()
    log_path = workdir / "gateway.log"
    command = [
        *pinning.prefix(pinning.gateway_cpu), sys.executable, "-m", "tollgate.gateway",
        "gateway", "--config", str(config_path), "--host", "127.0.0.1", "--port", str(port),
        "--log-level", "warning", "--drain-seconds", "2",
    ]
    log = open(log_path, "wb")  # noqa: SIM115 - the child owns it
    process = spawn(command, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    log.close()
    proc = Proc("gateway", process, log_path)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(url + "/healthz", proc, 30)
    except BaseException:
        proc.stop()
        raise
    return proc, url


def _descendants(pid: int) -> list[int]:
    """pid and every process below it (uvicorn with --workers N forks children)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def memory_kb(pid: int) -> dict[str, int]:
    """Sum of VmRSS and VmHWM (peak RSS) over the process tree, in KiB."""
    totals = {"VmRSS": 0, "VmHWM": 0}
    for member in _descendants(pid):
        try:
            with open(f"/proc/{member}/status") as handle:
                for line in handle:
                    name, _, value = line.partition(":")
                    if name in totals:
                        totals[name] += int(value.split()[0])
        except OSError:
            continue
    return totals


def disk_write_bytes(pid: int) -> int:
    """Bytes the process tree has sent to storage (its files' page-cache writeback), from
    /proc/PID/io `write_bytes`; -1 when unreadable."""
    total = 0
    for member in _descendants(pid):
        try:
            with open(f"/proc/{member}/io") as handle:
                for line in handle:
                    if line.startswith("write_bytes:"):
                        total += int(line.split()[1])
        except OSError:
            return -1
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process tree so far."""
    total = 0
    for member in _descendants(pid):
        try:
            with open(f"/proc/{member}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / _CLK_TCK


def _system_busy_seconds() -> float:
    """CPU time spent by everything on the machine (all CPUs), from /proc/stat."""
    with open("/proc/stat") as handle:
        fields = handle.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _CLK_TCK


def _own_seconds() -> float:
    """CPU time of this process and of its finished children (the wrk runs)."""
    import resource

    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class NoiseMeter:
    """How much CPU *other* processes used while the benchmark ran: machine-wide busy time
    minus the harness, its finished children (wrk) and the live fake upstream and gateway.
    A large share means the figures were disturbed (another test suite was running)."""

    def __init__(self, pids: list[int]) -> None:
        self._pids = pids
        self._start = self._reading()

    def _reading(self) -> tuple[float, float, float]:
        ours = _own_seconds() + sum(cpu_seconds(pid) for pid in self._pids)
        return time.monotonic(), _system_busy_seconds(), ours

    def foreign_cpu_share(self) -> float:
        """Other processes' CPU time per wall second since start (1.0 = one whole CPU)."""
        wall0, busy0, ours0 = self._start
        wall1, busy1, ours1 = self._reading()
        if wall1 <= wall0:
            return 0.0
        return max(0.0, ((busy1 - busy0) - (ours1 - ours0)) / (wall1 - wall0))


def wait_until_quiet(limit_seconds: float, threshold: float = 0.10, quiet_seconds: int = 3) -> bool:
    """Wait (at most `limit_seconds`) until the machine has used less than `threshold` of a CPU
    for `quiet_seconds` seconds in a row; True when it did."""
    deadline = time.monotonic() + limit_seconds
    streak = 0
    while time.monotonic() < deadline:
        busy0, wall0 = _system_busy_seconds(), time.monotonic()
        time.sleep(1.0)
        share = (_system_busy_seconds() - busy0) / (time.monotonic() - wall0)
        streak = streak + 1 if share < threshold else 0
        if streak >= quiet_seconds:
            return True
    return False
