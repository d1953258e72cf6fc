"""`make bench`: the gateway's added latency, throughput, streaming overhead and memory, measured
next to the fast fake upstream alone.

    python -m bench.run                  # full run (~3 minutes)
    python -m bench.run --quick          # smoke-sized run (~15 s)
    python -m bench.run --gateway-url http://127.0.0.1:4000 --upstream-port 18080 \\
        --api-key sk-peer --model bench-model --gateway-pid 1234   # a peer gateway

Layout (TESTING.md, "Benchmarks"): the gateway is pinned to one CPU with `taskset`; the fake
upstream, wrk and this harness share the other. Each round measures the upstream alone and
the gateway back to back (alternating which goes first), and the figures are medians over the
rounds:

  a) latency at 1 connection (wrk, closed loop): p50/p99;
  b) latency at a fixed 20 req/s (open loop, asyncio client): p50/p99;
  c) throughput at 50 connections (wrk): req/s, and the gateway's CPU time per request;
  d) streaming: time to the first SSE `data:` event (sequential requests);
  e) the gateway's resident memory (VmRSS of its process tree) after the load.

Results are printed as a table and written as JSON to bench/results/<timestamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import clients
from bench.procs import (
    BenchError,
    NoiseMeter,
    Pinning,
    Proc,
    cpu_seconds,
    disk_write_bytes,
    memory_kb,
    run_at_priority,
    start_fake_upstream,
    start_gateway,
    upstream_requests,
    wait_until_quiet,
)
from bench.profile import format_profile, profile_gateway
from bench.wrk import run_wrk, write_script

__all__ = ["TARGETS", "main", "run_benchmark"]

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_TOKEN = "tg-bench-key"
DEFAULT_MODEL = "bench-model"
NOISY_SHARE = 0.10  # other processes using more than this share of a CPU disturb the figures

FULL = {"rounds": 5, "duration": 3, "rate_duration": 10.0, "stream_requests": 200,
        "warmup": 3}
QUICK = {"rounds": 1, "duration": 1, "rate_duration": 2.0, "stream_requests": 20,
         "warmup": 1}

# (figure path in the summary, comparison, limit, description) — issue 2, "Targets".
TARGETS: list[tuple[str, str, float, str]] = [
    ("latency_1conn.added_p50_ms", "<=", 1.0, "added p50 at 1 connection <= 1 ms"),
    ("fixed_rate.added_p99_ms", "<=", 5.0, "added p99 at 20 req/s <= 5 ms"),
    ("throughput.gateway_rps", ">=", 1500.0, "throughput on one core >= 1,500 req/s"),
    ("streaming.added_p50_ms", "<=", 2.0, "added to the first streamed event <= 2 ms"),
    ("memory.gateway_rss_mb", "<", 150.0, "gateway RSS < 150 MB"),
]


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 4)


_FILLER = ("The quick brown fox jumps over the lazy dog while the gateway counts every token "
           "it forwards. ")


def _bodies(model: str, prompt_chars: int = 0) -> tuple[bytes, bytes]:
    """The chat request (plain and streamed); `prompt_chars` pads the user message with prose
    to about that many characters (real prompts are kilobytes; the default is tiny)."""
    filler = (_FILLER * (prompt_chars // len(_FILLER) + 1))[:prompt_chars]
    messages = [{"role": "system", "content": "You are a terse assistant."},
                {"role": "user", "content": filler + "Say hello in five words."}]
    plain = json.dumps({"model": model, "messages": messages, "max_tokens": 16},
                       separators=(",", ":")).encode()
    stream = json.dumps({"model": model, "messages": messages, "max_tokens": 16, "stream": True,
                         "stream_options": {"include_usage": True}},
                        separators=(",", ":")).encode()
    return plain, stream


def _runner() -> asyncio.Runner:
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


def _get(tree: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


def evaluate_targets(summary: dict[str, Any]) -> list[dict[str, Any]]:
    checks: dict[str, Callable[[float, float], bool]] = {
        "<=": lambda v, lim: v <= lim, ">=": lambda v, lim: v >= lim,
        "<": lambda v, lim: v < lim,
    }
    out = []
    for path, op, limit, text in TARGETS:
        value = _get(summary, path)
        ok = None if value is None else checks[op](value, limit)
        out.append({"figure": path, "target": text, "value": value, "limit": limit,
                    "comparison": op, "met": ok})
    return out


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    if args.wait_quiet > 0:
        _log(f"waiting up to {args.wait_quiet:.0f} s for the machine to be quiet")
        if not wait_until_quiet(args.wait_quiet):
            _log("the machine stayed busy; measuring anyway (see 'other processes' CPU')")
    pinning = Pinning.choose(enabled=not args.no_pin)
    pinning.pin_self()
    load_prefix = pinning.prefix(pinning.load_cpu)
    token = args.api_key or DEFAULT_TOKEN
    model = args.model or DEFAULT_MODEL
    body, stream_body = _bodies(model, args.prompt_chars)
    started_wall = time.time()
    started = time.monotonic()
    estimate = args.rounds * (4 * (args.duration + 0.3) + 2 * args.rate_duration
                              + 2 * args.stream_requests * 0.008) + args.warmup + 4
    _log(f"{args.rounds} round(s), about {estimate:.0f} s; pinning: "
         + (f"gateway CPU {pinning.gateway_cpu}, fake upstream + load CPU {pinning.load_cpu}"
            if pinning.enabled else "off"))

    procs: list[Proc] = []
    workspace = tempfile.TemporaryDirectory(prefix="tgbench-", ignore_cleanup_errors=True)
    with workspace as tmp, _runner() as runner:
        workdir = Path(tmp)
        try:
            fake, upstream_url = start_fake_upstream(
                pinning, workdir, port=args.upstream_port,
                first_event_gap_ms=args.first_event_gap_ms)
            procs.append(fake)
            _log(f"fake upstream on {upstream_url} (pid {fake.pid})")
            gateway_pid = args.gateway_pid
            if args.gateway_url:
                gateway_url = args.gateway_url.rstrip("/")
                _log(f"peer gateway at {gateway_url}: it must route model {model!r} to "
                     f"{upstream_url}/v1")
            else:
                gateway, gateway_url = start_gateway(pinning, workdir, upstream_url, token, model,
                                                     with_limits=args.with_limits,
                                                     store_url=args.store_url)
                procs.append(gateway)
                gateway_pid = gateway.pid
                _log(f"gateway on {gateway_url} (pid {gateway.pid})")
            try:
                results = _measure(args, runner, workdir, pinning, load_prefix, token, body,
                                   stream_body, upstream_url, gateway_url, gateway_pid, fake)
            except BenchError as exc:
                logs = "\n".join(f"--- {p.name} log (last lines) ---\n{p.log_tail(20)}"
                                 for p in procs if p.log_tail(20))
                raise BenchError(f"{exc}\n{logs}" if logs else str(exc)) from None
        finally:
            for proc in reversed(procs):
                proc.stop()
    results["meta"].update({
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started_wall)),
        "wall_seconds": round(time.monotonic() - started, 1),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpus_online": os.cpu_count(),
        "pinning": {"gateway_cpu": pinning.gateway_cpu, "load_cpu": pinning.load_cpu},
        "settings": {k: getattr(args, k) for k in (
            "rounds", "duration", "rate", "rate_duration", "stream_requests", "connections",
            "warmup", "first_event_gap_ms", "with_limits", "nice", "prompt_chars",
            "store_url")},
        "gateway": ("peer " + args.gateway_url if args.gateway_url else
                    "tollgate (this repo)" + (", key with budget + rate limit"
                                              if args.with_limits else ", key without limits")),
        "git": _git_state(),
    })
    return results


def _measure(args: argparse.Namespace, runner: asyncio.Runner, workdir: Path, pinning: Pinning,
             load_prefix: list[str], token: str, body: bytes, stream_body: bytes,
             upstream_url: str, gateway_url: str, gateway_pid: int | None,
             fake: Proc) -> dict[str, Any]:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    targets = {
        "upstream": upstream_url + "/v1/chat/completions",
        "gateway": gateway_url + "/v1/chat/completions",
    }
    script = write_script(workdir / "post.lua", body, headers)

    checks = {name: runner.run(clients.check_endpoint(url, headers, body, stream_body))
              for name, url in targets.items()}
    _log(f"both targets answer; gateway headers: {checks['gateway']['headers']}")

    # Warm-up: the gateway's pools, caches and lazy imports, at full concurrency.
    run_wrk(targets["gateway"], script, connections=args.connections, seconds=args.warmup,
            cpu_prefix=load_prefix)
    ours = [fake.pid, *([gateway_pid] if gateway_pid else [])]
    whole_run = NoiseMeter(ours)

    rounds: list[dict[str, Any]] = []
    pooled: dict[str, dict[str, list[float]]] = {
        phase: {"upstream": [], "gateway": []} for phase in ("fixed_rate", "streaming")}
    for index in range(args.rounds):
        order = ["upstream", "gateway"] if index % 2 == 0 else ["gateway", "upstream"]
        one: dict[str, Any] = {"latency_1conn": {}, "fixed_rate": {}, "throughput": {},
                               "streaming": {}}
        round_noise = NoiseMeter(ours)
        for name in order:
            one["latency_1conn"][name] = run_wrk(
                targets[name], script, connections=1, seconds=args.duration,
                cpu_prefix=load_prefix).as_dict()
        for name in order:
            samples = clients.fixed_rate(
                targets[name], headers, body, args.rate, args.rate_duration, runner)
            one["fixed_rate"][name] = samples.summary()
            pooled["fixed_rate"][name] += samples.latencies_ms
        for name in order:
            before_fake = cpu_seconds(fake.pid)
            before_gw = cpu_seconds(gateway_pid) if gateway_pid else None
            written = disk_write_bytes(gateway_pid) if gateway_pid else -1
            seen = upstream_requests(upstream_url)
            wall = time.monotonic()
            result = run_wrk(targets[name], script, connections=args.connections,
                             seconds=args.duration, cpu_prefix=load_prefix).as_dict()
            wall = time.monotonic() - wall
            if name == "gateway":
                # Every answer the gateway gave must have come from the upstream.
                forwarded = upstream_requests(upstream_url) - seen - 1
                result["upstream_requests_seen"] = forwarded
                if forwarded < 0.99 * result["requests"]:
                    raise BenchError(
                        f"the gateway answered {result['requests']} requests but the upstream "
                        f"saw only {forwarded}; it is not forwarding them")
            result["fake_upstream_cpu_share"] = round(
                (cpu_seconds(fake.pid) - before_fake) / wall, 3)
            if name == "gateway" and before_gw is not None and gateway_pid:
                used = cpu_seconds(gateway_pid) - before_gw
                result["gateway_cpu_share"] = round(used / wall, 3)
                result["gateway_cpu_ms_per_request"] = round(
                    used * 1000.0 / max(1, result["requests"]), 4)
                after = disk_write_bytes(gateway_pid)
                if written >= 0 and after >= 0:
                    result["gateway_disk_kb_per_request"] = round(
                        (after - written) / 1024 / max(1, result["requests"]), 3)
            one["throughput"][name] = result
        for name in order:
            samples = clients.first_events(
                targets[name], headers, stream_body, args.stream_requests, runner)
            one["streaming"][name] = samples.summary()
            pooled["streaming"][name] += samples.latencies_ms
        one["foreign_cpu_share"] = round(round_noise.foreign_cpu_share(), 3)
        rounds.append(one)
        lat, thr = one["latency_1conn"], one["throughput"]
        _log(f"round {index + 1}/{args.rounds}: 1-conn p50 {lat['upstream']['p50_ms']:.3f} → "
             f"{lat['gateway']['p50_ms']:.3f} ms; 20 req/s p99 "
             f"{one['fixed_rate']['upstream']['p99_ms']:.3f} → "
             f"{one['fixed_rate']['gateway']['p99_ms']:.3f} ms; "
             f"{thr['gateway']['rps']:.0f} req/s; first event "
             f"{one['streaming']['upstream']['p50_ms']:.3f} → "
             f"{one['streaming']['gateway']['p50_ms']:.3f} ms; other processes "
             f"{one['foreign_cpu_share']:.0%} of a CPU")

    foreign = round(whole_run.foreign_cpu_share(), 3)
    memory = memory_kb(gateway_pid) if gateway_pid else None
    summary = _summarise(rounds, pooled, memory)
    results: dict[str, Any] = {
        "meta": {"upstream_url": upstream_url, "gateway_url": gateway_url,
                 "gateway_pid": gateway_pid, "checks": checks,
                 "foreign_cpu_share": foreign},
        "summary": summary,
        "targets": evaluate_targets(summary),
        "rounds": rounds,
    }
    if args.profile:
        if not gateway_pid:
            raise BenchError("--profile needs the gateway's pid (--gateway-pid with a peer)")
        _log("profiling the gateway under full load with py-spy")
        results["profile"] = profile_gateway(
            gateway_pid, targets["gateway"], script, seconds=max(5, args.duration * 2),
            connections=args.connections, load_prefix=load_prefix, out_dir=RESULTS_DIR,
            stamp=args.stamp)
    return results


def _summarise(rounds: list[dict[str, Any]], pooled: dict[str, dict[str, list[float]]],
               memory: dict[str, int] | None) -> dict[str, Any]:
    """Every figure is the median over rounds of that round's value (TESTING.md: the machines
    are noisy; a stall in one round must not decide a figure). For the client phases the
    percentiles of all samples pooled over the rounds are kept alongside, under `pooled`."""

    def med(phase: str, target: str, figure: str) -> float:
        return _median([r[phase][target][figure] for r in rounds])

    summary: dict[str, Any] = {}
    for phase in ("latency_1conn", "fixed_rate", "streaming"):
        entry: dict[str, Any] = {}
        for figure in ("p50_ms", "p99_ms"):
            up, gw = med(phase, "upstream", figure), med(phase, "gateway", figure)
            entry[f"upstream_{figure}"] = up
            entry[f"gateway_{figure}"] = gw
            entry[f"added_{figure}"] = round(gw - up, 4)
        if phase == "fixed_rate":
            # how late the open-loop sender ever was: tens of ms means the load CPU stalled
            entry["max_send_lag_ms"] = max(r[phase][who]["max_send_lag_ms"]
                                           for r in rounds for who in ("upstream", "gateway"))
        if phase in pooled:
            entry["pooled"] = {
                f"{who}_{figure}": round(clients.percentile(pooled[phase][who], q), 4)
                for who in ("upstream", "gateway") for figure, q in (("p50_ms", 50),
                                                                      ("p99_ms", 99))
            }
            entry["pooled"]["samples_per_target"] = len(pooled[phase]["gateway"])
        summary[phase] = entry
    throughput = {
        "upstream_rps": round(med("throughput", "upstream", "rps"), 1),
        "gateway_rps": round(med("throughput", "gateway", "rps"), 1),
        "gateway_rps_min": round(min(r["throughput"]["gateway"]["rps"] for r in rounds), 1),
        "gateway_rps_max": round(max(r["throughput"]["gateway"]["rps"] for r in rounds), 1),
        "gateway_p50_ms": med("throughput", "gateway", "p50_ms"),
        "gateway_p99_ms": med("throughput", "gateway", "p99_ms"),
        "fake_upstream_cpu_share_during_gateway_run":
            med("throughput", "gateway", "fake_upstream_cpu_share"),
    }
    if all("gateway_cpu_ms_per_request" in r["throughput"]["gateway"] for r in rounds):
        throughput["gateway_cpu_ms_per_request"] = med(
            "throughput", "gateway", "gateway_cpu_ms_per_request")
        throughput["gateway_cpu_share"] = med("throughput", "gateway", "gateway_cpu_share")
    if all("gateway_disk_kb_per_request" in r["throughput"]["gateway"] for r in rounds):
        throughput["gateway_disk_kb_per_request"] = med(
            "throughput", "gateway", "gateway_disk_kb_per_request")
    summary["throughput"] = throughput
    if memory is not None:
        summary["memory"] = {
            "gateway_rss_mb": round(memory["VmRSS"] / 1024, 1),
            "gateway_peak_rss_mb": round(memory["VmHWM"] / 1024, 1),
        }
    return summary


def _git_state() -> dict[str, Any]:
    """The commit measured and whether gateway/ had uncommitted changes (read-only git)."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "gateway"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"commit": head, "gateway_files_uncommitted": len(dirty.splitlines())}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _fmt(value: float | None, digits: int = 3, sign: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.{digits}f}" if sign else f"{value:,.{digits}f}"


