"""kube-proxy's BoundedFrequencyRunner on a simulated clock: when ``syncProxyRules`` runs.

kube-proxy never syncs on every change: each change calls ``syncRunner.Run()``, and the runner
decides when the sync function starts. Two versions are modelled, both as a pure state machine
driven by the caller's clock (no threads, no sleeping):

``variant="1.33"`` — ``pkg/util/async/bounded_frequency_runner.go`` (kube-proxy up to v1.33):

- a token bucket (``flowcontrol.NewTokenBucketRateLimiterWithClock``, i.e. ``x/time/rate``) with
  ``qps = 1 / minInterval`` and ``burst`` tokens (kube-proxy: ``burstSyncs = 2``) decides whether a
  run may start now: tokens are taken at the *start* of a run and come back one per
  ``minInterval``, so starts are spaced ``minInterval`` apart apart from bursts;
- ``minInterval == 0``: no limiter at all (``nullLimiter``), every request runs at once;
- a request that gets no token sets the one timer to ``minInterval`` after the last run's
  *completion* (``lastRun = timer.Now()`` after ``fn()``), unless the timer is due sooner;
- after each run the timer is set to ``maxInterval`` (kube-proxy passes ``time.Hour``);
- ``RetryAfter(interval)`` moves the timer earlier (never later); a run before it cancels it.

``variant="1.34"`` — ``pkg/proxy/runner/bounded_frequency_runner.go`` (v1.34+):

- no bucket and no burst: at least ``minInterval`` from a run's *completion* to the next start;
- an error returned by the function re-runs it after ``retryInterval`` (kube-proxy passes
  ``syncPeriod``), a successful run cancels that retry;
- at least one run every ``maxInterval`` after completion (kube-proxy: ``FullSyncPeriod``, 1 h).

The caller (:func:`kslab.proxy.syncloop.simulate`, or a test) drives it::

    r = BoundedFrequencyRunner(1.0, 3600.0)
    r.request(0.2)                 # Run(): a change arrived
    t = r.next_start()             # 0.2: the sync starts now (a token was free)
    r.started(t); r.finished(t + 0.05, ok=True)

``next_start()`` is what the runner will do if nothing else happens; a caller may start later
than that (a clock that only moves in steps, like upstream's fake timers) but never earlier.
Where the Go loop would pick among several ready channels at random, this model takes a fixed
order (documented at :meth:`BoundedFrequencyRunner._loop` and :meth:`started`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import InputError

VARIANTS = ("1.33", "1.34")
BURST_SYNCS = 2  # kube-proxy's burstSyncs (pkg/proxy/iptables/proxier.go, v1.33)
_EPS = 1e-9  # seconds; float slack when comparing token counts and deadlines


@dataclass(frozen=True)
class RunnerState:
    """A snapshot for tests and tables: what the runner holds between calls."""

    running: bool
    run_pending: bool
    timer: float | None  # 1.33: the one timer's deadline (None: not armed)
    tokens: float  # 1.33: tokens in the bucket now (inf without a limiter)
    last_run: float  # completion of the last run (-inf: none yet)
    retry_at: float | None  # 1.33: RetryAfter's time not yet handled; 1.34: the retry timer


class BoundedFrequencyRunner:
    """``BoundedFrequencyRunner`` (see the module text) on the caller's clock, in seconds."""

    def __init__(self, min_interval: float, max_interval: float, *, burst: int = BURST_SYNCS,
                 retry_interval: float = 30.0, variant: str = "1.33", start: float = 0.0) -> None:
        if variant not in VARIANTS:
            raise InputError("runner variant", f"unknown variant {variant!r}", "use " + " or ".join(VARIANTS))
        for name, value in (("min_interval", min_interval), ("max_interval", max_interval), ("retry_interval", retry_interval)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0 or math.isnan(value):
                raise InputError(f"runner {name}={value!r}", "is not a duration", "give seconds >= 0")
        if max_interval < min_interval:
            # upstream panics: "maxInterval (%v) must be >= minInterval (%v)"
            raise InputError(f"runner max_interval={max_interval}", f"must be >= min_interval ({min_interval})",
                             "raise max_interval or lower min_interval")
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise InputError(f"runner burst={burst!r}", "is not a positive integer", "kube-proxy uses 2")
        self.min_interval = float(min_interval)
        self.max_interval = float(max_interval)
        self.retry_interval = float(retry_interval)
        self.burst = burst
        self.variant = variant
        self.limited = min_interval > 0  # 1.33: minInterval 0 -> nullLimiter
        self.qps = 1.0 / min_interval if self.limited else math.inf
        self.running = False
        self.run_pending = False  # the run channel (capacity 1: requests coalesce)
        self.last_run = -math.inf
        self.runs = 0
        # 1.33: the bucket (x/time/rate: full at creation) and the one timer, armed by Loop to maxInterval
        self._tokens = float(burst)
        self._tokens_at = start
        self._timer: float | None = start + max_interval
        self._retry_time: float | None = None  # 1.33 retryTime (its channel is signalled iff it is set)
        self._start_at: float | None = None  # 1.33: tryRun accepted at this time; the caller starts the run
        # 1.34: the three timers
        self._min_until = -math.inf  # after a run the loop waits for minIntervalTimer before selecting again
        self._max_at: float | None = start + max_interval
        self._retry_at: float | None = None
        self._pending_since: float | None = None
        self._direct = False

    # ---- inputs ---------------------------------------------------------------------------
    def request(self, now: float) -> None:
        """``Run()``: run as soon as the runner allows. Requests coalesce (one pending at most)."""
        if self.variant == "1.34":
            if not self.run_pending:
                self._pending_since = now
            self.run_pending = True
            return
        if self._start_at is not None:
            return  # a run was accepted and has not begun: it will see this change
        if self.running:
            self.run_pending = True  # the Loop is inside fn: the request waits in the run channel
            return
        self._try_run(now)

    def retry_after(self, now: float, interval: float | None = None) -> None:
        """``RetryAfter(interval)`` (1.33; default ``retry_interval``, kube-proxy's syncPeriod): run
        again no later than ``now + interval``. A sooner retry already asked for wins. In 1.34 the
        function's error return does this (``finished(ok=False)``); calling it arms the retry timer."""
        interval = self.retry_interval if interval is None else interval
        at = now + interval
        if self.variant == "1.34":
            self._retry_at = at
            return
        if self._retry_time is not None and self._retry_time < at:
            return
        self._retry_time = at
        if not self.running and self._start_at is None:
            self._do_retry(now)

    def started(self, now: float, *, direct: bool = False) -> None:
        """The function starts at ``now`` (>= :meth:`next_start`, unless ``direct``).

        ``direct``: a call outside the runner (kube-proxy's first sync, from
        ``OnEndpointSlicesSynced``): it takes no token and resets no timer; requests meanwhile wait."""
        if self.running:
            raise RuntimeError("the runner is already running its function")
        if not direct:
            due = self.next_start()
            if due is None or now < due - _EPS:
                raise RuntimeError(f"run started at {now} before the runner allows it ({due})")
            if self.variant == "1.33":
                if self._start_at is None:  # a timer fire (maybe noticed late): tryRun, which must pass
                    if not self._take_token(now):
                        raise RuntimeError(f"no token at {now}")
                self._start_at = None
            else:
                # the loop's select takes the run request when one is pending; the timers that fired
                # too are stopped/reset after the function (Go >= 1.23 timers drop their stale ticks)
                self.run_pending = False
                self._pending_since = None
        self.running = True
        self._direct = direct

    def finished(self, now: float, ok: bool = True) -> None:
        """The function returned at ``now``; ``ok=False``: the sync failed (kube-proxy 1.33 calls
        ``RetryAfter(syncPeriod)`` from inside it, 1.34's function returns an error)."""
        if not self.running:
            raise RuntimeError("finished() without started()")
        self.running = False
        direct = self._direct
        if not direct:
            self.runs += 1
        if self.variant == "1.34":
            if not direct:
                self._retry_at = None if ok else now + self.retry_interval
                self._min_until = now + self.min_interval
                self._max_at = now + self.max_interval
            elif not ok:
                self._retry_at = now + self.retry_interval
            return
        if not ok:
            at = now + self.retry_interval
            if self._retry_time is None or at <= self._retry_time:
                self._retry_time = at
        if not direct:
            self.last_run = now
            self._timer = now + self.max_interval  # timer.Stop(); timer.Reset(maxInterval)
        self._loop(now)

    # ---- what happens next ------------------------------------------------------------------
    def next_start(self) -> float | None:
        """When the function starts if no other input comes (None: never, or it is running)."""
        if self.running:
            return None
        if self.variant == "1.34":
            triggers = [t for t in (self._pending_since if self.run_pending else None, self._max_at, self._retry_at)
                        if t is not None]
            return max(self._min_until, min(triggers)) if triggers else None
        if self._start_at is not None:
            return self._start_at
        if self._timer is None:
            return None
        # the timer fires and tryRun takes a token: one is always back by then (the timer is never
        # set before lastRun + minInterval by a deferral, nor before lastRun + maxInterval) except
        # for a RetryAfter shorter than minInterval, where the Go loop re-arms a due timer until a
        # token comes back: the run starts when it does
        return max(self._timer, self._token_time())

    def state(self, now: float | None = None) -> RunnerState:
        tokens = self._tokens_now(now) if now is not None else self._tokens
        return RunnerState(self.running, self.run_pending, self._timer if self.variant == "1.33" else self._max_at,
                           tokens if self.limited else math.inf, self.last_run,
                           self._retry_time if self.variant == "1.33" else self._retry_at)

    @property
    def timer(self) -> float | None:
        """1.33: the deadline the one timer is armed to (what upstream's fake timer records)."""
        return self._timer

    # ---- 1.33 internals ------------------------------------------------------------------
    def _tokens_now(self, now: float) -> float:
        if not self.limited:
            return math.inf
        return min(float(self.burst), self._tokens + max(0.0, now - self._tokens_at) * self.qps)

    def _take_token(self, now: float) -> bool:
        """``limiter.TryAccept()`` (``rate.Limiter.AllowN(now, 1)``)."""
        if not self.limited:
            return True
        tokens = self._tokens_now(now)
        if tokens < 1.0 - _EPS:
            return False
        self._tokens, self._tokens_at = max(0.0, tokens - 1.0), now
        return True

    def _token_time(self) -> float:
        """When the bucket next holds a whole token."""
        if not self.limited or self._tokens >= 1.0 - _EPS:
            return -math.inf
        return self._tokens_at + (1.0 - self._tokens) / self.qps

    def _try_run(self, now: float) -> None:
        """``tryRun``: take a token and run now, or arm the timer for the next possible run."""
        if self._take_token(now):
            self._start_at = now
            self.run_pending = False
            return
        next_possible = self.min_interval - (now - self.last_run)
        remaining = (self._timer - now) if self._timer is not None else math.inf
        self._timer = now + min(next_possible, remaining)

    def _do_retry(self, now: float) -> None:
        """``doRetry``: the timer goes off at the retry time if that is sooner than it would."""
        if self._retry_time is None:
            return
        interval = self._retry_time - now
        self._retry_time = None
        remaining = (self._timer - now) if self._timer is not None else math.inf
        if interval < remaining:
            self._timer = now + interval

    def _loop(self, now: float) -> None:
        """After a run the Loop selects among its ready channels: the retry first, then a
        pending run (Go picks at random; this order lets a successful run cancel the retry)."""
        if self._retry_time is not None:
            self._do_retry(now)
        if self.run_pending:
            self.run_pending = False
            self._try_run(now)
