"""Run the app under uvicorn: one process, or worker processes fed by a supervisor.

uvicorn's ``--workers`` share one listening socket, and the kernel hands a new connection to
whichever worker is waiting in ``accept`` first: a few long-lived keep-alive connections (a
referral system's client pool, a proxy's upstream pool) then tend to land on one worker while
the other idles. Sockets of their own per worker (``SO_REUSEPORT``) spread connections by a
hash of their addresses, which splits eight connections evenly only about one time in four.
Here the supervisor listens, accepts each connection and hands it to the workers in turn over
a Unix socket (``SCM_RIGHTS``), as Node's cluster module does; a worker gets connections only
once its app has started, and connections wait in the listen backlog while none has. The
supervisor restarts a worker that dies (as the same worker: the first keeps the start-up jobs
the others leave to it) and gives up when one cannot start at all.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import logging
import multiprocessing
import os
import selectors
import signal
import socket
import sys
import time
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
    """Serve until SIGINT or SIGTERM; several workers are fed by a supervisor (module doc)."""
    check_free(options.host, options.port)
    if workers <= 1:
        uvicorn.run(options.app, app_dir=options.app_dir, **_config(options))
        return
    if any(name.startswith("ssl") for name in options.uvicorn_config):
        # Handed connections are served as plain HTTP: terminate TLS in front of the workers.
        raise ValueError("TLS options are not supported with several workers")
    try:
        listener = listening_socket(options.host, options.port)
    except OSError as exc:  # taken since check_free looked
        raise _cannot_listen(options.host, options.port, exc) from exc
    code = Supervisor(options, workers, listener).run()
    if code:
        sys.exit(code)


def _config(options: ServerOptions) -> dict[str, Any]:
    defaults = {"factory": True, "host": options.host, "port": options.port, "log_level": "info"}
    return defaults | options.uvicorn_config


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_free(host: str, port: int) -> None:
    """Raise ``CannotListen`` when the address cannot be listened on (taken, not local …)."""
    # Before migrations run and workers start, so that a taken port is a message, not a
    # half-started server.
    try:
        with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise _cannot_listen(host, port, exc) from exc


def _cannot_listen(host: str, port: int, exc: OSError) -> CannotListen:
    return CannotListen(f"cannot listen on {_address(host, port)}: {exc.strerror or exc}")


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def listening_socket(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """The supervisor's listening socket (non-blocking)."""
    sock = socket.create_server((host, port), family=_family(host), backlog=backlog)
    sock.setblocking(False)
    return sock


READY = b"R"
"""What a worker sends the supervisor once its app has started."""


class HandedConnectionsServer(uvicorn.Server):
    """A uvicorn server that listens on nothing and serves the connections handed to it."""

    def __init__(self, config: uvicorn.Config, channel: socket.socket) -> None:
        super().__init__(config)
        self.channel = channel

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start the app, then take connections from the supervisor and say it is ready."""
        await super().startup(sockets=[])
        config = self.config

        def create_protocol(_loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Protocol:
            # As uvicorn's own startup builds it for a listening socket.
            return config.http_protocol_class(  # type: ignore[call-arg]  # typed as the base class
                config=config,
                server_state=self.server_state,
                app_state=self.lifespan.state,
                _loop=_loop,
            )

        loop = asyncio.get_running_loop()
        self.channel.setblocking(False)
        loop.add_reader(self.channel.fileno(), self._take, loop, create_protocol)
        self.channel.send(READY)

    def _take(self, loop: asyncio.AbstractEventLoop, create_protocol: Any) -> None:
        """Serve the connections the supervisor sent; stop if it has gone."""
        while True:
            try:
                message, fds, _, _ = socket.recv_fds(self.channel, 16, 16)
            except BlockingIOError:
                return
            except OSError:
                message, fds = b"", []
            if not message and not fds:
                loop.remove_reader(self.channel.fileno())
                self.should_exit = True  # the supervisor is gone: finish up and stop
                return
            for fd in fds:
                connection = socket.socket(fileno=fd)
                connection.setblocking(False)
                loop.create_task(self._connect(loop, create_protocol, connection))

    async def _connect(
        self, loop: asyncio.AbstractEventLoop, create_protocol: Any, connection: socket.socket
    ) -> None:
        try:
            await loop.connect_accepted_socket(create_protocol, connection)
        except OSError:
            connection.close()  # the client left before the worker took it

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Take no more connections, then let uvicorn finish the ones it has."""
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(self.channel.fileno())
        self.channel.close()
        await super().shutdown(sockets=sockets)


