"""Sign-in throttling: too many failed passwords lock an email (and a client address) for a while.

Counts live in the server process's memory (``limits``' moving window), like a single-node
Rack::Attack: with several processes each keeps its own count, which still bounds guessing to
``processes x limit`` per window. Only failures count, so people who type their password right
are never slowed down, and a success forgets the email's failures.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from whatwut.kit.errors import TooManyRequests


class SignInThrottle:
    def __init__(self, *, failures_per_email: int, failures_per_address: int, window_minutes: int) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._per_email = RateLimitItemPerMinute(failures_per_email, window_minutes)
        self._per_address = RateLimitItemPerMinute(failures_per_address, window_minutes)

    def check(self, email: str, address: str | None) -> None:
        """Refuse before the password is even checked when either budget of failures is spent."""
        for item, key in self._keys(email, address):
            if not self._limiter.test(item, *key):
                reset_at = self._limiter.get_window_stats(item, *key).reset_time
                retry_after = max(1, math.ceil(reset_at - time.time()))
                raise TooManyRequests(
                    f"too many failed sign-ins; try again in {_minutes(retry_after)}",
                    field="email" if key[0] == "email" else None,
                    retry_after=retry_after,
                )

    def failed(self, email: str, address: str | None) -> None:
        for item, key in self._keys(email, address):
            self._limiter.hit(item, *key)

    def succeeded(self, email: str) -> None:
        self._limiter.clear(self._per_email, "email", _normalise(email))

    def _keys(self, email: str, address: str | None) -> list[tuple[RateLimitItem, tuple[str, str]]]:
        keys: list[tuple[RateLimitItem, tuple[str, str]]] = [(self._per_email, ("email", _normalise(email)))]
        if address:
            keys.append((self._per_address, ("address", address)))
        return keys


def _normalise(email: str) -> str:
    return email.strip().lower()


def _minutes(seconds: int) -> str:
    minutes = math.ceil(seconds / 60)
    return "a minute" if minutes <= 1 else f"{minutes} minutes"
