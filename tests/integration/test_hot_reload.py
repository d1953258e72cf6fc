"""Hot reload, end to end: a real gateway process, its config file edited under it, and the
official openai SDK as the client. "Within 1 s" is measured from the write: each check polls
with a deadline of 1.0 s after the file changed (the gateway polls every 0.25 s)."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx
import openai
import pytest
import yaml

from tests.support.config import config_doc, key_entry
from tests.support.gateway import GatewayProcess, start_gateway, write_atomically
from tests.support.net import free_port

T = TypeVar("T")

IN_FORCE_WITHIN = 1.0
MOCK = {"name": "mock", "type": "mock"}
HELLO = [{"role": "user", "content": "hello"}]


# --- helpers -----------------------------------------------------------------------------------


def within(seconds: float, since: float, check: Callable[[], T | None], what: str) -> T:
    """Poll `check` until it returns something truthy; fail once `seconds` after `since` pass."""
    deadline = since + seconds
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not seen within {seconds} s of the write")
        time.sleep(0.02)


def client(gateway: GatewayProcess, token: str) -> openai.OpenAI:
    """The official SDK with retries off, so each call is exactly one request."""
    return openai.OpenAI(base_url=gateway.base_url, api_key=token, max_retries=0, timeout=10)


def answers(gateway: GatewayProcess, token: str, model: str = "mock-chat") -> bool:
    """True when the key gets a completion, False when it gets 401."""
    with client(gateway, token) as sdk:
        try:
            sdk.chat.completions.create(model=model, messages=HELLO)
        except openai.AuthenticationError:
            return False
    return True


def served_model(gateway: GatewayProcess, token: str, model: str) -> str:
    with client(gateway, token) as sdk:
        raw = sdk.chat.completions.with_raw_response.create(model=model, messages=HELLO)
    return raw.headers["x-tollgate-model"]


def readyz(gateway: GatewayProcess) -> httpx.Response:
    return httpx.get(gateway.url + "/readyz", timeout=5)


def reloads(gateway: GatewayProcess, result: str) -> float:
    text = httpx.get(gateway.url + "/metrics", timeout=5).text
    match = re.search(
        rf'^tollgate_config_reloads_total{{result="{result}"}} (\S+)$', text, re.MULTILINE
    )
    return float(match.group(1)) if match else 0.0


def log_events(gateway: GatewayProcess, event: str) -> list[dict[str, Any]]:
    found = []
    for line in gateway.logs().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event") == event:
            found.append(record)
    return found


def keys_config(*tokens: str, revision: str | None = None, **sections: Any) -> dict[str, Any]:
    """A mock-only config with one virtual key per token (`tg-<id>` → key id `<id>`)."""
    keys = [key_entry(token.removeprefix("tg-"), token) for token in tokens]
    document = config_doc([MOCK], keys, **sections)
    if revision is not None:
        document["revision"] = revision
    return document


class ConfigMapVolume:
    """A Kubernetes ConfigMap volume, laid out and updated the way the kubelet does it:
    `config.yaml` → `..data/config.yaml`, `..data` → `..<timestamp>/`; an update writes a new
    timestamped directory, then swaps `..data` with one atomic rename of a new symlink."""

    def __init__(self, root: Path) -> None:
        root.mkdir()
        self.root = root
        self._versions = 0

    @property
    def path(self) -> Path:
        return self.root / "config.yaml"

    def publish(self, document: dict[str, Any]) -> None:
        self._versions += 1
        version = self.root / f"..2026_11_27_13_40_{self._versions:02d}.{4000 + self._versions}"
        version.mkdir()
        (version / "config.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
        data = self.root / "..data"
        previous = os.readlink(data) if data.is_symlink() else None
        os.symlink(version.name, self.root / "..data_tmp")
        os.replace(self.root / "..data_tmp", data)
        if not self.path.is_symlink():
            os.symlink("..data/config.yaml", self.path)
        if previous is not None:
            shutil.rmtree(self.root / previous)


@pytest.fixture
def started(tmp_path: Path) -> Iterator[Callable[..., GatewayProcess]]:
    """Start a gateway on an existing config path (symlinks kept); stopped at teardown."""
    gateways: list[GatewayProcess] = []

    def start(path: Path, **kwargs: Any) -> GatewayProcess:
        gateway = start_gateway(path, **kwargs)
        gateways.append(gateway)
        return gateway

    yield start
    for gateway in gateways:
        gateway.stop()


# --- keys --------------------------------------------------------------------------------------


def test_a_key_added_to_the_file_works_within_one_second(gateway_factory):
    gateway = gateway_factory(keys_config("tg-alice"))
    assert answers(gateway, "tg-bob") is False

    gateway.write_config(keys_config("tg-alice", "tg-bob"))
    written = time.monotonic()

    within(IN_FORCE_WITHIN, written, lambda: answers(gateway, "tg-bob"), "the new key answering")
    assert answers(gateway, "tg-alice")


def test_a_key_removed_from_the_file_gets_401_within_one_second(gateway_factory):
    gateway = gateway_factory(keys_config("tg-alice", "tg-bob"))
    assert answers(gateway, "tg-bob")

    gateway.write_config(keys_config("tg-alice"))
    written = time.monotonic()

    within(IN_FORCE_WITHIN, written, lambda: not answers(gateway, "tg-bob"), "401 for the key")
    with client(gateway, "tg-bob") as sdk, pytest.raises(openai.AuthenticationError) as refused:
        sdk.chat.completions.create(model="mock-chat", messages=HELLO)
    assert refused.value.status_code == 401 and refused.value.code == "invalid_api_key"
    assert answers(gateway, "tg-alice")


def test_an_alias_pointed_at_a_new_target_serves_from_it_within_one_second(gateway_factory):
    def aliased(model: str) -> dict[str, Any]:
        return keys_config("tg-alice", models=[
            {"name": "default-chat", "targets": [{"provider": "mock", "model": model}]},
        ])

    gateway = gateway_factory(aliased("mock-chat-small"))
    assert served_model(gateway, "tg-alice", "default-chat") == "mock-chat-small"

    gateway.write_config(aliased("mock-chat-large"))
    written = time.monotonic()

    within(IN_FORCE_WITHIN, written,
           lambda: served_model(gateway, "tg-alice", "default-chat") == "mock-chat-large",
           "the alias serving its new target")


# --- Kubernetes ConfigMap volume ---------------------------------------------------------------


def test_swapping_the_configmap_data_symlink_puts_the_new_config_in_force_within_one_second(
    tmp_path: Path, started: Callable[..., GatewayProcess]
):
    volume = ConfigMapVolume(tmp_path / "tollgate-config")
    volume.publish(keys_config("tg-alice", revision="configmap-v1"))
    gateway = started(volume.path)
    assert readyz(gateway).json()["configRevision"] == "configmap-v1"
    assert answers(gateway, "tg-alice") and not answers(gateway, "tg-bob")

    volume.publish(keys_config("tg-bob", revision="configmap-v2"))
    written = time.monotonic()

    within(IN_FORCE_WITHIN, written,
           lambda: readyz(gateway).json()["configRevision"] == "configmap-v2",
           "the new ConfigMap revision")
    assert answers(gateway, "tg-bob")
    assert not answers(gateway, "tg-alice")


# --- invalid files -----------------------------------------------------------------------------


def test_an_invalid_file_is_rejected_and_the_last_good_config_keeps_serving_until_fixed(
    gateway_factory,
):
    gateway = gateway_factory(keys_config("tg-alice", revision="good-1"))
    rejected_before = reloads(gateway, "rejected")
    invalid = keys_config("tg-alice", "tg-bob", revision="bad-2")
    invalid["virtualKeys"][1]["fallbacks"] = [{"provider": "anthropic", "model": "claude"}]

    gateway.write_config(invalid)
    written = time.monotonic()

    ready = within(IN_FORCE_WITHIN, written,
                   lambda: (r := readyz(gateway).json()).get("lastReloadError") and r,
                   "the rejection on /readyz")
    assert ready["status"] == "ready" and ready["configRevision"] == "good-1"
    assert "virtualKeys[1].fallbacks[0].provider: unknown provider 'anthropic'" in (
        ready["lastReloadError"]
    )
    assert readyz(gateway).status_code == 200
    assert answers(gateway, "tg-alice")
    assert not answers(gateway, "tg-bob"), "nothing of a rejected file may be served"
    assert reloads(gateway, "rejected") == rejected_before + 1
    rejected = log_events(gateway, "config_rejected")
    assert len(rejected) == 1 and rejected[0]["level"] == "error"
    assert "unknown provider 'anthropic'" in rejected[0]["msg"]

    gateway.write_config(keys_config("tg-alice", "tg-bob", revision="good-3"))
    fixed = time.monotonic()

    within(IN_FORCE_WITHIN, fixed, lambda: answers(gateway, "tg-bob"), "the fixed file in force")
    assert readyz(gateway).json() == {"status": "ready", "configRevision": "good-3"}


def test_a_file_that_is_not_yaml_keeps_the_last_good_config(gateway_factory):
    gateway = gateway_factory(keys_config("tg-alice", revision="good-1"))

    gateway.write_config("apiVersion: tollgate.dev/v1alpha1\nkind: [GatewayConfig\n")
    written = time.monotonic()

    error = within(IN_FORCE_WITHIN, written,
                   lambda: readyz(gateway).json().get("lastReloadError"), "the rejection")
    assert "not valid YAML at line" in error
    assert answers(gateway, "tg-alice")


def test_a_file_that_crashes_validation_does_not_stop_hot_reload(gateway_factory):
    """An absurd budget ("1e999999") must be one more rejected file, not the end of watching."""
    gateway = gateway_factory(keys_config("tg-alice", revision="good-1"))
    absurd = keys_config("tg-alice", revision="bad-2")
    absurd["virtualKeys"][0]["budget"] = {"maxUSD": "1e999999"}

    gateway.write_config(absurd)
    written = time.monotonic()
    error = within(IN_FORCE_WITHIN, written,
                   lambda: readyz(gateway).json().get("lastReloadError"), "the rejection")
    assert "virtualKeys[0].budget.maxUSD" in error
    assert answers(gateway, "tg-alice")

    gateway.write_config(keys_config("tg-alice", "tg-bob", revision="good-3"))
    fixed = time.monotonic()
    within(IN_FORCE_WITHIN, fixed, lambda: answers(gateway, "tg-bob"), "the fixed file in force")


def test_a_gateway_started_on_an_invalid_file_is_not_ready_until_the_file_is_fixed(
    gateway_factory,
):
    gateway = gateway_factory("apiVersion: tollgate.dev/v1alpha1\nkind: GatewayConfig\nbogus: 1\n")

    not_ready = readyz(gateway)
    assert not_ready.status_code == 503
    assert "bogus: Extra inputs are not permitted" in not_ready.json()["reason"]
    with client(gateway, "tg-alice") as sdk, pytest.raises(openai.APIStatusError) as refused:
        sdk.chat.completions.create(model="mock-chat", messages=HELLO)
    assert refused.value.status_code == 503
    assert refused.value.code == "config_not_loaded"

    gateway.write_config(keys_config("tg-alice", revision="first-good"))
    written = time.monotonic()

    within(IN_FORCE_WITHIN, written, lambda: readyz(gateway).status_code == 200, "readiness")
    assert readyz(gateway).json() == {"status": "ready", "configRevision": "first-good"}
    assert answers(gateway, "tg-alice")


# --- in-flight requests ------------------------------------------------------------------------


def test_a_request_in_flight_finishes_on_its_config_after_a_reload_removes_its_key(
    gateway_factory,
):
    slow = {"name": "mock", "type": "mock", "latencyMs": 1500}
    gateway = gateway_factory(config_doc([slow], [key_entry("alice", "tg-alice")],
                                         revision="before"))
    with ThreadPoolExecutor(max_workers=1) as pool, client(gateway, "tg-alice") as sdk:
        in_flight = pool.submit(sdk.chat.completions.create, model="mock-chat", messages=HELLO)
        time.sleep(0.2)  # let the request reach the gateway; the mock holds it for 1.5 s

        gateway.write_config(config_doc([slow], [], revision="after"))
        written = time.monotonic()
        within(IN_FORCE_WITHIN, written,
               lambda: readyz(gateway).json()["configRevision"] == "after", "the reload")
        assert not in_flight.done(), "the reload must land while the request is in flight"
        assert not answers(gateway, "tg-alice"), "new requests with the removed key get 401"

        completion = in_flight.result(timeout=10)
    assert completion.choices[0].message.content.endswith("You said: hello")
    served = [r for r in log_events(gateway, "request") if r.get("outcome") == "ok"]
    assert [r["config_revision"] for r in served] == ["before"]


# --- provider credentials from files -----------------------------------------------------------


def test_a_provider_key_file_is_re_read_when_it_changes(tmp_path: Path, gateway_factory):
    """No API key yet: the provider is unavailable (503). Once its key file is written the same
    config is reloaded and the gateway really tries the provider (here a closed loopback port,
    so 502 unreachable): the file was re-read without any change to the config file."""
    key_file = tmp_path / "vendor-api-key"
    vendor = {
        "name": "vendor", "type": "openai-compatible", "models": ["vendor-chat"],
        "baseURL": f"http://127.0.0.1:{free_port()}/v1", "apiKey": {"file": str(key_file)},
        "timeouts": {"connectSeconds": 1, "firstByteSeconds": 1, "totalSeconds": 2},
    }
    gateway = gateway_factory(config_doc([vendor], [key_entry("alice", "tg-alice")],
                                         revision="r1"))

    def error_code() -> str | None:
        with client(gateway, "tg-alice") as sdk:
            try:
                sdk.chat.completions.create(model="vendor-chat", messages=HELLO)
            except openai.APIStatusError as error:
                return error.code
        return None

    assert error_code() == "upstream_unavailable"
    loaded_before = reloads(gateway, "loaded")

    write_atomically(key_file, "sk-vendor-test-key\n")
    written = time.monotonic()

    within(IN_FORCE_WITHIN, written, lambda: error_code() == "upstream_unreachable",
           "the provider key in use")
    assert reloads(gateway, "loaded") == loaded_before + 1
    assert readyz(gateway).json()["configRevision"] == "r1"
    assert "sk-vendor-test-key" not in gateway.logs()
