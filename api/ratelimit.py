"""Rate limits per API key, per person and per sign-in name (sliding windows, ``limits``)."""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter

from api.errors import ApiError
from triage.settings import Settings


class RateLimits:
    """The service's limits and the counters behind them."""

    def __init__(self, settings: Settings) -> None:
        self.limiter = SlidingWindowCounterRateLimiter(
            storage_from_string(settings.rate_limit_storage)
        )
        self.rates: dict[str, RateLimitItem] = {
            "key": parse(settings.rate_limit_key),
            "user": parse(settings.rate_limit_user),
            "sign_in": parse(settings.rate_limit_sign_in),
        }

    def hit(self, kind: str, name: str) -> None:
        """Count one request of ``name``; 429 with Retry-After once its limit is used up."""
        rate = self.rates[kind]
        if self.limiter.hit(rate, kind, name):
            return
        reset_at = self.limiter.get_window_stats(rate, kind, name).reset_time
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise ApiError(
            429,
            "rate_limited",
            f"too many requests: the limit is {rate}; try again in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
