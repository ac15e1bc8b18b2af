"""Run the app under uvicorn: one process, or worker processes each with its own socket.

uvicorn's ``--workers`` share one listening socket, and the kernel hands a new connection to
whichever worker is waiting in ``accept`` first. A few long-lived keep-alive connections (a
referral system's client pool) then tend to land on one worker while the other idles. Here
each worker listens on its own ``SO_REUSEPORT`` socket on the same address, and the kernel
spreads new connections over the sockets by a hash of their addresses. ``SO_REUSEPORT``
trusts every process of the same user (Linux lets no other user join the group), so run the
service under a user of its own. The supervisor restarts a worker that dies (as the same
worker: the first keeps the start-up jobs the others leave to it) and gives up when one
cannot start at all.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

import uvicorn

log = logging.getLogger(__name__)

STARTUP_FAILURE = 3
"""uvicorn's exit code when the app cannot start (bad settings, store unreachable …)."""
RESTART_PAUSES = (1.0, 2.0, 5.0, 10.0, 30.0)
"""Waits before restarting a worker that died, longer each time it dies young."""
SETTLED_SECONDS = 60.0
"""A worker that ran this long starts again from the shortest pause."""
_PR_SET_PDEATHSIG = 1


class CannotListen(RuntimeError):
    """The address is taken, not local, or not allowed."""


@dataclass
class ServerOptions:
    """What every worker runs: an app factory import string and uvicorn's settings."""

    app: str
    host: str = "127.0.0.1"
    port: int = 8000
    app_dir: str | None = None
    """A directory to import ``app`` from, put first on ``sys.path``."""
    uvicorn_config: dict[str, Any] = field(default_factory=dict)
    """Further ``uvicorn.Config`` arguments (``log_level``, proxy headers …)."""
    followers_env: dict[str, str] = field(default_factory=dict)
    """Environment of every worker but the first (e.g. leave start-up jobs to the first)."""
    stop_grace_seconds: float = 60.0
    """How long workers get to finish their requests after SIGTERM before they are killed."""


def serve(options: ServerOptions, workers: int = 1) -> None:
    """Serve until SIGINT or SIGTERM; several workers get a socket each (see module doc)."""
    check_free(options.host, options.port)
    if workers <= 1:
        uvicorn.run(options.app, app_dir=options.app_dir, **_config(options))
        return
    with _address_claim(options.host, options.port):
        code = Supervisor(options, workers).run()
    if code:
        sys.exit(code)


def _config(options: ServerOptions) -> dict[str, Any]:
    defaults = {"factory": True, "host": options.host, "port": options.port, "log_level": "info"}
    return defaults | options.uvicorn_config


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_free(host: str, port: int) -> None:
    """Raise ``CannotListen`` when the address cannot be listened on (taken, not local …)."""
    # SO_REUSEPORT sockets of the same user bind a port that another server of ours listens
    # on, and would silently share its traffic: bind once without it to find out.
    try:
        with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise CannotListen(f"cannot listen on {_address(host, port)}: {reason}") from exc


@contextlib.contextmanager
def _address_claim(host: str, port: int) -> Iterator[None]:
    # Workers are bound but not yet listening while their apps start, which check_free cannot
    # see: a second supervisor for the same address is refused by this claim instead. An
    # abstract Unix socket name goes away with the process, however it ends.
    claim = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        claim.bind(f"\0triage-serve-{_address(host, port)}")
    except OSError as exc:
        claim.close()
        raise CannotListen(
            f"cannot listen on {_address(host, port)}: another triage serve is starting there"
        ) from exc
    try:
        yield
    finally:
        claim.close()


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to the address the other workers' sockets share.

    It is not listening yet: the event loop starts listening once the app has started, so the
    kernel sends no connection to a worker that cannot answer it (a new or restarted one).
    """
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def run_worker(options: ServerOptions) -> None:
    """One worker process: its own socket, one uvicorn server on the app factory."""
    # Ctrl-C reaches every process of the terminal: the supervisor stops the workers in
    # order (uvicorn installs its own handlers while it serves).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _stop_with_parent()
    if options.app_dir is not None:
        sys.path.insert(0, options.app_dir)
    sock = reuse_port_socket(options.host, options.port)
    server = uvicorn.Server(uvicorn.Config(options.app, **_config(options)))
    server.run(sockets=[sock])
    if not server.started:  # uvicorn returns quietly when the app failed to start
        sys.exit(STARTUP_FAILURE)


def _stop_with_parent() -> None:
    # If the supervisor dies without stopping us (SIGKILL, the OOM killer), stop too rather
    # than serve the port unwatched.
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # gone before prctl took effect
        sys.exit(0)


class Supervisor:
    """Starts the workers, restarts any that die, and stops them all on SIGINT or SIGTERM."""

    def __init__(self, options: ServerOptions, workers: int) -> None:
        self.options = options
        self.count = workers
        self.context = multiprocessing.get_context("spawn")
        self.workers: list[BaseProcess] = []
        self.started: list[float] = []
        self.deaths: list[int] = []
        self.stopping = False

    def run(self) -> int:
        """Start, watch and stop the workers; the exit code (non-zero if one cannot start)."""
        previous = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for index in range(self.count):
                self.workers.append(self._start(index))
                self.started.append(time.monotonic())
                self.deaths.append(0)
            while not self.stopping:
                time.sleep(0.2)
                for index, worker in enumerate(self.workers):
                    if self.stopping or worker.is_alive():
                        continue
                    if worker.exitcode == STARTUP_FAILURE:
                        log.error("worker %d could not start; stopping", index)
                        return STARTUP_FAILURE
                    self._restart(index, worker)
            return 0
        finally:
            self._terminate()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _restart(self, index: int, worker: BaseProcess) -> None:
        if time.monotonic() - self.started[index] > SETTLED_SECONDS:
            self.deaths[index] = 0
        pause = RESTART_PAUSES[min(self.deaths[index], len(RESTART_PAUSES) - 1)]
        self.deaths[index] += 1
        log.warning(
            "worker %d (pid %s) exited with %s; restarting in %g s",
            index,
            worker.pid,
            worker.exitcode,
            pause,
        )
        deadline = time.monotonic() + pause
        while time.monotonic() < deadline and not self.stopping:
            time.sleep(0.1)
        if not self.stopping:
            self.workers[index] = self._start(index)
            self.started[index] = time.monotonic()

    def _start(self, index: int) -> BaseProcess:
        worker = self.context.Process(
            target=run_worker, args=(self.options,), name=f"triage-worker-{index}"
        )
        # A spawned process copies this environment when it starts.
        extra = self.options.followers_env if index > 0 else {}
        saved = {name: os.environ.get(name) for name in extra}
        os.environ.update(extra)
        try:
            worker.start()
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        return worker

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def _terminate(self) -> None:
        for worker in self.workers:
            if worker.is_alive():
                worker.terminate()  # SIGTERM: uvicorn finishes its requests and shuts down
        deadline = time.monotonic() + self.options.stop_grace_seconds
        for worker in self.workers:
            worker.join(max(0.0, deadline - time.monotonic()))
            if worker.is_alive():
                worker.kill()
                worker.join()
