"""The `tollgate` command: `tollgate gateway --config FILE` and friends."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _gateway(args: argparse.Namespace) -> int:
    import shutil
    import tempfile

    import uvicorn

    from tollgate.gateway.app import CONFIG_ENV
    from tollgate.gateway.logs import configure_logging

    if not os.path.exists(args.config):
        print(f"tollgate: config file {args.config!r} does not exist", file=sys.stderr)
        return 2
    configure_logging(args.log_level)
    os.environ[CONFIG_ENV] = os.path.abspath(args.config)
    if args.watch_configmaps:
        from tollgate.gateway.kube.options import ClusterOptions, parse_target

        try:
            namespace, name = parse_target(args.watch_configmaps)
        except ValueError as exc:
            print(f"tollgate: --watch-configmaps: {exc}", file=sys.stderr)
            return 2
        # Every uvicorn worker builds its app from the environment (app_from_env).
        os.environ.update(ClusterOptions(namespace, name, args.status_interval,
                                         args.status_lease_seconds).to_env())
    # Several workers share /metrics through prometheus-client's multi-process mode: a fresh
    # folder for this run (the spawned workers read the variable when they start), removed on
    # exit. A PROMETHEUS_MULTIPROC_DIR set by the operator of the host is used as it is.
    metrics_dir = None
    if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = tempfile.mkdtemp(prefix="tollgate-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        uvicorn.run(
            "tollgate.gateway.app:app_from_env",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            loop="uvloop",
            http="httptools",
            access_log=False,
            log_config=None,
            timeout_graceful_shutdown=args.drain_seconds,
            timeout_keep_alive=30,
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def _check(args: argparse.Namespace) -> int:
    from tollgate.gateway.config.loader import ConfigError, read_config

    try:
        config, revision = read_config(args.config)
    except ConfigError as exc:
        print(f"{args.config}: invalid: {exc}", file=sys.stderr)
        return 1
    print(f"{args.config}: valid (revision {revision}, {len(config.providers)} providers, "
          f"{len(config.virtual_keys)} virtual keys)")
    return 0


def _hash_key(args: argparse.Namespace) -> int:
    import hashlib
    import secrets

    token = args.token or "tg-" + secrets.token_urlsafe(32)
    if not args.token:
        print(f"token:       {token}")
    print(f"tokenSHA256: {hashlib.sha256(token.encode()).hexdigest()}")
    return 0


def _usage_export(args: argparse.Namespace) -> int:
    import asyncio
    from datetime import UTC, datetime

    from tollgate.gateway.config.loader import ConfigError, read_config
    from tollgate.gateway.store.factory import StoreCache
    from tollgate.gateway.usage_export import export, parse_group_by

    def when(text: str) -> datetime:
        moment = datetime.fromisoformat(text)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    try:
        config, _ = read_config(args.config)
        group_by = parse_group_by(args.group_by)
        since, until = when(args.since), when(args.until) if args.until else datetime.now(UTC)
    except (ConfigError, ValueError) as exc:
        print(f"tollgate usage export: {exc}", file=sys.stderr)
        return 2

    async def run() -> str:
        stores = StoreCache(base_dir=os.path.dirname(os.path.abspath(args.config)))
        store, _ = stores(config.store)
        try:
            return await export(store.ledger(since, until), group_by, args.format)
        finally:
            await stores.aclose()

    sys.stdout.write(asyncio.run(run()))
    return 0


def _manifests(args: argparse.Namespace) -> int:
    from tollgate.operator import cli as operator_cli

    run = operator_cli.render_main if args.command == "render" else operator_cli.validate_main
    return run(args.filename, namespace=args.namespace,
               shared_namespaces=args.credentials_namespace, require_secrets=args.require_secrets)


def _import(args: argparse.Namespace) -> int:
    from tollgate.operator.importer import import_main

    return import_main(args.source, args.file, output=args.output, namespace=args.namespace)


def _operator(args: argparse.Namespace) -> int:
    from tollgate.operator.__main__ import run
    from tollgate.operator.options import options_from_args

    return run(options_from_args(args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tollgate", description="Tollgate: a Kubernetes-native LLM gateway.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    gateway = commands.add_parser("gateway", help="run the gateway (OpenAI-compatible API)")
    gateway.add_argument("--config", "-c", required=True, help="GatewayConfig YAML file")
    gateway.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    gateway.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    gateway.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    gateway.add_argument("--log-level", default="info",
                         choices=["debug", "info", "warning", "error"])
    gateway.add_argument("--drain-seconds", type=int, default=30,
                         help="on SIGTERM, wait this long for in-flight requests (default 30)")
    gateway.add_argument(
        "--watch-configmaps", metavar="NAMESPACE/CONFIGNAME",
        help="in Kubernetes: watch the operator's ConfigMaps (label tollgate.dev/config="
             "CONFIGNAME) through the API and serve a new revision at once (--config, the "
             "mounted copy, is the fallback), report the served revision, and publish "
             "VirtualKey status from one replica at a time")
    gateway.add_argument("--status-interval", type=float, default=15.0, metavar="SECONDS",
                         help="with --watch-configmaps: how often VirtualKey status is "
                              "published (default 15; 0: never)")
    gateway.add_argument("--status-lease-seconds", type=float, default=15.0, metavar="SECONDS",
                         help="with --watch-configmaps: how long a silent status publisher "
                              "keeps its Lease (default 15)")
    gateway.set_defaults(run=_gateway)

    check = commands.add_parser("check-config", help="validate a GatewayConfig file and exit")
    check.add_argument("config")
    check.set_defaults(run=_check)

    hash_key = commands.add_parser(
        "hash-key", help="print the tokenSHA256 of a virtual-key token (new token if none given)")
    hash_key.add_argument("token", nargs="?")
    hash_key.set_defaults(run=_hash_key)

    usage = commands.add_parser("usage", help="the usage ledger")
    usage_commands = usage.add_subparsers(dest="usage_command", required=True, metavar="COMMAND")
    export = usage_commands.add_parser(
        "export", help="export ledger records (raw or grouped) as CSV or JSON lines")
    export.add_argument("--config", "-c", required=True,
                        help="the gateway's GatewayConfig file (its `store` is read)")
    export.add_argument("--since", required=True, help="ISO time, inclusive (UTC if no zone)")
    export.add_argument("--until", help="ISO time, exclusive (default: now)")
    export.add_argument("--group-by", help="e.g. customer,tag:billingCode (default: raw rows)")
    export.add_argument("--format", choices=["csv", "jsonl"], default="csv")
    export.set_defaults(run=_usage_export)

    from tollgate.operator.options import add_arguments as add_operator_arguments

    operator = commands.add_parser(
        "operator", help="run the Kubernetes operator: VirtualKeys and ProviderCredentials → "
                         "the gateway's ConfigMaps and credentials Secret")
    add_operator_arguments(operator)
    operator.set_defaults(run=_operator)

    for name, help_text in (
        ("render", "print the GatewayConfig a folder of VirtualKey/ProviderCredential "
                   "manifests renders to (the operator's own code)"),
        ("validate", "check a folder of manifests: schema, CEL rules, references; "
                     "exit 1 on any error"),
    ):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("-f", "--filename", required=True, help="folder (or file) of manifests")
        sub.add_argument("-n", "--namespace", default="default",
                         help="namespace of manifests that name none")
        sub.add_argument("--credentials-namespace", action="append", default=[], metavar="NS",
                         help="namespace whose ProviderCredentials every VirtualKey may use "
                              "(repeatable)")
        sub.add_argument("--require-secrets", action="store_true",
                         help="a referenced Secret missing from the folder is an error")
        sub.set_defaults(run=_manifests)

    importer = commands.add_parser(
        "import", help="convert a LiteLLM or Bifrost config to ProviderCredential/VirtualKey "
                       "manifests (secrets as references); unmapped items go to stderr")
    importer.add_argument("--from", dest="source", required=True, choices=("litellm", "bifrost"))
    importer.add_argument("file", help="LiteLLM config.yaml or Bifrost config.json")
    importer.add_argument("-o", "--output", metavar="DIR", help="folder to write (default stdout)")
    importer.add_argument("--namespace", default="default", help="namespace of the manifests")
    importer.set_defaults(run=_import)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    raise SystemExit(main())
