"""Hot reload without a server: ConfigWatcher reads, validates and swaps into a ConfigHolder.

The build function here is trivial (it returns what it was given), so these tests pin the
watcher's own rules: validate first, keep the last good snapshot, notice every kind of change.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tollgate.gateway.config.loader import ConfigHolder, ConfigWatcher
from tollgate.gateway.config.models import GatewayConfig
from tollgate.gateway.runtime import credential_files

Built = tuple[GatewayConfig, str]

TOKEN_HASH = "2122c0015efddfdc24fb03f03cbb23c9680df6c3b12f1d0de65270fd6015d56e"


def document(revision: str, *, key_id: str = "acme-prod", credential: Path | None = None) -> str:
    provider = "- {name: mock, type: mock}"
    if credential is not None:
        provider += (
            "\n- {name: vllm, type: openai-compatible, baseURL: 'http://127.0.0.1:9/v1',"
            f" apiKey: {{file: '{credential}'}}}}"
        )
    return f"""apiVersion: tollgate.dev/v1alpha1
kind: GatewayConfig
revision: {revision}
providers:
{provider}
virtualKeys:
- {{id: {key_id}, tokenSHA256: {TOKEN_HASH}}}
"""


INVALID = document("broken").replace("- {name: mock, type: mock}", "- {name: mock, type: mok}")


def write(path: Path, text: str) -> None:
    """Write the way kubectl, editors and the operator do: a new file renamed over the old."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def keep(config: GatewayConfig, revision: str) -> Built:
    return config, revision