def run_worker(options: ServerOptions, channel: socket.socket) -> None:
    """One worker process: one uvicorn server on the app factory, fed by the supervisor."""
    # Ctrl-C reaches every process of the terminal: the supervisor stops the workers in
    # order (uvicorn installs its own handlers while it serves).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _stop_with_parent()
    if options.app_dir is not None:
        sys.path.insert(0, options.app_dir)
    server = HandedConnectionsServer(uvicorn.Config(options.app, **_config(options)), channel)
    server.run()
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
    """Starts the workers, hands them connections in turn, restarts any that die, stops them."""

    def __init__(self, options: ServerOptions, workers: int, listener: socket.socket) -> None:
        self.options = options
        self.count = workers
        self.context = multiprocessing.get_context("spawn")
        self.workers: list[BaseProcess] = []
        self.channels: list[socket.socket | None] = []
        self.ready: list[bool] = []
        self.started: list[float] = []
        self.deaths: list[int] = []
        self.restart_at: list[float | None] = []
        self.next_worker = 0
        self.stopping = False
        self.selector = selectors.DefaultSelector()
        self.listener: socket.socket | None = listener
        self.accepting = False
        self.pending: collections.deque[socket.socket] = collections.deque()
        """Accepted connections no worker could take yet (all busy or restarting)."""
        self.accept_paused_until = 0.0

    def run(self) -> int:
        """Start, feed, watch and stop the workers; the exit code (non-zero if one cannot start)."""
        from api.operations import configure_json_logs

        configure_json_logs()
        previous = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for index in range(self.count):
                self.workers.append(self._start(index))
                self.started.append(time.monotonic())
                self.deaths.append(0)
                self.restart_at.append(None)
            while not self.stopping:
                for key, _ in self.selector.select(timeout=0.2):
                    if key.data is None:
                        self._accept()
                    elif key.fileobj is self.channels[key.data]:  # not forgotten meanwhile
                        self._hear(key.data)
                self._hand_pending()
                code = self._watch()
                if code:
                    return code
                self._listen(self._should_accept())
            return 0
        finally:
            self._close_listener()
            self._terminate()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _watch(self) -> int:
        """Schedule restarts of dead workers and start those due; non-zero to give up."""
        now = time.monotonic()
        for index, worker in enumerate(self.workers):
            if self.stopping:
                return 0
            due = self.restart_at[index]
            if due is not None:
                if now >= due:
                    self.restart_at[index] = None
                    self.workers[index] = self._start(index)
                    self.started[index] = now
                continue
            if worker.is_alive():
                continue
            self._forget(index)
            if worker.exitcode == STARTUP_FAILURE:
                log.error("worker %d could not start; stopping", index)
                return STARTUP_FAILURE
            if now - self.started[index] > SETTLED_SECONDS:
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
            self.restart_at[index] = now + pause
        return 0

    def _start(self, index: int) -> BaseProcess:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        worker = self.context.Process(
            target=run_worker, args=(self.options, theirs), name=f"triage-worker-{index}"
        )
        # A spawned process copies this environment when it starts.
        extra = self.options.followers_env if index > 0 else {}
        saved = {name: os.environ.get(name) for name in extra}
        os.environ.update(extra)
        try:
            worker.start()
        finally:
            theirs.close()
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        ours.setblocking(False)
        if index < len(self.channels):
            self.channels[index], self.ready[index] = ours, False
        else:
            self.channels.append(ours)
            self.ready.append(False)
        self.selector.register(ours, selectors.EVENT_READ, index)
        return worker

    def _hear(self, index: int) -> None:
        """A worker said it is ready, or its end closed (it died)."""
        channel = self.channels[index]
        if channel is None:
            return
        try:
            message = channel.recv(16)
        except BlockingIOError:
            return
        except OSError:
            message = b""
        if message == READY:
            self.ready[index] = True
            log.info("worker %d ready (pid %s)", index, self.workers[index].pid)
        elif not message:
            self._forget(index)

    def _forget(self, index: int) -> None:
        """Stop handing connections to a worker that died."""
        channel = self.channels[index]
        if channel is not None:
            self.selector.unregister(channel)
            channel.close()
            self.channels[index] = None
        self.ready[index] = False

    def _should_accept(self) -> bool:
        """Accept while a worker is ready and nothing waits; else the backlog holds them."""
        return any(self.ready) and not self.pending and time.monotonic() >= self.accept_paused_until

    def _listen(self, on: bool) -> None:
        if self.listener is None or on == self.accepting:
            return
        if on:
            self.selector.register(self.listener, selectors.EVENT_READ, None)
        else:
            self.selector.unregister(self.listener)
        self.accepting = on

    def _accept(self) -> None:
        """Hand every waiting connection to the next ready worker in turn."""
        assert self.listener is not None
        for _ in range(64):
            try:
                connection, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. out of file descriptors: pause rather than spin
                log.error("accept failed: %s", type(exc).__name__)
                self.accept_paused_until = time.monotonic() + 0.5
                self._listen(False)
                return
            if not self._hand(connection):
                self.pending.append(connection)
                self._listen(False)
                return

    def _hand_pending(self) -> None:
        while self.pending and self._hand(self.pending[0]):
            self.pending.popleft()

    def _hand(self, connection: socket.socket) -> bool:
        """Send a connection to the next ready worker (and close ours); False if none took it."""
        for _ in range(self.count):
            index = self.next_worker
            self.next_worker = (index + 1) % self.count
            channel = self.channels[index]
            if channel is None or not self.ready[index]:
                continue
            try:
                socket.send_fds(channel, [b"c"], [connection.fileno()])
            except BlockingIOError:
                continue  # its queue is full (its loop is stalled): the next one
            except (BrokenPipeError, ConnectionResetError, ConnectionRefusedError):
                self._forget(index)  # it died
                continue
            except OSError as exc:
                log.error("handing a connection to worker %d failed: %s", index, exc.errno)
                continue
            connection.close()
            return True
        return False

    def _close_listener(self) -> None:
        if self.listener is not None:
            self._listen(False)
            self.listener.close()  # new connections are refused from now on
            self.listener = None
        while self.pending:
            self.pending.popleft().close()

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
        for channel in self.channels:
            if channel is not None:
                channel.close()
