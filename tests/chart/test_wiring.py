"""The rendered Deployments agree with the code they run: the gateway mounts exactly the
ConfigMaps and Secret the operator renders, where the rendered config says they are, and both
containers' arguments parse with the real `tollgate` command line."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.chart.tools import NAMESPACE, Rendered, find, render, set_json
from tests.operator.objects import provider_credential, secret, virtual_key
from tests.support.net import free_port, wait_http
from tollgate.gateway.cli import build_parser
from tollgate.gateway.config.loader import read_config
from tollgate.gateway.config.models import GatewayConfig
from tollgate.operator.render import (
    CONFIG_PART_KEY,
    CREDENTIALS_MOUNT_PATH,
    RenderOptions,
    config_maps,
    credentials_secret,
)
from tollgate.operator.render import (
    render as render_config,
)

CONFIG_DIR = "/etc/tollgate/config"
"""Where the image's default command looks for the config (deploy/Dockerfile)."""


def container(obj: dict[str, Any], name: str) -> dict[str, Any]:
    return find(obj["spec"]["template"]["spec"]["containers"], name)


def volume_at(deployment: dict[str, Any], container_name: str, path: str) -> dict[str, Any]:
    mount = next(m for m in container(deployment, container_name)["volumeMounts"]
                 if m["mountPath"] == path)
    return find(deployment["spec"]["template"]["spec"]["volumes"], mount["name"])


def gateway(rendered: Rendered) -> dict[str, Any]:
    return rendered.one("Deployment", "-gateway")


def operator(rendered: Rendered) -> dict[str, Any]:
    return rendered.one("Deployment", "-operator")


def parse(argv: list[str]) -> argparse.Namespace:
    try:
        return build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse reports on stderr and exits
        raise AssertionError(f"`tollgate {' '.join(argv)}` does not parse") from exc


def operator_flags(rendered: Rendered) -> dict[str, list[str]]:
    """The operator container's `--flag value` pairs (every flag takes one value)."""
    args = container(operator(rendered), "operator")["args"]
    assert args[0] == "operator"
    flags: dict[str, list[str]] = {}
    for flag, value in zip(args[1::2], args[2::2], strict=True):
        assert flag.startswith("--"), args
        flags.setdefault(flag, []).append(value)
    return flags


def sample_config(keys: int = 4) -> dict[str, Any]:
    rendered = render_config(
        [virtual_key(f"tenant-{i}", fallbacks=[{"provider": "openai", "model": "gpt-4o"}])
         for i in range(keys)],
        [provider_credential("openai", NAMESPACE)],
        [secret("openai-api-key", NAMESPACE, apiKey="sk-test")],
        RenderOptions(shared_namespaces=(NAMESPACE,)),
    )
    assert not rendered.problems, rendered.problems
    return rendered.config


# --- the gateway ------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", [(), ("all-features.yaml",)], ids=["defaults", "all-features"])
def test_the_gateway_mounts_every_configmap_part_the_operator_renders(profile: tuple[str]) -> None:
    rendered = render(*profile)
    deployment = gateway(rendered)
    args = parse(container(deployment, "gateway")["args"])
    config_name = operator_flags(rendered)["--config-name"][0]
    sources = volume_at(deployment, "gateway", args.config)["projected"]["sources"]
    projected = [s["configMap"]["name"] for s in sources]

    # Force many small parts: every one of them must be in the projected volume.
    maps = config_maps(sample_config(), config_name, NAMESPACE, max_bytes=1000)
    assert 1 < len(maps) <= len(projected)
    for index, cm in enumerate(maps):
        assert cm["metadata"]["name"] == projected[index]
        (key,) = cm["data"]
        assert key == CONFIG_PART_KEY.format(index=index, count=len(maps))
    # No `items`: each part's single, uniquely named key lands in the one folder.
    assert all("items" not in s["configMap"] for s in sources)
    # Part 0 always exists once the operator has run; later parts come and go.
    assert [s["configMap"]["optional"] for s in sources] == [False] + [True] * (len(sources) - 1)


