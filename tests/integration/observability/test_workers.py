"""A gateway with `--workers 2`: whichever worker answers a scrape reports the totals of both
(prometheus-client multi-process mode in a temporary folder the CLI creates and removes)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.integration.helpers import provider
from tests.integration.observability.support import scrape
from tests.support.config import config_doc, key_entry
from tests.support.gateway import GatewayProcess, start_gateway

TOKEN = "tg-obs-workers-4c4c4c"
REQUESTS = 40


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_bytes()
            except OSError:
                continue
            if int(stat[stat.rfind(b")") + 2:].split()[1]) == pid:
                found.append(int(entry))
    return found


def _multiproc_dir(gateway: GatewayProcess) -> str:
    for child in _children(gateway.process.pid):
        environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        for item in environ:
            if item.startswith(b"PROMETHEUS_MULTIPROC_DIR="):
                return item.split(b"=", 1)[1].decode()
    raise AssertionError("no worker has PROMETHEUS_MULTIPROC_DIR")


def _ask(gateway: GatewayProcess) -> int:
    # a new connection each time, so the kernel spreads them over both workers
    response = httpx.post(gateway.base_url + "/chat/completions", timeout=10,
                          headers={"authorization": f"Bearer {TOKEN}", "connection": "close"},
                          json={"model": "m-w", "max_tokens": 5,
                                "messages": [{"role": "user", "content": "hi"}]})
    return response.status_code


def test_two_workers_report_one_set_of_exact_totals(
        tmp_path: Path, openai_upstream: FakeOpenAI, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    openai_upstream.set_usage(prompt_tokens=10, completion_tokens=5)
    config = config_doc(
        providers=[provider("up", openai_upstream, key_env="W_KEY", models=("m-w",))],
        pricing=[{"provider": "up", "model": "m-w", "inputPerMillionUSD": "1000",
                  "outputPerMillionUSD": "1000"}],
        keys=[key_entry("w-key", TOKEN, customerId="wco", budget={"maxUSD": "100"})],
        revision="workers-rev",
        store={"path": str(tmp_path / "state.db")},
    )
    gateway = start_gateway(tmp_path / "tollgate.yaml", config=config, env={"W_KEY": "sk-w"},
                            workers=2, log_level="warning")
    try:
        folder = _multiproc_dir(gateway)
        assert Path(folder).is_dir()
        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(lambda _: _ask(gateway), range(REQUESTS))) == {200}
        pids = {name.rsplit("_", 1)[-1] for name in os.listdir(folder)
                if name.startswith("counter_")}
        assert len(pids) == 2, "both workers keep their own counter files"
        for _ in range(6):  # several scrapes: each may be answered by either worker
            m = scrape(gateway)
            assert m.value("tollgate_requests_total", key="w-key", customer="wco",
                           provider="up", model="m-w", outcome="ok") == REQUESTS
            assert m.value("tollgate_spend_micro_usd_total", key="w-key", customer="wco",
                           provider="up", model="m-w") == REQUESTS * 15_000
            assert m.value("tollgate_config_reloads_total", result="loaded") == 2
            assert m.series("tollgate_config_info") == [{"revision": "workers-rev"}]
            assert m.series("tollgate_budget_remaining_micro_usd") == [{"key": "w-key"}]
            assert m.value("tollgate_budget_limit_micro_usd", key="w-key") == 100_000_000
    finally:
        gateway.stop()
    assert not Path(folder).exists(), "the CLI removes its metrics folder on exit"
