"""Run the app under uvicorn: one process, or worker processes each with its own socket.

uvicorn's ``--workers`` share one listening socket, and the kernel hands a new connection to
whichever worker is waiting in ``accept`` first. A few long-lived keep-alive connections (a
referral system's client pool) then tend to land on one worker while the other idles. Here
each worker listens on its own ``SO_REUSEPORT`` socket on the same address, and the kernel
spreads connections over the sockets evenly. The supervisor restarts a worker that dies (as
the same worker: the first keeps the start-up jobs the others leave to it).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any

import uvicorn

log = logging.getLogger(__name__)

RESTART_PAUSE_SECONDS = 1.0
"""Wait before restarting a worker that died, so a crash loop does not spin."""
STOP_GRACE_SECONDS = 20.0
"""How long workers get to finish their requests after SIGTERM before they are killed."""


class PortInUse(RuntimeError):
    """Another process already listens on the address."""


@dataclass
class ServerOptions:
    """What every worker runs: an app factory import string and uvicorn's settings."""

    app: str
    host: str = "127.0.0.1"
    port: int = 8000
    app_dir: str | None = None
    """A directory to import ``app`` from, put first on ``sys.path``."""
    uvicorn: dict[str, Any] = field(default_factory=dict)
    """Further ``uvicorn.Config`` arguments (``log_level``, proxy headers …)."""
    followers_env: dict[str, str] = field(default_factory=dict)
    """Environment of every worker but the first (e.g. leave start-up jobs to the first)."""


def serve(options: ServerOptions, workers: int = 1) -> None:
    """Serve until SIGINT or SIGTERM; several workers get a socket each (see module doc)."""
    check_free(options.host, options.port)
    if workers <= 1:
        uvicorn.run(options.app, app_dir=options.app_dir, **_config(options))
        return
    Supervisor(options, workers).run()


def _config(options: ServerOptions) -> dict[str, Any]:
    defaults = {"factory": True, "host": options.host, "port": options.port, "log_level": "info"}
    return defaults | options.uvicorn


def check_free(host: str, port: int) -> None:
    """Raise ``PortInUse`` when something already listens on the address."""
    # SO_REUSEPORT sockets of the same user bind a port that another server of ours listens
    # on, and would silently share its traffic: bind once without it to find out.
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise PortInUse(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to the address the other workers' sockets share.

    It is not listening yet: the event loop starts listening once the app has started, so the
    kernel sends no connection to a worker that cannot answer it (a new or restarted one).
    """
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def run_worker(options: ServerOptions, index: int = 0) -> None:
    """Worker ``index``: its own socket, one uvicorn server on the app factory."""
    if index > 0:
        os.environ.update(options.followers_env)
    if options.app_dir is not None:
        sys.path.insert(0, options.app_dir)
    sock = reuse_port_socket(options.host, options.port)
    config = uvicorn.Config(options.app, **_config(options))
    uvicorn.Server(config).run(sockets=[sock])


class Supervisor:
    """Starts the workers, restarts any that die, and stops them all on SIGINT or SIGTERM."""

    def __init__(self, options: ServerOptions, workers: int) -> None:
        self.options = options
        self.count = workers
        self.context = multiprocessing.get_context("spawn")
        self.workers: list[BaseProcess] = []
        self.stopping = False

    def run(self) -> None:
        """Start, watch and stop the workers."""
        previous = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.workers = [self._start(i) for i in range(self.count)]
            while not self.stopping:
                time.sleep(0.2)
                for i, worker in enumerate(self.workers):
                    if not worker.is_alive() and not self.stopping:
                        log.warning(
                            "worker %s exited with %s; restarting", worker.pid, worker.exitcode
                        )
                        time.sleep(RESTART_PAUSE_SECONDS)
                        self.workers[i] = self._start(i)
        finally:
            self._terminate()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _start(self, index: int) -> BaseProcess:
        worker = self.context.Process(
            target=run_worker, args=(self.options, index), name=f"triage-worker-{index}"
        )
        worker.start()
        return worker

    def _stop(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def _terminate(self) -> None:
        for worker in self.workers:
            if worker.is_alive():
                worker.terminate()  # SIGTERM: uvicorn finishes its requests and shuts down
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for worker in self.workers:
            worker.join(max(0.0, deadline - time.monotonic()))
            if worker.is_alive():
                worker.kill()
                worker.join()