def test_the_mounted_parts_load_as_one_config(tmp_path: Path) -> None:
    """What the kubelet puts in the projected folder is what the gateway's loader reads."""
    config = sample_config()
    for cm in config_maps(config, "tg-tollgate-config", NAMESPACE, max_bytes=1000):
        for key, text in cm["data"].items():
            (tmp_path / key).write_text(text)
    loaded, revision = read_config(str(tmp_path))
    assert revision == config["revision"]
    assert [k.id for k in loaded.virtual_keys] == [k["id"] for k in config["virtualKeys"]]


@pytest.mark.parametrize("profile", [(), ("all-features.yaml",)], ids=["defaults", "all-features"])
def test_the_gateway_mounts_the_credentials_secret_where_the_config_points(
        profile: tuple[str]) -> None:
    rendered = render(*profile)
    config_name = operator_flags(rendered)["--config-name"][0]
    volume = volume_at(gateway(rendered), "gateway", CREDENTIALS_MOUNT_PATH)
    # The operator's naming (OperatorOptions.credentials_secret_name) and render function.
    from tollgate.operator.options import OperatorOptions

    name = OperatorOptions(config_name=config_name).credentials_secret_name
    expected = credentials_secret(render_config([], [], []), name, NAMESPACE)["metadata"]["name"]
    assert volume["secret"]["secretName"] == expected
    assert volume["secret"].get("items") is None  # one file per provider key, names vary
    provider = sample_config()["providers"][0]
    assert provider["apiKey"]["file"].startswith(CREDENTIALS_MOUNT_PATH + "/")


