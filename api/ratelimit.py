"""Rate limits per API key, per person and on sign-ins (sliding windows, ``limits``), and the
bound on password checks (argon2) a worker runs at once."""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import TypeVar

import anyio
from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import (
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)

from api.errors import ApiError
from triage.settings import Settings


class RateLimits:
    """The service's limits and the counters behind them."""

    def __init__(self, settings: Settings, *, key: bytes = b"") -> None:
        storage = storage_from_string(settings.rate_limit_storage)
        self.limiter = SlidingWindowCounterRateLimiter(storage)
        # Sign-ins are few and guard passwords: an exact moving window, since the counter's
        # estimate lets a few more guesses through when they straddle two windows.
        self.exact = MovingWindowRateLimiter(storage)
        self.rates: dict[str, RateLimitItem] = {
            "key": parse(settings.rate_limit_key),
            "user": parse(settings.rate_limit_user),
            "sign_in": parse(settings.rate_limit_sign_in),
            "sign_in_client": parse(settings.rate_limit_sign_in_client),
        }
        self._key = key
        self.passwords = PasswordChecks(
            at_once=settings.sign_in_checks, per_client=settings.sign_in_checks_per_client
        )

    def hit(self, kind: str, name: str) -> None:
        """Count one request of ``name``; 429 with Retry-After once its limit is used up."""
        if not self._limiter(kind).hit(self.rates[kind], kind, self._counter(name)):
            raise self._refusal(kind, name)

    def refuse_if_spent(self, kind: str, name: str) -> None:
        """429 when ``name`` has used up its limit; counts nothing (see ``count``)."""
        if not self._limiter(kind).test(self.rates[kind], kind, self._counter(name)):
            raise self._refusal(kind, name)

    def count(self, kind: str, name: str) -> None:
        """Count one event of ``name`` without refusing anything."""
        self._limiter(kind).hit(self.rates[kind], kind, self._counter(name))

    def forgive(self, kind: str, name: str) -> None:
        """Forget what ``name`` has counted (a successful sign-in clears its failures)."""
        self._limiter(kind).clear(self.rates[kind], kind, self._counter(name))

    def _limiter(self, kind: str) -> RateLimiter:
        return self.exact if kind.startswith("sign_in") else self.limiter

    def _counter(self, name: str) -> str:
        # Typed usernames can be passwords typed in the wrong box: counters are keyed hashes,
        # so nothing typed reaches the limiter's storage (which may be a shared Redis).
        return hmac.new(self._key, name.encode("utf-8"), hashlib.sha256).hexdigest()[:32]

    def _refusal(self, kind: str, name: str) -> ApiError:
        rate = self.rates[kind]
        reset_at = self._limiter(kind).get_window_stats(rate, kind, self._counter(name)).reset_time
        retry_after = max(1, math.ceil(reset_at - time.time()))
        return ApiError(
            429,
            "rate_limited",
            f"too many requests: the limit is {rate}; try again in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )


T = TypeVar("T")

PASSWORD_WAIT_SECONDS = 5.0
"""How long a sign-in waits for a free password check before 503 (then the worker is saturated)."""


class PasswordChecks:
    """A bound on argon2 work: so many checks at once per worker, so many sign-ins per client.

    A check costs about 100 ms of every core (argon2id with four lanes) and 64 MiB. Without a
    bound, a burst of sign-ins took every thread of the pool and stalled signed-in users for
    seconds. Sign-ins past ``per_client`` in progress from one address get 429 at once; the
    rest wait for one of ``at_once`` check slots without holding a thread (an async wait), and
    past ``PASSWORD_WAIT_SECONDS`` get 503 with Retry-After.
    """

    def __init__(self, *, at_once: int, per_client: int) -> None:
        self.at_once = at_once
        self.per_client = per_client
        self._slots = anyio.CapacityLimiter(at_once)
        self._in_progress: Counter[str] = Counter()
        self._lock = threading.Lock()

    @contextmanager
    def admit(self, client: str) -> Iterator[None]:
        """Hold one of ``client``'s places for a sign-in; 429 when it has none left."""
        with self._lock:
            if self._in_progress[client] >= self.per_client:
                raise ApiError(
                    429,
                    "rate_limited",
                    f"too many sign-ins in progress from this address (at most {self.per_client} "
                    "at once); try again in 1 s",
                    headers={"Retry-After": "1"},
                )
            self._in_progress[client] += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_progress[client] -= 1
                if self._in_progress[client] <= 0:
                    del self._in_progress[client]

    async def run(self, check: Callable[..., T], /, *args: object) -> T:
        """Run ``check(*args)`` on a worker thread once a check slot is free (503 if none comes)."""
        acquired = False
        with anyio.move_on_after(PASSWORD_WAIT_SECONDS):
            await self._slots.acquire()
            acquired = True
        if not acquired:
            raise ApiError(
                503,
                "unavailable",
                "too many sign-ins at once; try again shortly",
                headers={"Retry-After": "1"},
            )
        try:
            return await anyio.to_thread.run_sync(partial(check, *args))
        finally:
            self._slots.release()
