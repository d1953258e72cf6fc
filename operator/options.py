"""How the operator is deployed: its command-line options, shared by `python -m
tollgate.operator` and `tollgate operator`.

Kept free of kopf, aiohttp and pydantic imports: `tollgate` builds this parser on every
invocation, so it must stay cheap to import.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "CREDENTIALS_MOUNT_PATH",
    "DEFAULT_CONFIG_NAME",
    "OperatorOptions",
    "add_arguments",
    "options_from_args",
]

CREDENTIALS_MOUNT_PATH = "/etc/tollgate/credentials"
"""Where the gateway mounts the credentials Secret (one file per provider key, no subfolders,
so a plain Secret volume works and the kubelet's atomic `..data` swap covers all of them).
Defined here, where it is cheap to import, and re-exported by `render`."""

DEFAULT_CONFIG_NAME = "tollgate-gateway-config"
DEFAULT_TARGET_NAMESPACE = "tollgate-system"
DEFAULT_LEASE_NAME = "tollgate-operator"


@dataclass(frozen=True)
class OperatorOptions:
    """Everything the operator needs to know that is not in the custom resources."""

    namespaces: tuple[str, ...] = ()
    """Namespaces (or kopf globs) watched for VirtualKeys, ProviderCredentials and Secrets;
    empty: the whole cluster."""
    config_name: str = DEFAULT_CONFIG_NAME
    """ConfigMaps `<name>-0..N-1` hold the rendered config; Secret `<name>-credentials` holds
    the provider keys."""
    target_namespace: str = DEFAULT_TARGET_NAMESPACE
    credentials_namespaces: tuple[str, ...] = ()
    """Namespaces whose ProviderCredentials every VirtualKey may name (always watched)."""
    peering: bool = True
    """Run only while holding the Lease (several replicas, one active); False: run at once."""
    lease_name: str = DEFAULT_LEASE_NAME
    lease_seconds: float = 15.0
    identity: str | None = None
    debounce_seconds: float = 0.1
    """A render waits for this much quiet after a change, so a burst renders once ..."""
    max_delay_seconds: float = 1.0
    """... but never longer than this after the first change of the burst."""
    rotation_overlap_seconds: float = 3600.0
    """How long a rotated-out token keeps working."""
    resync_seconds: float = 300.0
    """How often the written objects are re-read, to repair changes made behind our back."""
    credentials_dir: str = CREDENTIALS_MOUNT_PATH
    base: dict[str, Any] = field(default_factory=dict)
    """GatewayConfig sections the operator copies into every render (server, store, ...)."""
    liveness: str | None = None
    metrics_port: int = 0
    """Serve Prometheus /metrics on this port; 0: off."""
    verbose: bool = False

    @property
    def watched_namespaces(self) -> tuple[str, ...]:
        """What kopf watches: empty means cluster-wide."""
        if not self.namespaces:
            return ()
        return tuple(dict.fromkeys([*self.namespaces, *self.credentials_namespaces]))

    @property
    def credentials_secret_name(self) -> str:
        return f"{self.config_name}-credentials"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The operator's options, for any parser (its own `__main__` or `tollgate operator`)."""
    parser.add_argument("-n", "--namespace", action="append", default=[], metavar="NS",
                        help="namespace to watch (repeatable; kopf globs allowed); "
                             "default: all namespaces")
    parser.add_argument("--config-name", default=DEFAULT_CONFIG_NAME,
                        help="base name of the rendered ConfigMaps (<name>-0, <name>-1, ...) "
                             "and of the credentials Secret (<name>-credentials); "
                             f"default {DEFAULT_CONFIG_NAME}")
    parser.add_argument("--target-namespace", default=DEFAULT_TARGET_NAMESPACE,
                        help="namespace of the rendered ConfigMaps, Secret and leader Lease; "
                             f"default {DEFAULT_TARGET_NAMESPACE}")
    parser.add_argument("--credentials-namespace", action="append", default=[], metavar="NS",
                        help="namespace whose ProviderCredentials every VirtualKey may use "
                             "(repeatable; always watched)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--peering", dest="peering", action="store_true", default=True,
                      help="run only while holding the leader Lease, so several replicas "
                           "have one active (default)")
    mode.add_argument("--standalone", dest="peering", action="store_false",
                      help="no leader election: this process is active at once")
    parser.add_argument("--lease-name", default=DEFAULT_LEASE_NAME,
                        help="the coordination.k8s.io Lease to hold "
                             f"(default {DEFAULT_LEASE_NAME})")
    parser.add_argument("--lease-seconds", type=float, default=15.0,
                        help="how long a silent leader keeps the Lease (default 15)")
    parser.add_argument("--identity", help="this replica's name in the Lease "
                                           "(default: $POD_NAME, else host and pid)")
    parser.add_argument("--debounce-seconds", type=float, default=0.1,
                        help="quiet time that ends a burst of changes (default 0.1)")
    parser.add_argument("--max-delay-seconds", type=float, default=1.0,
                        help="longest wait between a change and its render (default 1)")
    parser.add_argument("--rotation-overlap-seconds", type=float, default=3600.0,
                        help="how long a rotated-out token keeps working (default 3600)")
    parser.add_argument("--resync-seconds", type=float, default=300.0,
                        help="how often written objects are re-read and repaired (default 300)")
    parser.add_argument("--credentials-mount-path", metavar="DIR",
                        default=CREDENTIALS_MOUNT_PATH,
                        help="where gateways mount the credentials Secret "
                             f"(default {CREDENTIALS_MOUNT_PATH})")
    parser.add_argument("--base-config", type=Path, metavar="FILE",
                        help="YAML with GatewayConfig sections copied into every render "
                             "(server, store, models, pricing, customers)")
    parser.add_argument("--liveness", metavar="URL",
                        help="serve kopf's liveness probe, e.g. http://0.0.0.0:8080/healthz")
    parser.add_argument("--metrics-port", type=int, default=0, metavar="PORT",
                        help="serve Prometheus /metrics on this port (default 0: off)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def options_from_args(args: argparse.Namespace) -> OperatorOptions:
    import yaml

    base: dict[str, Any] = {}
    if args.base_config is not None:
        loaded = yaml.safe_load(args.base_config.read_text()) or {}
        if not isinstance(loaded, dict):
            raise SystemExit(f"{args.base_config}: must be a YAML mapping of GatewayConfig "
                             "sections")
        base = loaded
    return OperatorOptions(
        namespaces=tuple(args.namespace),
        config_name=args.config_name,
        target_namespace=args.target_namespace,
        credentials_namespaces=tuple(args.credentials_namespace),
        peering=args.peering,
        lease_name=args.lease_name,
        lease_seconds=args.lease_seconds,
        identity=args.identity,
        debounce_seconds=args.debounce_seconds,
        max_delay_seconds=args.max_delay_seconds,
        rotation_overlap_seconds=args.rotation_overlap_seconds,
        resync_seconds=args.resync_seconds,
        credentials_dir=args.credentials_mount_path,
        base=base,
        liveness=args.liveness,
        metrics_port=args.metrics_port,
        verbose=args.verbose,
    )
