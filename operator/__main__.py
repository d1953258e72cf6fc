"""`python -m tollgate.operator` (and `tollgate operator`): hold the Lease, then run kopf.

The process stands by until it holds the leader Lease (unless `--standalone`), then runs kopf
with the handler modules until a signal arrives or the Lease is lost. Losing the Lease ends the
process with exit code 1, so Kubernetes restarts it as a standby: a replica that might no
longer be alone must not keep writing. On SIGTERM it stops kopf, then releases the Lease.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence

import kopf

from tollgate.operator import kube
from tollgate.operator.leader import LeaderElector, LeaseConfig, default_identity
from tollgate.operator.options import OperatorOptions, add_arguments, options_from_args

__all__ = ["main", "run"]

logger = logging.getLogger("tollgate.operator")


def _register_handlers() -> None:
    """Importing the modules registers their handlers with kopf's default registry."""
    from tollgate.operator import settings  # noqa: F401
    from tollgate.operator.handlers import credentials, virtualkeys  # noqa: F401


async def _operate(options: OperatorOptions) -> int:
    _register_handlers()
    identity = options.identity or default_identity()
    client = await kube.KubeClient.connect()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    elector: LeaderElector | None = None
    guard: asyncio.Task[None] | None = None
    lost = False
    try:
        if options.peering:
            elector = LeaderElector(client, LeaseConfig(
                options.target_namespace, options.lease_name, identity, options.lease_seconds))
            if not await elector.acquire(stop):
                return 0
        kopf_stop = asyncio.Event()

        async def watch_leadership() -> None:
            nonlocal lost
            if elector is not None:
                await elector.hold()
                lost = True
                kopf_stop.set()

        # Created before kopf starts, so kopf's shutdown leaves this task to us.
        guard = asyncio.create_task(watch_leadership(), name="tollgate lease holder")
        # From here on kopf owns SIGTERM/SIGINT; its cleanup also sets `stop_flag`, so its
        # waiter on the flag ends with everything else instead of hanging for 5 s.
        memo = kopf.Memo(options=options, client=client, identity=identity, stop_flag=kopf_stop)
        namespaces = options.watched_namespaces
        await kopf.operator(
            clusterwide=not namespaces, namespaces=namespaces, standalone=True,
            identity=identity, memo=memo, stop_flag=kopf_stop,
            liveness_endpoint=options.liveness,
        )
    finally:
        if guard is not None:
            guard.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await guard
        if elector is not None and not lost:
            await elector.release()
        await client.close()
    if lost:
        logger.error("exiting: the leader Lease was lost")
        return 1
    return 0


def run(options: OperatorOptions) -> int:
    """Run the operator in this process until it is stopped; returns the exit code."""
    kopf.configure(verbose=options.verbose, log_format=kopf.LogFormat.FULL)
    if not options.verbose:
        # kopf logs every handled event at INFO; keep its warnings and errors only.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    return asyncio.run(_operate(options))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tollgate.operator",
        description="The Tollgate operator: VirtualKeys and ProviderCredentials → the "
                    "gateway's ConfigMaps and credentials Secret.")
    add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run(options_from_args(build_parser().parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
