"""The benchmark harness runs end to end and reports every figure (never a speed assertion)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed (scripts/ensure-tools.sh)"
)


def _figures(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in tree.items():
        if isinstance(value, dict):
            out.update(_figures(value, f"{prefix}{name}."))
        else:
            out[prefix + name] = value
    return out


def test_a_minimal_benchmark_run_reports_every_figure(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--rounds", "1", "--duration", "1",
         "--rate-duration", "1", "--stream-requests", "10", "--output", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(output.read_text())
    figures = _figures(results["summary"])
    for phase in ("latency_1conn", "fixed_rate", "streaming"):
        for who in ("upstream", "gateway", "added"):
            for figure in ("p50_ms", "p99_ms"):
                assert f"{phase}.{who}_{figure}" in figures
    for name in ("throughput.upstream_rps", "throughput.gateway_rps",
                 "throughput.gateway_cpu_ms_per_request", "memory.gateway_rss_mb"):
        assert name in figures
    for name, value in figures.items():
        assert isinstance(value, int | float) and math.isfinite(value), (name, value)
        leaf = name.rsplit(".", 1)[-1]
        if leaf.startswith("added_"):
            continue  # a difference of two noisy measurements: any finite number
        if "cpu_share" in leaf or "lag" in leaf or "disk" in leaf:
            assert value >= 0, (name, value)  # CPU ticks, lateness, disk writes: may be 0
            continue
        assert value > 0, (name, value)
    assert len(results["rounds"]) == 1
    assert {t["figure"] for t in results["targets"]} <= set(figures)
    assert all(t["met"] in (True, False) for t in results["targets"])
    assert "through gateway" in done.stdout
