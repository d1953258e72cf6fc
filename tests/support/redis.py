"""A real redis-server on 127.0.0.1, started by the tests; stoppable and restartable on the
same port, so outage tests can take the store away and bring it back."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from tests.support.net import free_port

__all__ = ["RedisServer", "redis_binary"]

_FALLBACK = "/usr/bin/redis-server"


def redis_binary() -> str:
    found = shutil.which("redis-server") or (_FALLBACK if Path(_FALLBACK).exists() else None)
    if found is None:
        raise RuntimeError(
            "redis-server is not installed; run `bash scripts/ensure-tools.sh` (or `make test`)"
        )
    return found


def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server process in its own temp dir, on a fixed port across restarts.

    No persistence by default (a restart comes back empty, like a lost cache node);
    `persistent=True` turns on an fsync-always append-only file, so data survives even kill()."""

    def __init__(self, directory: Path, port: int | None = None, *,
                 persistent: bool = False) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.persistent = persistent
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--dir", str(self.directory), "--daemonize", "no",
             *(("--appendonly", "yes", "--appendfsync", "always") if self.persistent
               else ("--appendonly", "no"))],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with {self.process.returncode}; see "
                    f"{self.directory / 'redis.log'}"
                )
            if _pong(self.port):
                return
            time.sleep(0.01)
        self.stop()
        raise TimeoutError(f"redis-server on port {self.port} not ready within {timeout} s")

    def stop(self) -> None:
        """Graceful stop (SIGTERM), SIGKILL if it lingers."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """Abrupt death, like a crashed or partitioned server: clients see resets/refusals."""
        self._end(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _end(self, how: signal.Signals) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(how)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
