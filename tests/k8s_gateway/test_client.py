"""Where the gateway finds the API server and its credentials: kubeconfig, or the pod's
service account."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import yaml

from tollgate.gateway.kube.client import (
    KubeConfigError,
    connection_from_environment,
    from_kubeconfig,
    in_cluster,
)


def _kubeconfig(path: Path, cluster: dict[str, object], user: dict[str, object],
                namespace: str | None = None) -> Path:
    context: dict[str, object] = {"cluster": "c", "user": "u"}
    if namespace:
        context["namespace"] = namespace
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "ctx",
        "clusters": [{"name": "other", "cluster": {"server": "http://wrong"}},
                     {"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "ctx", "context": context}],
    }))
    return path


def test_the_current_context_gives_server_namespace_and_bearer_token(tmp_path: Path) -> None:
    path = _kubeconfig(tmp_path / "config", {"server": "http://127.0.0.1:6443/"},
                       {"token": "abc"}, namespace="tenants")
    connection = from_kubeconfig(path)
    assert (connection.server, connection.namespace) == ("http://127.0.0.1:6443", "tenants")
    assert connection.headers() == {"Authorization": "Bearer abc"}
    assert connection.ssl_context is None


def test_a_token_file_is_read_relative_to_the_kubeconfig_and_reread(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("first\n")
    connection = from_kubeconfig(_kubeconfig(tmp_path / "config", {
        "server": "https://api.example:6443", "insecure-skip-tls-verify": True},
        {"tokenFile": "token"}))
    assert connection.headers() == {"Authorization": "Bearer first"}
    (tmp_path / "token").write_text("second")
    connection.reread()  # what a 401 triggers (and a minute passing)
    assert connection.headers() == {"Authorization": "Bearer second"}
    assert isinstance(connection.ssl_context, ssl.SSLContext)
    assert connection.ssl_context.verify_mode == ssl.CERT_NONE


def test_basic_credentials_and_unsupported_plugins(tmp_path: Path) -> None:
    basic = from_kubeconfig(_kubeconfig(tmp_path / "basic", {"server": "http://h"},
                                        {"username": "admin", "password": "pw"}))
    assert basic.headers() == {"Authorization": "Basic YWRtaW46cHc="}
    with pytest.raises(KubeConfigError, match="exec"):
        from_kubeconfig(_kubeconfig(tmp_path / "exec", {"server": "http://h"},
                                    {"exec": {"command": "aws"}}))


def test_kubeconfig_wins_over_the_service_account_and_missing_files_are_skipped(
        tmp_path: Path) -> None:
    path = _kubeconfig(tmp_path / "config", {"server": "http://127.0.0.1:1"}, {})
    environ = {"KUBECONFIG": f"{tmp_path / 'missing'}:{path}",
               "KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    assert connection_from_environment(environ).server == "http://127.0.0.1:1"
    with pytest.raises(KubeConfigError, match="no usable kubeconfig"):
        connection_from_environment({"KUBECONFIG": str(tmp_path / "missing")})
    with pytest.raises(KubeConfigError, match="not in a pod"):
        connection_from_environment({"HOME": str(tmp_path)})


def test_the_pods_service_account(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "namespace").write_text("tollgate-system\n")
    connection = in_cluster(tmp_path, {"KUBERNETES_SERVICE_HOST": "fd00::1",
                                       "KUBERNETES_SERVICE_PORT": "443"})
    assert connection.server == "https://[fd00::1]:443"
    assert connection.namespace == "tollgate-system"
    assert connection.headers() == {"Authorization": "Bearer sa-token"}
    with pytest.raises(KubeConfigError, match="no service account token"):
        in_cluster(tmp_path / "nowhere", {"KUBERNETES_SERVICE_HOST": "h",
                                          "KUBERNETES_SERVICE_PORT": "1"})
