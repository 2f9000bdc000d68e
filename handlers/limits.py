"""In-memory rate limits (one process serves the event, so memory is the right place): logins,
submissions, the turns anonymous requests take per client address, and each address's share of
the password-hashing threads.

Every table here is bounded (``max_keys``): past it, entries that no longer matter are dropped,
and under a flood of keys the table starts over, which only ever forgives.
"""

import asyncio
import collections
import math
import time

# A username that collects this many failed logins from all addresses together within
# USERNAME_WINDOW_S is being guessed from many places: each address is then locked after its
# first failure for it (LoginGuard).
USERNAME_FAILURES = 20
USERNAME_WINDOW_S = 600
# Failed logins from one address may come in a burst of this many seconds' worth of
# ``login_per_address_per_minute`` (at least 5): a flood gets only that many password checks
# before it is down to the rate.
FAILURE_BURST_S = 10
# The longest a lockout grows to (it doubles with each failure past the threshold).
MAX_LOCKOUT_S = 900
# Anonymous requests (Pacer): bursts of up to this many seconds' worth of the rate pass at once
# (a few people loading the results page together behind one NAT); a request whose turn is
# further away than MAX_WAIT_S waits that long and is refused.
BURST_S = 3
MAX_WAIT_S = 5.0


class RateLimiter:
    """A token bucket per key: ``per_minute`` requests a minute, bursts up to ``burst`` (default
    the same number).

    ``per_minute`` 0 disables the limit.
    """

    def __init__(self, per_minute, clock=time.monotonic, max_keys=100_000, burst=None):
        self.per_minute = per_minute
        self.burst = float(burst or per_minute)
        self._clock = clock
        self._buckets = {}
        self._max_keys = max_keys

    def hit(self, key):
        """Count one request for ``key``. Returns 0 if allowed, else seconds to wait."""
        if not self.per_minute:
            return 0
        now = self._clock()
        rate = self.per_minute / 60.0
        tokens = self._tokens(key, now, rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return max(1, math.ceil((1.0 - tokens) / rate))
        if len(self._buckets) >= self._max_keys and key not in self._buckets:
            self._prune(now, rate)
        self._buckets[key] = (tokens - 1.0, now)
        return 0

    def wait(self, key):
        """What ``hit`` would answer, without counting a request."""
        if not self.per_minute:
            return 0
        rate = self.per_minute / 60.0
        tokens = self._tokens(key, self._clock(), rate)
        return 0 if tokens >= 1.0 else max(1, math.ceil((1.0 - tokens) / rate))

    def empty(self, key):
        """True when ``key`` has no request left right now (without counting one)."""
        return self.wait(key) > 0

    def _tokens(self, key, now, rate):
        tokens, last = self._buckets.get(key, (self.burst, now))
        return min(self.burst, tokens + (now - last) * rate)

    def _prune(self, now, rate):
        """Forget keys whose buckets have refilled (they behave as new keys anyway)."""
        full = [k for k, (tokens, last) in self._buckets.items()
                if tokens + (now - last) * rate >= self.burst]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) >= self._max_keys:  # under attack from many keys: start over
            self._buckets.clear()


class LoginGuard:
    """Who may try a password now, decided before any hashing, so a refusal costs nothing.

    * Per (address, username): ``per_minute`` attempts a minute.
    * Per address, whatever the username: ``per_address_per_minute`` failed attempts a minute,
      in bursts of FAILURE_BURST_S seconds' worth. Only failures count, and an address past its
      failures is refused before the check (``check``, then ``address_wait`` once the address's
      turn to hash has come, which makes it exact however many attempts arrive at once): so
      guessing loops and random-username floods are refused cheaply, while the judges behind
      one venue NAT, who log in successfully, are never counted against each other.
    * Lockout per (address, username): after ``lockout_failures`` failures in a row that pair is
      refused for ``lockout_s`` seconds, doubling with every further failure (up to
      MAX_LOCKOUT_S); a success clears it. Only the guessing address is locked out: the judge's
      phone, on any other address, still has its password checked.
    * Per username, from all addresses: once a username has USERNAME_FAILURES failures within
      USERNAME_WINDOW_S (guessing from many addresses), every address is locked out after its
      first failure for it, instead of after ``lockout_failures``. An address that has not
      failed for that username is still let through to the password check, so this backoff can
      never keep the real judge out: it only makes each guessing address pay.

    ``lockout_failures`` 0 disables the lockouts; a rate of 0 disables that limit.
    """

    def __init__(self, per_minute, per_address_per_minute, lockout_failures, lockout_s,
                 clock=time.monotonic, max_keys=100_000):
        self.pair = RateLimiter(per_minute, clock, max_keys)
        self.address = RateLimiter(per_address_per_minute, clock, max_keys,
                                   burst=max(5, per_address_per_minute * FAILURE_BURST_S / 60))
        self.username = RateLimiter(USERNAME_FAILURES * 60 / USERNAME_WINDOW_S, clock, max_keys,
                                    burst=USERNAME_FAILURES)
        self.lockout_failures = lockout_failures
        self.lockout_s = lockout_s
        self._clock = clock
        self._max_keys = max_keys
        self._failures = {}  # (address, username) -> (failures in a row, locked until)

    def check(self, address, username):
        """Before an attempt: 0 if it may go on (it is then counted per address and username),
        else seconds to wait."""
        _, locked_until = self._failures.get((address, username), (0, 0.0))
        wait = locked_until - self._clock()
        if wait > 0:
            return max(1, math.ceil(wait))
        retry_after = self.pair.hit((address, username))
        if retry_after:
            return retry_after
        return self.address.wait(address)

    def address_wait(self, address):
        """Right before the password check: 0, or seconds until the address may fail again."""
        return self.address.wait(address)

    def succeeded(self, address, username):
        self._failures.pop((address, username), None)

    def failed(self, address, username):
        self.address.hit(address)
        if not self.lockout_failures:
            return
        self.username.hit(username)
        threshold = 1 if self.username.empty(username) else self.lockout_failures
        failures = self._failures.get((address, username), (0, 0.0))[0] + 1
        locked_until = 0.0
        if failures >= threshold:
            locked_until = self._clock() + min(
                MAX_LOCKOUT_S, self.lockout_s * 2 ** min(failures - threshold, 20))
        if len(self._failures) >= self._max_keys and (address, username) not in self._failures:
            now = self._clock()
            self._failures = {k: v for k, v in self._failures.items() if v[1] > now}
            if len(self._failures) >= self._max_keys:
                self._failures.clear()
        self._failures[(address, username)] = (failures, locked_until)