def format_table(results: dict[str, Any]) -> str:
    s = results["summary"]
    meta = results["meta"]
    met = {t["figure"]: t for t in results["targets"]}

    noisy = (meta.get("foreign_cpu_share") or 0.0) > NOISY_SHARE

    def verdict(path: str) -> str:
        t = met.get(path)
        if t is None:
            return ""
        mark = {True: "MET", False: "MISSED", None: "n/a"}[t["met"]]
        return f"{t['target']:<44} {mark}{'*' if noisy and t['met'] is not None else ''}"

    rows: list[tuple[str, str, str, str, str]] = []

    def latency(label: str, phase: str) -> None:
        entry = s[phase]
        for figure in ("p50_ms", "p99_ms"):
            rows.append((
                f"{label} {figure[:3]} (ms)", _fmt(entry[f"upstream_{figure}"]),
                _fmt(entry[f"gateway_{figure}"]), _fmt(entry[f"added_{figure}"], sign=True),
                verdict(f"{phase}.added_{figure}"),
            ))

    latency("1 connection", "latency_1conn")
    settings = meta.get("settings", {})
    latency(f"{settings.get('rate', 20):g} req/s", "fixed_rate")
    t = s["throughput"]
    rows.append((f"throughput @{settings.get('connections', 50)} conns (req/s)",
                 _fmt(t["upstream_rps"], 0), _fmt(t["gateway_rps"], 0), "",
                 verdict("throughput.gateway_rps")))
    latency("first SSE event", "streaming")
    if "memory" in s:
        rows.append(("gateway RSS after load (MB)", "", _fmt(s["memory"]["gateway_rss_mb"], 1),
                     "", verdict("memory.gateway_rss_mb")))
        rows.append(("gateway peak RSS (MB)", "", _fmt(s["memory"]["gateway_peak_rss_mb"], 1),
                     "", ""))
    if "gateway_cpu_ms_per_request" in t:
        rows.append(("gateway CPU per request (ms)", "", _fmt(t["gateway_cpu_ms_per_request"]),
                     "", f"(gateway used {t['gateway_cpu_share']:.0%} of its core)"))
    if "gateway_disk_kb_per_request" in t:
        rows.append(("gateway disk writes per request (KB)", "",
                     _fmt(t["gateway_disk_kb_per_request"], 2), "",
                     "(page-cache writeback to storage at full load)"))
    rows.append(("fake upstream CPU during gateway run", "",
                 f"{t['fake_upstream_cpu_share_during_gateway_run']:.0%}", "",
                 "(low: the fake is not the bottleneck)"))
    lag = s["fixed_rate"].get("max_send_lag_ms")
    if lag is not None:
        rows.append(("fixed-rate sender, worst lateness (ms)", "", _fmt(lag, 1), "",
                     "(tens of ms: the load CPU itself stalled; p99s are suspect)"
                     if lag > 20 else "(the sender kept its schedule)"))
    foreign = meta.get("foreign_cpu_share")
    if foreign is not None:
        rows.append(("other processes' CPU during the run", "", f"{foreign:.0%}", "",
                     "(of one CPU) * the machine was busy: verdicts are unreliable, rerun"
                     if noisy else "(of one CPU: the machine was quiet)"))

    pin = meta.get("pinning") or {}
    where = (f"gateway on CPU {pin['gateway_cpu']}, fake upstream + load on CPU {pin['load_cpu']}"
             if pin.get("gateway_cpu") is not None else "no CPU pinning")
    title = ("figure", "upstream alone", "through gateway", "added", "target")
    widths = [max(len(row[i]) for row in [*rows, title]) for i in range(4)]
    lines = [
        f"Tollgate benchmark: {settings.get('rounds')} interleaved round(s); {where}",
        f"gateway: {meta.get('gateway')}; throughput over rounds "
        f"{_fmt(t['gateway_rps_min'], 0)}-{_fmt(t['gateway_rps_max'], 0)} req/s; "
        f"figures are medians over rounds",
        "",
    ]
    for row in [title, None, *rows]:
        if row is None:
            lines.append("-" * (sum(widths) + 8 + 52))
            continue
        lines.append(f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:>{widths[2]}}  "
                     f"{row[3]:>{widths[3]}}  {row[4]}".rstrip())
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="Measure a gateway's added latency, throughput, streaming overhead and "
                    "memory against a fast fake OpenAI upstream (loopback only).")
    parser.add_argument("--quick", action="store_true",
                        help="smoke-sized run: 1 round, 1 s wrk runs (about 15 s)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 5; quick 1)")
    parser.add_argument("--duration", type=int,
                        help="seconds per wrk run (default 3; quick 1)")
    parser.add_argument("--rate", type=float, default=20.0,
                        help="fixed request rate for the open-loop phase (default 20)")
    parser.add_argument("--rate-duration", type=float,
                        help="seconds per fixed-rate run (default 10; quick 2)")
    parser.add_argument("--stream-requests", type=int,
                        help="sequential streamed requests per target per round "
                             "(default 200; quick 20)")
    parser.add_argument("--prompt-chars", type=int, default=0,
                        help="pad the prompt to about this many characters (default 0: a "
                             "one-line prompt)")
    parser.add_argument("--connections", type=int, default=50,
                        help="wrk connections for the throughput phase (default 50)")
    parser.add_argument("--warmup", type=int, help="seconds of warm-up load (default 3)")
    parser.add_argument("--first-event-gap-ms", type=float, default=5.0,
                        help="the fake holds back the rest of a stream this long after its "
                             "first event, so buffering shows (default 5)")
    parser.add_argument("--gateway-url",
                        help="measure this already running gateway (a peer) instead of "
                             "starting Tollgate; it must route --model to the fake upstream")
    parser.add_argument("--gateway-pid", type=int,
                        help="with --gateway-url: its pid, for RSS and CPU figures")
    parser.add_argument("--upstream-port", type=int, default=0,
                        help="port for the fake upstream (default: any free port)")
    parser.add_argument("--api-key", help=f"bearer token to send (default {DEFAULT_TOKEN})")
    parser.add_argument("--model", help=f"model to request (default {DEFAULT_MODEL})")
    parser.add_argument("--with-limits", action="store_true",
                        help="give the virtual key a (never reached) budget and rate limit, to "
                             "measure the governed path as well as the core path")
    parser.add_argument("--store-url", default=None,
                        help="the gateway's store.url (e.g. redis://127.0.0.1:6379/0) instead "
                             "of the embedded store; start that Redis yourself")
    parser.add_argument("--no-pin", action="store_true", help="do not pin CPUs with taskset")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="first wait up to this long for other processes to go quiet "
                             "(shared machines; default 0: do not wait)")
    parser.add_argument("--nice", type=int, default=0,
                        help="run the whole benchmark in a session whose autogroup has this "
                             "niceness (e.g. -10 as root: other processes on a shared machine "
                             "disturb less)")
    parser.add_argument("--profile", action="store_true",
                        help="afterwards, sample the gateway with py-spy under full load and "
                             "print its hotspots (needs py-spy in the venv)")
    parser.add_argument("--output", type=Path,
                        help="JSON results path (default bench/results/<timestamp>.json)")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    args.stamp = time.strftime("%Y%m%d-%H%M%S")
    defaults = QUICK if args.quick else FULL
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name in ("rounds", "duration", "stream_requests", "connections"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be at least 1")
    if args.prompt_chars < 0:
        raise SystemExit("--prompt-chars must not be negative")
    if args.warmup < 1 or args.rate <= 0 or args.rate_duration <= 0:
        raise SystemExit("--warmup, --rate and --rate-duration must be positive")
    return args


def _finite_json(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_json(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.nice and not os.environ.get("TOLLGATE_BENCH_CHILD"):
        return run_at_priority(sys.argv[1:] if argv is None else argv, args.nice)

    def terminate(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # unwinds through the clean-up that stops the processes

    signal.signal(signal.SIGTERM, terminate)
    try:
        results = run_benchmark(args)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted; every process it started has been stopped", file=sys.stderr)
        return 130
    output = args.output or RESULTS_DIR / f"{args.stamp}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(_finite_json(results), indent=2) + "\n")
    print(format_table(results))
    if "profile" in results:
        print(format_profile(results["profile"]))
    print(f"\nresults: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
