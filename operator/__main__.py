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
import sys
import urllib.parse
from collections.abc import AsyncIterator, Sequence

import aiohttp.web
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


@contextlib.asynccontextmanager
async def _standby_probe(url: str | None) -> AsyncIterator[None]:
    """While standing by, answer the liveness URL kopf serves once leading: a standby is alive,
    and its probe must not get it restarted."""
    if url is None:
        yield
        return
    parsed = urllib.parse.urlsplit(url)

    async def alive(request: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.json_response({"standby": True})

    app = aiohttp.web.Application()
    app.router.add_get(parsed.path or "/", alive)
    runner = aiohttp.web.AppRunner(app, access_log=None)
    await runner.setup()
    await aiohttp.web.TCPSite(runner, parsed.hostname, parsed.port or 80,
                              reuse_address=True).start()
    try:
        yield
    finally:
        await runner.cleanup()


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
            async with _standby_probe(options.liveness):
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
            memo=memo, stop_flag=kopf_stop,
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


def _check_base(options: OperatorOptions) -> str | None:
    """Render nothing with the deployment's base sections: a bad `--base-config` should stop
    the operator at start, not fail every render pass later."""
    from tollgate.operator.render import RenderError, RenderOptions, render

    try:
        render([], [], [], RenderOptions(base=options.base))
    except (RenderError, ValueError) as exc:
        return str(exc)
    return None


def run(options: OperatorOptions) -> int:
    """Run the operator in this process until it is stopped; returns the exit code."""
    problem = _check_base(options)
    if problem is not None:
        print(f"tollgate operator: --base-config: {problem}", file=sys.stderr)
        return 2
    kopf.configure(verbose=options.verbose, log_format=kopf.LogFormat.FULL)
    if not options.verbose:
        # kopf logs every handled event, aiohttp every probe, at INFO: keep warnings and up.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    if options.metrics_port:
        from tollgate.operator import metrics

        metrics.serve(options.metrics_port)
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