class ConfigMapVolume:
    """The files of a Kubernetes ConfigMap volume, laid out and updated the way the kubelet does:
    `config.yaml` → `..data/config.yaml`, `..data` → `..<timestamp>/`, and an update publishes a
    new timestamped directory and swaps `..data` with one atomic rename."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._versions = 0

    @property
    def path(self) -> Path:
        return self.root / "config.yaml"

    def publish(self, text: str) -> None:
        self._versions += 1
        version = self.root / f"..2026_11_27_13_40_0{self._versions}.{1000 + self._versions}"
        version.mkdir()
        (version / "config.yaml").write_text(text)
        data = self.root / "..data"
        previous = os.readlink(data) if data.is_symlink() else None
        tmp = self.root / "..data_tmp"
        os.symlink(version.name, tmp)
        os.replace(tmp, data)
        if not self.path.is_symlink():
            os.symlink("..data/config.yaml", self.path)
        if previous is not None:
            shutil.rmtree(self.root / previous)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "tollgate.yaml"
    write(path, document("r1"))
    return path


def watcher_for(path: Path, **kwargs) -> tuple[ConfigWatcher[Built], ConfigHolder[Built]]:
    holder: ConfigHolder[Built] = ConfigHolder()
    return ConfigWatcher(str(path), holder, build=kwargs.pop("build", keep), **kwargs), holder


def test_loading_a_valid_file_swaps_its_snapshot_into_the_holder(config_file: Path):
    results: list[str] = []
    watcher, holder = watcher_for(config_file, on_result=results.append)
    assert holder.current is None

    assert watcher.load() is True
    assert holder.current is not None
    config, revision = holder.current
    assert (revision, config.virtual_keys[0].id) == ("r1", "acme-prod")
    assert (holder.generation, holder.last_error, results) == (1, None, ["loaded"])


def test_a_document_without_a_revision_field_is_revised_by_its_content_hash(tmp_path: Path):
    path = tmp_path / "tollgate.yaml"
    write(path, document("r1").replace("revision: r1\n", ""))
    watcher, holder = watcher_for(path)
    watcher.load()
    first = holder.current[1] if holder.current else None
    write(path, document("r1").replace("revision: r1\n", "").replace("acme-prod", "globex"))
    watcher.load()
    second = holder.current[1] if holder.current else None
    assert first and second and first != second
    assert all(c in "0123456789abcdef" for c in first + second)


def test_an_untouched_file_is_not_reported_as_changed(config_file: Path):
    watcher, _ = watcher_for(config_file)
    watcher.load()
    assert watcher.changed() is False


def test_a_file_replaced_by_rename_is_reported_as_changed(config_file: Path):
    watcher, _ = watcher_for(config_file)
    watcher.load()
    write(config_file, document("r2"))
    assert watcher.changed() is True


def test_an_invalid_file_is_rejected_and_the_last_good_snapshot_keeps_serving(
    config_file: Path, caplog: pytest.LogCaptureFixture
):
    results: list[str] = []
    watcher, holder = watcher_for(config_file, on_result=results.append)
    watcher.load()
    good = holder.current

    write(config_file, INVALID)
    assert watcher.changed() is True
    assert watcher.load() is False

    assert holder.current is good
    assert holder.generation == 1
    assert holder.last_error is not None and "providers[0]: Input tag 'mok'" in holder.last_error
    assert results == ["loaded", "rejected"]
    rejected = [r for r in caplog.records if getattr(r, "event", None) == "config_rejected"]
    assert len(rejected) == 1 and rejected[0].levelno == logging.ERROR
    assert watcher.changed() is False, "a rejected file is not retried until it changes again"


def test_fixing_a_rejected_file_serves_it_and_clears_the_error(config_file: Path):
    watcher, holder = watcher_for(config_file)
    watcher.load()
    write(config_file, INVALID)
    watcher.load()

    write(config_file, document("r3"))
    assert watcher.changed() is True
    assert watcher.load() is True
    assert holder.current is not None and holder.current[1] == "r3"
    assert (holder.generation, holder.last_error) == (2, None)


def test_a_file_that_is_invalid_from_the_start_leaves_nothing_to_serve(tmp_path: Path):
    path = tmp_path / "tollgate.yaml"
    write(path, INVALID)
    watcher, holder = watcher_for(path)
    assert watcher.load() is False
    assert holder.current is None
    assert holder.last_error is not None and "providers[0]" in holder.last_error


def test_a_missing_file_is_rejected_with_a_reason_that_names_it(tmp_path: Path):
    path = tmp_path / "absent.yaml"
    watcher, holder = watcher_for(path)
    assert watcher.load() is False
    assert holder.last_error is not None
    assert "cannot read the config file" in holder.last_error and str(path) in holder.last_error


def test_a_file_deleted_and_recreated_is_reloaded_and_the_gap_keeps_the_last_good(
    config_file: Path,
):
    watcher, holder = watcher_for(config_file)
    watcher.load()
    good = holder.current
    config_file.unlink()
    assert watcher.changed() is True
    assert watcher.load() is False and holder.current is good
    write(config_file, document("r2"))
    assert watcher.changed() is True
    assert watcher.load() is True and holder.current is not None and holder.current[1] == "r2"


def test_swapping_the_configmap_data_symlink_is_seen_and_loaded(tmp_path: Path):
    volume = ConfigMapVolume(tmp_path / "config")
    volume.root.mkdir()
    volume.publish(document("v1"))
    watcher, holder = watcher_for(volume.path)
    watcher.load()
    assert watcher.changed() is False

    volume.publish(document("v2"))  # same size as v1: only the inode tells them apart
    assert watcher.changed() is True
    assert watcher.load() is True
    assert holder.current is not None and holder.current[1] == "v2"
    assert watcher.changed() is False


def test_a_configmap_swap_to_an_invalid_document_keeps_the_last_good(tmp_path: Path):
    volume = ConfigMapVolume(tmp_path / "config")
    volume.root.mkdir()
    volume.publish(document("v1"))
    watcher, holder = watcher_for(volume.path)
    watcher.load()
    good = holder.current

    volume.publish(INVALID)
    assert watcher.changed() is True
    assert watcher.load() is False
    assert holder.current is good


def test_a_change_to_a_referenced_credential_file_triggers_a_reload(tmp_path: Path):
    secret = tmp_path / "vllm-api-key"
    secret.write_text("sk-old")
    path = tmp_path / "tollgate.yaml"
    write(path, document("r1", credential=secret))
    watcher, holder = watcher_for(path, watched_files=credential_files)
    watcher.load()
    assert watcher.changed() is False

    write(secret, "sk-new")
    assert watcher.changed() is True
    assert watcher.load() is True
    assert holder.generation == 2


def test_a_credential_file_that_appears_later_triggers_a_reload(tmp_path: Path):
    secret = tmp_path / "vllm-api-key"
    path = tmp_path / "tollgate.yaml"
    write(path, document("r1", credential=secret))
    watcher, _ = watcher_for(path, watched_files=credential_files)
    watcher.load()
    assert watcher.changed() is False
    secret.write_text("sk-new")
    assert watcher.changed() is True


def test_a_credential_file_no_longer_referenced_is_no_longer_watched(tmp_path: Path):
    secret = tmp_path / "vllm-api-key"
    secret.write_text("sk-old")
    path = tmp_path / "tollgate.yaml"
    write(path, document("r1", credential=secret))
    watcher, _ = watcher_for(path, watched_files=credential_files)
    watcher.load()
    write(path, document("r2"))
    watcher.load()
    write(secret, "sk-new")
    assert watcher.changed() is False


def test_a_write_that_lands_while_a_snapshot_is_being_built_is_not_lost(config_file: Path):
    """Building a snapshot of a large config takes time; a write during it must still be seen."""

    def build_during_which_the_file_changes(config: GatewayConfig, revision: str) -> Built:
        if revision == "r1":
            write(config_file, document("r2"))
        return config, revision

    watcher, holder = watcher_for(config_file, build=build_during_which_the_file_changes)
    watcher.load()
    assert holder.current is not None and holder.current[1] == "r1"
    assert watcher.changed() is True, "r2 was written after r1 was read and must be loaded next"


def test_a_snapshot_that_fails_to_build_is_rejected_like_an_invalid_file(config_file: Path):
    """Whatever goes wrong turning a config into a snapshot, the last good one keeps serving."""

    def build(config: GatewayConfig, revision: str) -> Built:
        if revision == "r2":
            raise RuntimeError("an adapter could not be constructed")
        return config, revision

    results: list[str] = []
    watcher, holder = watcher_for(config_file, build=build, on_result=results.append)
    watcher.load()
    good = holder.current
    write(config_file, document("r2"))
    assert watcher.load() is False
    assert holder.current is good
    assert holder.last_error
    assert results == ["loaded", "rejected"]


async def _until(condition: Callable[[], bool], seconds: float = 1.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.01)
    return condition()


@asynccontextmanager
async def running(watcher: ConfigWatcher[Built]) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(watcher.run())
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_the_watch_loop_loads_a_change_within_one_second(config_file: Path):
    watcher, holder = watcher_for(config_file, interval=0.05)
    watcher.load()
    async with running(watcher):
        write(config_file, document("r2"))
        assert await _until(lambda: holder.current is not None and holder.current[1] == "r2")


async def test_the_watch_loop_survives_a_document_that_crashes_validation(config_file: Path):
    watcher, holder = watcher_for(config_file, interval=0.05)
    watcher.load()
    async with running(watcher) as task:
        write(config_file, document("r2").replace(
            "tokenSHA256:", 'budget: {maxUSD: "1e999999"}, tokenSHA256:'))
        assert await _until(lambda: holder.last_error is not None or task.done())
        write(config_file, document("r3"))
        assert await _until(lambda: holder.current is not None and holder.current[1] == "r3"), (
            "the watcher stopped watching" if task.done() else "r3 was not loaded"
        )
