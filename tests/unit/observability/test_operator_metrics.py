"""The operator's metrics helpers: passes and handlers counted by result, errors by type,
durations observed, the config revision info-style."""

from __future__ import annotations

import kopf
import pytest
from prometheus_client import REGISTRY

from tollgate.operator import metrics


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class ApiError(Exception):
    """Named like the operator's kube.ApiError."""


def test_a_pass_is_counted_and_timed_and_a_failed_one_by_its_type():
    ok = _value("tollgate_operator_reconciles_total", result="ok")
    timed = _value("tollgate_operator_reconcile_duration_seconds_count")
    with metrics.reconcile_pass():
        pass
    for error in (ApiError("410"), ConnectionResetError(), ValueError("bug")):
        with pytest.raises(type(error)), metrics.reconcile_pass():
            raise error
    assert _value("tollgate_operator_reconciles_total", result="ok") == ok + 1
    assert _value("tollgate_operator_reconcile_duration_seconds_count") == timed + 4
    assert _value("tollgate_operator_reconcile_errors_total", type="api") >= 2
    assert _value("tollgate_operator_reconcile_errors_total", type="unexpected") >= 1


async def test_handlers_are_counted_by_kopf_outcome():
    @metrics.instrumented("t_async")
    async def retrying(**_: object) -> None:
        raise kopf.TemporaryError("later", delay=1)

    @metrics.instrumented("t_sync")
    def fine(**_: object) -> str:
        return "done"

    with pytest.raises(kopf.TemporaryError):
        await retrying(name="x")
    assert fine(name="x") == "done"
    assert _value("tollgate_operator_handler_calls_total", handler="t_async",
                  result="temporary_error") == 1
    assert _value("tollgate_operator_handler_calls_total", handler="t_sync", result="ok") == 1
    assert _value("tollgate_operator_handler_duration_seconds_count", handler="t_sync") == 1


def test_only_the_last_written_revision_is_exported_and_resources_are_set():
    metrics.served_revision("r1")
    metrics.served_revision("r2")
    assert _value("tollgate_operator_config_info", revision="r2") == 1
    assert REGISTRY.get_sample_value("tollgate_operator_config_info", {"revision": "r1"}) is None
    metrics.objects_written(3)
    metrics.resources("VirtualKey", {"True": 4, "False": 1})
    assert _value("tollgate_operator_resources", kind="VirtualKey", ready="Unknown") == 0
    assert _value("tollgate_operator_resources", kind="VirtualKey", ready="True") == 4
