"""In-memory rate limits (one process serves the event, so memory is the right place)."""

import math
import time


class RateLimiter:
    """A token bucket per key: ``per_minute`` requests a minute, bursts up to the same number.

    ``per_minute`` 0 disables the limit.
    """

    def __init__(self, per_minute, clock=time.monotonic, max_keys=100_000):
        self.per_minute = per_minute
        self._clock = clock
        self._buckets = {}
        self._max_keys = max_keys

    def hit(self, key):
        """Count one request for ``key``. Returns 0 if allowed, else seconds to wait."""
        if not self.per_minute:
            return 0
        now = self._clock()
        rate = self.per_minute / 60.0
        tokens, last = self._buckets.get(key, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - last) * rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return max(1, math.ceil((1.0 - tokens) / rate))
        if len(self._buckets) >= self._max_keys and key not in self._buckets:
            self._prune(now, rate)
        self._buckets[key] = (tokens - 1.0, now)
        return 0

    def _prune(self, now, rate):
        """Forget keys whose buckets have refilled (they behave as new keys anyway)."""
        full = [k for k, (tokens, last) in self._buckets.items()
                if tokens + (now - last) * rate >= self.per_minute]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) >= self._max_keys:  # under attack from many keys: start over
            self._buckets.clear()


class Limits:
    def __init__(self, login_per_minute, submissions_per_minute):
        self.login = RateLimiter(login_per_minute)
        self.submissions = RateLimiter(submissions_per_minute)