class Pacer:
    """Anonymous requests take turns per client address: ``per_minute`` a minute, with bursts
    of up to BURST_S seconds' worth passing at once.

    A request over that rate is not refused: it waits for its turn (``turn`` says how long), so
    however fast one address sends, the server handles its requests at that rate and no faster,
    while a few waiting requests cost nothing but a timer. One whose turn is more than
    ``max_wait`` away gets no turn: it waits ``max_wait`` and is then refused (503), so a flood of
    refusals is paced too. Keys are (kind, address): public reads and logins take separate turns.
    """

    def __init__(self, per_minute, max_wait=MAX_WAIT_S, clock=time.monotonic, max_keys=100_000):
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self.burst = BURST_S
        self.max_wait = max_wait
        self._clock = clock
        self._max_keys = max_keys
        self._next = {}  # key -> when its next request is due (GCRA's theoretical arrival time)

    def turn(self, key):
        """Seconds the request of ``key`` waits for its turn (0: now), or None: no turn within
        ``max_wait``."""
        if not self.interval:
            return 0.0
        now = self._clock()
        due = max(self._next.get(key, now), now)
        wait = due - self.burst - now
        if wait > self.max_wait:
            return None
        if len(self._next) >= self._max_keys and key not in self._next:
            self._next = {k: v for k, v in self._next.items() if v > now}
            if len(self._next) >= self._max_keys:
                self._next.clear()
        self._next[key] = due + self.interval
        return max(0.0, wait)


class Turns:
    """At most ``per_key`` jobs of one key running at a time (one client address's password
    checks), the next ones waiting in order, at most ``max_waiting`` of them: so one address,
    flooding or not, never holds more than its share of the hashing threads, and everyone else's
    logins are checked alongside it. Keys with nothing running are forgotten."""

    def __init__(self, per_key=1, max_waiting=64):
        self.per_key = per_key
        self.max_waiting = max_waiting
        self._entries = {}  # key -> [jobs running, deque of waiting futures]

    async def acquire(self, key):
        """True once it is this job's turn (then ``release(key)`` after it); False at once when
        ``max_waiting`` jobs of that key already wait."""
        entry = self._entries.setdefault(key, [0, collections.deque()])
        if entry[0] < self.per_key and not entry[1]:
            entry[0] += 1
            return True
        if len(entry[1]) >= self.max_waiting:
            return False
        turn = asyncio.get_running_loop().create_future()
        entry[1].append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.release(key)  # it was given the turn as it was cancelled: pass it on
            else:
                entry[1].remove(turn)
            raise
        return True

    def release(self, key):
        entry = self._entries[key]
        while entry[1]:  # the turn passes to the next one waiting
            turn = entry[1].popleft()
            if not turn.done():
                turn.set_result(None)
                return
        entry[0] -= 1
        if not entry[0]:
            del self._entries[key]


class Limits:
    def __init__(self, config):
        limits = config["limits"]
        self.login = LoginGuard(limits["login_per_minute"], limits["login_per_address_per_minute"],
                                limits["login_lockout_failures"], limits["login_lockout_s"])
        self.submissions = RateLimiter(limits["submissions_per_minute"])
        self.pacer = Pacer(limits["anonymous_per_minute"])
        self.hashing = Turns(per_key=1)  # password checks: one at a time per client address
