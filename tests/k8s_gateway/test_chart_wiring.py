"""The chart turns the gateway's Kubernetes features on exactly when it grants their API access,
and points them at the ConfigMaps the operator writes."""

from __future__ import annotations

from typing import Any

from tests.chart.tools import NAMESPACE, find, render, set_json
from tollgate.gateway.cli import build_parser
from tollgate.gateway.kube.options import parse_target


def _args(rendered: Any, component: str) -> list[str]:
    deployment = rendered.one("Deployment", f"-{component}")
    return list(find(deployment["spec"]["template"]["spec"]["containers"], component)["args"])


def test_the_gateway_watches_the_configmaps_the_operator_writes() -> None:
    rendered = render()
    args = build_parser().parse_args(["gateway", *_args(rendered, "gateway")[1:]])
    operator = _args(rendered, "operator")
    config_name = operator[operator.index("--config-name") + 1]
    target = operator[operator.index("--target-namespace") + 1]
    assert parse_target(args.watch_configmaps) == (target, config_name) == (NAMESPACE,
                                                                              config_name)
    assert args.status_interval == 15.0


def test_without_api_access_the_gateway_serves_the_mounted_files_only() -> None:
    rendered = render(sets=[set_json("gateway.rbac.create", False)])
    assert "--watch-configmaps" not in _args(rendered, "gateway")