@pytest.mark.parametrize("profile", [(), ("all-features.yaml",)], ids=["defaults", "all-features"])
def test_the_gateway_runs_the_gateway_command_on_its_port(profile: tuple[str]) -> None:
    rendered = render(*profile)
    deployment = gateway(rendered)
    main = container(deployment, "gateway")
    assert main["command"] == ["tollgate"]
    args = parse(main["args"])
    assert args.command == "gateway"
    assert args.config == CONFIG_DIR
    assert args.host == "0.0.0.0"
    assert find(main["ports"], "http")["containerPort"] == args.port
    service = rendered.one("Service", "-gateway")
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    # SIGKILL comes after preStop + drain, never during a drain.
    pre_stop = main["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > int(pre_stop[1]) + args.drain_seconds


def test_the_probes_hit_the_gateways_health_routes() -> None:
    main = container(gateway(render()), "gateway")
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert main["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}


def test_the_gateway_serves_from_a_folder_laid_out_like_the_pod(tmp_path: Path) -> None:
    """Start the real gateway with the Deployment's own arguments (mount path and port
    swapped for local ones) on the operator's parts: it becomes ready on their revision."""
    config = sample_config()
    for cm in config_maps(config, "tg-tollgate-config", NAMESPACE, max_bytes=1000):
        for key, text in cm["data"].items():
            (tmp_path / key).write_text(text)
    argv = list(container(gateway(render()), "gateway")["args"])
    port = free_port()
    argv[argv.index("--config") + 1] = str(tmp_path)
    argv[argv.index("--host") + 1] = "127.0.0.1"
    argv[argv.index("--port") + 1] = str(port)
    argv[argv.index("--drain-seconds") + 1] = "1"
    log = (tmp_path.parent / "gateway.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "tollgate.gateway", *argv],
                               stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path.parent)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/healthz", alive=lambda: process.poll() is None)
        ready = httpx.get(url + "/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        assert ready.json()["configRevision"] == config["revision"]
        assert httpx.get(url + "/metrics", timeout=5).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


# --- the operator ----------------------------------------------------------------------------


@pytest.mark.parametrize("profile", [(), ("all-features.yaml",)], ids=["defaults", "all-features"])
def test_the_operator_renders_into_the_gateways_namespace_and_config_name(
        profile: tuple[str]) -> None:
    rendered = render(*profile)
    main = container(operator(rendered), "operator")
    assert main["command"] == ["tollgate"]
    flags = operator_flags(rendered)
    assert flags["--target-namespace"] == [NAMESPACE]
    assert gateway(rendered)["metadata"]["namespace"] == NAMESPACE
    sources = volume_at(gateway(rendered), "gateway", CONFIG_DIR)["projected"]["sources"]
    assert sources[0]["configMap"]["name"] == f"{flags['--config-name'][0]}-0"


def test_the_operator_watches_the_configured_namespaces() -> None:
    assert "--namespace" not in operator_flags(render())
    flags = operator_flags(render("all-features.yaml"))
    assert flags["--namespace"] == ["tenants"]
    assert flags["--credentials-namespace"] == ["tollgate-system"]
    # By default the release namespace holds the shared ProviderCredentials.
    assert operator_flags(render())["--credentials-namespace"] == [NAMESPACE]


@pytest.mark.parametrize("profile", [(), ("all-features.yaml",)], ids=["defaults", "all-features"])
def test_the_operator_arguments_are_the_operators_own_options(profile: tuple[str]) -> None:
    """Parsed by the operator's parser, they give the options the chart's other objects assume."""
    from tollgate.operator.__main__ import build_parser as operator_parser
    from tollgate.operator.options import options_from_args

    rendered = render(*profile)
    argv = container(operator(rendered), "operator")["args"]
    parsed = operator_parser().parse_args(argv[1:])
    parsed.base_config = None  # the file lives in the pod; its content is tested below
    options = options_from_args(parsed)
    assert options.peering, "several replicas need the leader Lease"
    assert options.credentials_dir == CREDENTIALS_MOUNT_PATH
    secret = volume_at(gateway(rendered), "gateway", CREDENTIALS_MOUNT_PATH)["secret"]
    assert secret["secretName"] == options.credentials_secret_name
    sources = volume_at(gateway(rendered), "gateway", CONFIG_DIR)["projected"]["sources"]
    assert sources[0]["configMap"]["name"] == f"{options.config_name}-0"
    assert options.target_namespace == gateway(rendered)["metadata"]["namespace"]
    lease_role = rendered.one("Role", "-operator-config")
    assert lease_role["metadata"]["namespace"] == options.target_namespace


def test_tollgate_operator_is_a_command_of_the_image() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if "operator" not in commands.choices:
        pytest.skip("`tollgate operator` is not a subcommand of the `tollgate` CLI yet")
    args = parse(container(operator(render("all-features.yaml")), "operator")["args"])
    assert args.command == "operator"


def test_each_operator_replica_is_named_by_its_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    from tollgate.operator.leader import default_identity

    env = container(operator(render()), "operator")["env"]
    assert find(env, "POD_NAME")["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert operator(render())["spec"]["replicas"] == 2
    monkeypatch.setenv("POD_NAME", "tg-tollgate-operator-abc")
    assert default_identity() == "tg-tollgate-operator-abc"


# --- the store --------------------------------------------------------------------------------


def base_config(rendered: Rendered) -> dict[str, Any]:
    deployment = operator(rendered)
    path = operator_flags(rendered)["--base-config"][0]
    volume = volume_at(deployment, "operator", os.path.dirname(path))
    cm = rendered.one("ConfigMap", volume["configMap"]["name"])
    return yaml.safe_load(cm["data"][os.path.basename(path)])


STORES = {
    "evaluation": ((), "redis://tg-tollgate-redis:6379/0"),
    "embedded": (("embedded.yaml",), None),
    "external-tls-password": (
        ("all-features.yaml",),
        "rediss://redis.example.internal:6380/0?ssl_ca_certs=/etc/tollgate/redis-tls/ca.crt"),
}


@pytest.mark.parametrize("store", STORES, ids=str)
def test_the_operator_renders_the_chosen_store_into_the_config(store: str) -> None:
    profile, url = STORES[store]
    rendered = render(*profile)
    base = base_config(rendered)
    assert base["store"].get("url") == url
    if url is None:
        path = base["store"]["path"]
        volume = volume_at(gateway(rendered), "gateway", os.path.dirname(path))
        assert "emptyDir" in volume
    if store == "evaluation":
        assert rendered.one("Service", "-redis")["metadata"]["name"] == url.split("/")[2][:-5]


def test_redis_password_and_ca_reach_the_gateway_as_files() -> None:
    rendered = render("all-features.yaml")
    store = base_config(rendered)["store"]
    password = volume_at(gateway(rendered), "gateway", os.path.dirname(store["passwordFile"]))
    assert password["secret"]["secretName"] == "tollgate-redis"
    assert password["secret"]["items"] == [{"key": "password",
                                            "path": os.path.basename(store["passwordFile"])}]
    ca_path = store["url"].split("ssl_ca_certs=")[1]
    ca = volume_at(gateway(rendered), "gateway", os.path.dirname(ca_path))
    assert ca["secret"]["secretName"] == "tollgate-redis-ca"
    # Nothing secret in the ConfigMap the operator reads.
    assert "hunter" not in yaml.safe_dump(store) and "@" not in store["url"]


@pytest.mark.parametrize("store", ["evaluation", "embedded"])
def test_the_operator_accepts_the_charts_base_config(store: str) -> None:
    base = base_config(render(*STORES[store][0]))
    rendered = render_config([], [], [], RenderOptions(base=base))
    GatewayConfig.model_validate(rendered.config)
    assert rendered.config["store"] == {**rendered.config["store"], **base["store"]}


def test_the_gateway_config_accepts_a_redis_password_file() -> None:
    base = base_config(render("all-features.yaml"))
    GatewayConfig.model_validate({"apiVersion": "tollgate.dev/v1alpha1",
                                  "kind": "GatewayConfig", **base})


def test_gateway_config_store_settings_in_the_schema_exist_in_the_model() -> None:
    from tollgate.gateway.config.models import StoreSettings

    schema = yaml.safe_load((Path(__file__).parents[2] / "charts/tollgate/values.schema.json")
                            .read_text())
    allowed = set(schema["properties"]["gatewayConfig"]["properties"]["store"]["properties"])
    aliases = {f.alias for f in StoreSettings.model_fields.values()}
    assert allowed <= aliases - {"url", "path"}


def test_ingress_and_httproute_expose_only_the_api() -> None:
    rendered = render("all-features.yaml")
    ingress = rendered.one("Ingress", "-gateway")
    paths = [p["path"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    assert paths == ["/v1", "/v1"]
    route = rendered.one("HTTPRoute", "-gateway")
    (rule,) = route["spec"]["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/v1"}}]
    service = rendered.one("Service", "-gateway")
    assert rule["backendRefs"][0]["port"] == service["spec"]["ports"][0]["port"]


def test_image_defaults_to_the_app_version_and_takes_a_tag_or_digest() -> None:
    chart = yaml.safe_load((Path(__file__).parents[2] / "charts/tollgate/Chart.yaml").read_text())
    image = container(gateway(render()), "gateway")["image"]
    assert image == f"ghcr.io/tollgate-dev/tollgate:{chart['appVersion']}"
    assert container(operator(render()), "operator")["image"] == image
    tagged = render("all-features.yaml")
    assert container(gateway(tagged), "gateway")["image"].endswith(":0.1.0-rc.1")
    digest = "sha256:" + "a" * 64
    pinned = render(sets=[set_json("image.digest", digest)])
    expected = f"ghcr.io/tollgate-dev/tollgate@{digest}"
    assert container(gateway(pinned), "gateway")["image"] == expected
