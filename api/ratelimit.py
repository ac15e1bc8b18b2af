"""Rate limits per API key, per person and on failed sign-ins (sliding windows, ``limits``)."""

from __future__ import annotations

import hashlib
import hmac
import math
import time

from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter

from api.errors import ApiError
from triage.settings import Settings


class RateLimits:
    """The service's limits and the counters behind them."""

    def __init__(self, settings: Settings, *, key: bytes = b"") -> None:
        self.limiter = SlidingWindowCounterRateLimiter(
            storage_from_string(settings.rate_limit_storage)
        )
        self.rates: dict[str, RateLimitItem] = {
            "key": parse(settings.rate_limit_key),
            "user": parse(settings.rate_limit_user),
            "sign_in": parse(settings.rate_limit_sign_in),
            "sign_in_client": parse(settings.rate_limit_sign_in_client),
        }
        self._key = key

    def hit(self, kind: str, name: str) -> None:
        """Count one request of ``name``; 429 with Retry-After once its limit is used up."""
        if not self.limiter.hit(self.rates[kind], kind, self._counter(name)):
            raise self._refusal(kind, name)

    def refuse_if_spent(self, kind: str, name: str) -> None:
        """429 when ``name`` has used up its limit; counts nothing (see ``count``)."""
        if not self.limiter.test(self.rates[kind], kind, self._counter(name)):
            raise self._refusal(kind, name)

    def count(self, kind: str, name: str) -> None:
        """Count one event of ``name`` (a failed sign-in) without refusing anything."""
        self.limiter.hit(self.rates[kind], kind, self._counter(name))

    def _counter(self, name: str) -> str:
        # Typed usernames can be passwords typed in the wrong box: counters are keyed hashes,
        # so nothing typed reaches the limiter's storage (which may be a shared Redis).
        return hmac.new(self._key, name.encode("utf-8"), hashlib.sha256).hexdigest()[:32]

    def _refusal(self, kind: str, name: str) -> ApiError:
        rate = self.rates[kind]
        reset_at = self.limiter.get_window_stats(rate, kind, self._counter(name)).reset_time
        retry_after = max(1, math.ceil(reset_at - time.time()))
        return ApiError(
            429,
            "rate_limited",
            f"too many requests: the limit is {rate}; try again in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
