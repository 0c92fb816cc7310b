"""kslab.proxy.runner: the upstream BoundedFrequencyRunner tests, step by step.

1.33: ``pkg/util/async/bounded_frequency_runner_test.go`` (Test_BoundedFrequencyRunnerNoBurst,
...Burst, ...RetryAfter) — every ``waitForRun``/``waitForDefer``/``waitForNothing`` with the
timer value upstream checks. 1.34: ``pkg/proxy/runner/bounded_frequency_runner_test.go``
(Test_BoundedFrequencyRunner, ...Retry, ...RetryShorterThanMinInterval and the real-clock cases
on a simulated clock). Upstream's function takes no time; so does the driver's.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kslab.errors import InputError
from kslab.proxy.runner import BoundedFrequencyRunner

MS = 0.001
MIN, MAX = 1.0, 10.0


class Driver:
    """Upstream's fake timer: time moves in steps; whatever is due runs at the step's time."""

    def __init__(self, runner: BoundedFrequencyRunner) -> None:
        self.r = runner
        self.now = 0.0
        self.calls = 0
        self.error = False
        self.during = None  # called inside the function (obj.setRetryFn)

    def _fire(self) -> bool:
        ran = False
        while (t := self.r.next_start()) is not None and t <= self.now + 1e-9:
            self.r.started(self.now)
            self.calls += 1
            ran = True
            if self.during is not None:
                fn, self.during = self.during, None
                fn()
            self.r.finished(self.now, ok=not self.error)
        return ran

    def advance(self, d: float) -> bool:
        self.now = round(self.now + d, 9)
        return self._fire()

    def run(self) -> bool:
        self.r.request(self.now)
        return self._fire()

    # upstream's checks (1.33): a run re-arms the timer to maxInterval; a deferral to `next`
    def expect_run(self, ran: bool) -> None:
        assert ran, "function should have been called"
        assert self.r.timer == pytest.approx(self.now + MAX)

    def expect_defer(self, ran: bool, next_: float) -> None:
        assert not ran, "function should not have been called"
        assert self.r.timer == pytest.approx(self.now + next_)

    def expect_nothing(self, ran: bool) -> None:
        assert not ran, "function should not have been called"


def runner_133(burst: int) -> Driver:
    d = Driver(BoundedFrequencyRunner(MIN, MAX, burst=burst, variant="1.33"))
    assert d.r.timer == MAX  # "init": the Loop arms the timer to maxInterval
    return d


def test_133_no_burst():
    d = runner_133(1)
    d.expect_run(d.run())  # first run, rel=0
    d.expect_defer((d.advance(500 * MS), d.run())[1], 500 * MS)  # too soon after first
    d.expect_defer((d.advance(499 * MS), d.run())[1], 1 * MS)  # still too soon after first
    d.expect_run(d.advance(1 * MS))  # second run, the deferred one
    d.expect_defer(d.run(), 1.0)  # too soon after second
    d.expect_defer((d.advance(1 * MS), d.run())[1], 999 * MS)
    d.expect_nothing(d.advance(998 * MS))  # premature
    d.expect_run(d.advance(1 * MS))  # third run
    d.expect_nothing(d.advance(1.0))  # minInterval passes, nothing queued
    d.expect_run(d.advance(9.0))  # maxInterval
    d.expect_defer((d.advance(1 * MS), d.run())[1], 999 * MS)  # too soon after maxInterval run
    d.expect_run(d.advance(999 * MS))  # fifth run
    assert d.calls == 5


def test_133_burst():
    d = runner_133(2)
    d.expect_run(d.run())  # abs=0
    d.expect_run((d.advance(1 * MS), d.run())[1])  # abs=1ms: second run, the burst
    d.expect_defer((d.advance(498 * MS), d.run())[1], 502 * MS)  # abs=499ms
    d.expect_defer((d.advance(1 * MS), d.run())[1], 501 * MS)  # abs=500ms
    d.expect_defer((d.advance(1 * MS), d.run())[1], 500 * MS)  # abs=501ms
    d.expect_nothing(d.advance(499 * MS))  # abs=1000ms: a token is back, minInterval since the last run not yet
    d.expect_run(d.run())  # third run
    d.expect_defer((d.advance(1 * MS), d.run())[1], 999 * MS)  # abs=1001ms
    d.expect_defer((d.advance(998 * MS), d.run())[1], 1 * MS)  # abs=1999ms
    d.expect_run(d.advance(1 * MS))  # abs=2000ms: fourth run
    d.advance(2.0)  # abs=4000ms: the burst is back
    d.expect_run(d.run())  # fifth
    d.expect_run(d.run())  # sixth
    d.expect_defer(d.run(), 1.0)  # too soon after sixth
    d.expect_run(d.advance(1.0))  # abs=5000ms: seventh
    d.expect_run(d.advance(10.0))  # abs=15000ms: maxInterval
    assert d.calls == 8


def test_133_retry_after():
    d = runner_133(1)
    r = d.r
    d.during = lambda: r.retry_after(d.now, 5.0)  # the function asks for a retry
    assert d.run()
    assert r.timer == pytest.approx(d.now + 5.0)  # waitForRunWithRetry: reset to max, then to 5s
    d.expect_nothing(d.advance(1.0))  # minInterval, nothing queued
    d.expect_run(d.advance(4.0))  # the retry
    d.expect_defer((d.advance(499 * MS), d.run())[1], 501 * MS)  # too soon after retry
    ran = d.advance(501 * MS)  # the deferred run; a retry queued after it returns
    d.expect_run(ran)  # reset to maxInterval ...
    r.retry_after(d.now, 5.0)  # ... then to the retry
    assert r.timer == pytest.approx(d.now + 5.0)
    d.expect_nothing(d.advance(1.0))
    d.expect_run(d.run())  # third run
    d.expect_nothing(d.advance(4.0))  # the retry was cancelled: we already ran
    d.during = lambda: r.retry_after(d.now, 5.0)  # (upstream: from a goroutine, 100 ms of real time later)
    assert d.run()  # fourth run
    assert r.timer == pytest.approx(d.now + 5.0)
    d.expect_defer((d.advance(100 * MS), d.run())[1], 900 * MS)  # too soon after fourth run
    d.expect_run(d.advance(900 * MS))  # fifth run
    d.expect_nothing(d.advance(4.0))  # retry cancelled
    d.expect_nothing(d.advance(5.0))  # premature
    d.expect_run(d.advance(1.0))  # maxInterval
    assert d.calls == 7


def test_133_no_limiter_when_min_interval_is_zero():
    d = Driver(BoundedFrequencyRunner(0.0, 3600.0, variant="1.33"))
    for _ in range(50):
        assert d.run()
        d.advance(1 * MS)
    assert d.calls == 50


def test_133_requests_while_running_coalesce_into_one_run():
    r = BoundedFrequencyRunner(1.0, 3600.0, variant="1.33")
    r.request(0.0)
    r.started(r.next_start())
    for t in (0.1, 0.2, 0.3):
        r.request(t)
    assert r.next_start() is None  # running
    r.finished(2.5)  # the sync took longer than minSyncPeriod: a token is back
    assert r.next_start() == 2.5  # back to back, one run for the three requests
    r.started(2.5)
    r.finished(2.6)
    assert r.next_start() == pytest.approx(2.6 + 3600.0)


def test_133_retry_shorter_than_min_interval_waits_for_a_token():
    r = BoundedFrequencyRunner(5.0, 3600.0, burst=1, variant="1.33")
    r.request(0.0)
    r.started(0.0)
    r.finished(0.0, ok=False)  # RetryAfter(retry_interval)
    r.retry_after(0.0, 1.0)
    assert r.next_start() == pytest.approx(5.0)  # the Go loop spins until the bucket has a token


def test_133_direct_call_takes_no_token():
    r = BoundedFrequencyRunner(1.0, 3600.0, variant="1.33")
    r.started(0.0, direct=True)  # OnEndpointSlicesSynced -> syncProxyRules()
    r.request(0.01)  # waits for the direct call
    r.finished(0.02)
    assert r.next_start() == 0.02
    r.started(0.02)
    r.finished(0.03)
    r.request(0.04)
    assert r.next_start() == 0.04  # the second token of the burst
    r.started(0.04)
    r.finished(0.05)
    r.request(0.06)
    # a token comes back at 1.02 (1 s after the start that took it), but tryRun defers to
    # minInterval after the last run's completion (lastRun = 0.05)
    assert r.next_start() == pytest.approx(1.05)


# ---- 1.34: pkg/proxy/runner ------------------------------------------------------------------

def runner_134(min_i=1.0, retry=5.0, max_i=10.0) -> Driver:
    return Driver(BoundedFrequencyRunner(min_i, max_i, retry_interval=retry, variant="1.34"))


def test_134_bounded_frequency_runner():
    d = runner_134()
    assert d.run() and d.calls == 1
    assert not (d.advance(500 * MS), d.run())[1]  # rel=500ms
    assert not (d.advance(499 * MS), d.run())[1]  # rel=999ms
    assert d.advance(1 * MS) and d.calls == 2  # the deferred run
    assert not d.run()
    assert not (d.advance(1 * MS), d.run())[1]
    assert not d.advance(998 * MS)  # rel=999ms
    assert d.advance(1 * MS) and d.calls == 3
    assert not d.advance(1.0)  # minInterval passes, nothing queued
    assert d.advance(10.0) and d.calls == 4  # maxInterval
    assert not (d.advance(1 * MS), d.run())[1]
    assert d.advance(999 * MS) and d.calls == 5


def test_134_retry():
    d = runner_134()
    d.error = True
    assert d.run() and d.calls == 1
    d.error = False
    assert not d.advance(1.0)
    assert d.advance(4.0) and d.calls == 2  # retryInterval after the failure
    d.advance(499 * MS)
    d.error = True
    assert not d.run()
    assert d.advance(501 * MS) and d.calls == 3  # deferred run, fails: another retry
    d.error = False
    assert not d.advance(1.0)
    assert d.run() and d.calls == 4  # a successful run aborts the retry
    assert not d.advance(4.0)
    d.error = True
    assert d.run() and d.calls == 5
    d.error = False
    assert not (d.advance(100 * MS), d.run())[1]
    assert d.advance(900 * MS) and d.calls == 6
    assert not d.advance(4.0)  # retry cancelled
    assert not d.advance(5.0)
    assert d.advance(1.0) and d.calls == 7  # maxInterval


def test_134_retry_shorter_than_min_interval():
    d = runner_134(min_i=5.0, retry=1.0, max_i=10.0)
    d.error = True
    assert d.run() and d.calls == 1
    d.error = False
    assert not d.advance(1.0)  # the retry is due, minInterval since the run is not
    assert not d.advance(5.0 - 1.0 - 1 * MS)
    assert d.advance(1 * MS) and d.calls == 2
    assert d.advance(10.0) and d.calls == 3


def test_134_real_clock_cases_on_a_simulated_clock():
    d = runner_134(0.5, 0.8, 1.5)  # RunsAgainAfterMinInterval
    assert d.run()
    assert not d.advance(1.0)
    assert d.run() and d.calls == 2
    d = runner_134(0.5, 0.8, 1.5)  # DoesNotRunBeforeMinInterval
    assert d.run()
    assert not (d.advance(0.125), d.run())[1]
    d = runner_134(0.1, 0.2, 0.5)  # RunAfterMaxInterval: the loop's first max timer
    assert not d.advance(0.4)
    assert d.advance(0.1) and d.calls == 1
    d = runner_134(0.1, 0.5, 10.0)  # Retry_RealClock: every run fails
    d.error = True
    assert d.run()
    assert not d.advance(0.125)
    assert d.advance(0.5) and d.calls == 2
    assert d.advance(0.5) and d.calls == 3
    assert not d.advance(0.0625)
    assert d.advance(0.5) and d.calls == 4


def test_134_has_no_burst():
    r = BoundedFrequencyRunner(1.0, 3600.0, variant="1.34")
    r.request(0.0)
    r.started(0.0)
    r.finished(0.01)
    r.request(0.02)
    assert r.next_start() == pytest.approx(1.01)  # 1.33 would run at once (burst 2)
    r33 = BoundedFrequencyRunner(1.0, 3600.0, variant="1.33")
    r33.request(0.0)
    r33.started(0.0)
    r33.finished(0.01)
    r33.request(0.02)
    assert r33.next_start() == 0.02


# ---- properties and input checks -------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(variant=st.sampled_from(["1.33", "1.34"]), min_i=st.sampled_from([0.0, 0.5, 1.0, 5.0]),
       gaps=st.lists(st.floats(0.0, 3.0), min_size=1, max_size=40), dur=st.floats(0.0, 2.0))
def test_every_request_is_served_and_starts_respect_the_limit(variant, min_i, gaps, dur):
    """Each request is followed by a start (at or after it) within max(minInterval, d) + d,
    and no start comes sooner than the runner allows (1.33: burst tokens; 1.34: completion +
    minInterval)."""
    r = BoundedFrequencyRunner(min_i, 3600.0, variant=variant)
    times, t = [], 0.0
    for g in gaps:
        t += g
        times.append(t)
    starts, ends, served = [], [], {}
    i, n = 0, len(times)
    while True:
        ns = r.next_start()
        if i < n and (ns is None or times[i] <= ns):
            r.request(times[i])
            i += 1
            continue
        if ns is None or ns > times[-1] + 100:
            break
        r.started(ns)
        starts.append(ns)
        for k in range(i):
            served.setdefault(k, ns)
        end = ns + dur
        while i < n and times[i] < end:  # changes while the sync runs wait for the next one
            r.request(times[i])
            i += 1
        r.finished(end)
        ends.append(end)
    for k, t in enumerate(times):
        assert k in served, f"request {k} at {t} never served"
        assert served[k] - t <= max(min_i, dur) + dur + 1e-6
    for a, b, e in zip(starts, starts[1:], ends):
        if variant == "1.34":
            assert b >= e + min_i - 1e-9
        else:
            assert b >= e - 1e-9
    if variant == "1.33" and min_i > 0:  # token bucket: at most burst + elapsed/minInterval starts
        for j, s in enumerate(starts):
            window = [x for x in starts if s <= x <= s + 3 * min_i]
            assert len(window) <= 2 + 3 + 1e-9


def test_bad_runner_input_is_one_line():
    with pytest.raises(InputError, match="max_interval"):
        BoundedFrequencyRunner(2.0, 1.0)
    with pytest.raises(InputError, match="variant"):
        BoundedFrequencyRunner(1.0, 2.0, variant="1.20")
    with pytest.raises(InputError, match="min_interval"):
        BoundedFrequencyRunner(-1.0, 2.0)
    with pytest.raises(InputError, match="burst"):
        BoundedFrequencyRunner(1.0, 2.0, burst=0)
    assert not math.isinf(BoundedFrequencyRunner(1.0, 2.0).next_start())
