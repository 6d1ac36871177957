"""The binding itself: acquire and check semantics, errors, lifetime, fork, memory."""

import gc
import json
import os
import threading
import time

import pytest

import rl
from conftest import wait_for


def test_nothing_opened_until_first_use(shm):
    lim = rl.Limiter(shm=shm)
    assert not lim.opened
    assert not os.path.exists("/dev/shm" + shm)
    lim.acquire("k", 1, 1)
    assert lim.opened and os.path.exists("/dev/shm" + shm)
    lim.close()


def test_acquire_counts_and_denies(shm):
    with rl.Limiter(shm=shm) as lim:
        rs = [lim.acquire("user:1", requests=3, window=60, algorithm="fixed_window")
              for _ in range(4)]
        assert [bool(r) for r in rs] == [True, True, True, False]
        assert [r.remaining for r in rs[:3]] == [2, 1, 0]
        assert rs[0].limit == 3
        assert rs[3].retry_after > 0 and rs[3].retry_after_ms > 0
        assert rs[0].retry_after == 0.0
        # bytes and str keys are the same bytes; another key has its own counter
        assert not lim.acquire(b"user:1", 3, 60, algorithm="fixed_window")
        assert lim.acquire("user:2", 3, 60, algorithm="fixed_window")
        # cost and a peek (cost 0)
        assert lim.acquire("c", 10, 60, cost=10).remaining == 0
        assert not lim.acquire("c", 10, 60, cost=1)
        assert lim.acquire("c", 10, 60, cost=0).remaining == 0
        # a cost beyond the capacity can never be admitted
        r = lim.acquire("big", 5, 60, cost=6)
        assert not r and r.retry_after == float("inf")


@pytest.mark.parametrize("alg", rl.ALGORITHMS)
def test_every_algorithm_admits_its_limit(shm, alg):
    with rl.Limiter(shm=shm) as lim:
        n = sum(bool(lim.acquire("k-" + alg, 50, 3600, algorithm=alg)) for _ in range(80))
        assert n == 50


def test_reset_forgives(shm):
    with rl.Limiter(shm=shm) as lim:
        for _ in range(3):
            lim.acquire("r", 2, 60)
        assert not lim.acquire("r", 2, 60)
        lim.reset("r", 2, 60)
        assert lim.acquire("r", 2, 60)


def test_bad_arguments_raise_clear_errors(shm):
    with rl.Limiter(shm=shm) as lim:
        with pytest.raises(rl.InvalidArgument, match="requests is 0"):
            lim.acquire("k", requests=0, window=1)
        with pytest.raises(ValueError, match="requests: -1 is out of range"):
            lim.acquire("k", requests=-1, window=1)
        with pytest.raises(rl.InvalidArgument, match="window"):
            lim.acquire("k", requests=1, window=0)
        with pytest.raises(TypeError, match="window: expected seconds"):
            lim.acquire("k", requests=1, window="60")
        with pytest.raises(rl.InvalidArgument, match="algorithm: unknown value 'leaky'"):
            lim.acquire("k", 1, 1, algorithm="leaky")
        with pytest.raises(rl.InvalidArgument, match="mode: unknown value"):
            lim.acquire("k", 1, 1, mode="cluster")
        with pytest.raises(TypeError, match="key: expected str or bytes"):
            lim.acquire(42, 1, 1)
        with pytest.raises(TypeError, match="missing required argument 'window'"):
            lim.acquire("k", 1)
        with pytest.raises(TypeError, match="unexpected keyword argument 'rate'"):
            lim.acquire("k", 1, 1, rate=3)
        with pytest.raises(rl.Error) as e:
            lim.acquire("x" * 600, 1, 1)
        assert e.value.errno == 7  # E2BIG, with rl's message
        assert "512" in str(e.value) or "key" in str(e.value)
        with pytest.raises(rl.Error, match="GLOBAL|STRICT|Redis|redis"):
            lim.acquire("k", 1, 1, mode="strict")  # no redis_url: -ENOTSUP
        with pytest.raises(TypeError, match="method"):
            lim.check(None, "/x")
        with pytest.raises(rl.InvalidArgument, match="scope"):
            lim.configure_endpoint("/x", [{"requests": 1, "window": 1, "scope": "planet"}])
        with pytest.raises(rl.InvalidArgument):
            lim.configure_endpoint("/x", [{"requests": 0, "window": 1}])
    with pytest.raises(rl.InvalidArgument, match="must start with '/'"):
        rl.Limiter(shm="no-slash")
    with pytest.raises(rl.InvalidArgument, match="fallback"):
        rl.Limiter(shm=shm, fallback="maybe")
    with pytest.raises(rl.InvalidArgument, match="rate 'lots'"):
        rl.parse_rate("lots")
    assert rl.parse_rate("100/minute") == (100, 60)
    assert rl.parse_rate("5/300s") == (5, 300)
    assert rl.parse_rate("10 per hour") == (10, 3600)


def test_errors_from_opening_carry_rls_message(tmp_path, shm):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nendpoints:\n  - pattern: '/x'\n    limits: [{requests: -5}]\n")
    lim = rl.Limiter(shm=shm, config=str(bad))
    with pytest.raises(rl.Error) as e:
        lim.acquire("k", 1, 1)
    assert "bad.yaml" in str(e.value)  # rl names the file (and line)
    with pytest.raises(rl.InvalidArgument, match="bad.yaml"):
        rl.check_config_file(str(bad))
    lim.close()


def test_closed_limiter_raises(shm):
    lim = rl.Limiter(shm=shm)
    lim.acquire("k", 1, 1)
    lim.close()
    lim.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        lim.acquire("k", 1, 1)


def test_check_headers_and_body(shm):
    with rl.Limiter(shm=shm, environment="production") as lim:
        ds = [lim.check("POST", "/auth/login", ip="203.0.113.50") for _ in range(6)]
        assert [d.allowed for d in ds] == [True] * 5 + [False]
        h = ds[-1].headers()
        assert h["X-RateLimit-Limit"] == "5" and h["X-RateLimit-Remaining"] == "0"
        assert h["X-RateLimit-Scope"] == "per_ip"
        assert h["X-RateLimit-Algorithm"] == "fixed_window"
        assert int(h["Retry-After"]) > 0
        body = json.loads(ds[-1].body())
        assert body["error"] == "rate_limited" and body["limit"] == 5
        assert body["rule"] == "POST:/auth/login"
        assert "Retry-After" not in ds[0].headers()
        assert ds[0].layers()[0]["rule"] == "POST:/auth/login"
        raw = ds[-1].headers(raw=True)
        assert (b"x-ratelimit-limit", b"5") in raw


def test_client_ip_trusts_only_proxies():
    assert rl.client_ip("10.0.0.1", "198.51.100.7, 10.0.0.2", ["10.0.0.0/8"]) == "198.51.100.7"
    # an untrusted peer: its header changes nothing
    assert rl.client_ip("198.51.100.9", "1.2.3.4", ["10.0.0.0/8"]) == "198.51.100.9"
    assert rl.client_ip("::ffff:192.0.2.1") == "192.0.2.1"
    with pytest.raises(rl.InvalidArgument):
        rl.client_ip("not-an-ip")
    with pytest.raises(rl.InvalidArgument):
        rl.client_ip("10.0.0.1", None, ["10.0.0.0/99"])


def test_fork_child_uses_inherited_and_lazy_limiters(shm):
    """An opened Limiter is usable in a forked child (rl.h's fork rule); a Limiter not yet
    opened opens in the child. Both count in the same segment as the parent."""
    opened = rl.Limiter(shm=shm)
    opened.acquire("f", 10, 60)  # 1 taken in the parent
    lazy = rl.Limiter(shm=shm)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            a = opened.acquire("f", 10, 60).remaining
            b = lazy.acquire("f", 10, 60).remaining
            os.write(w, f"{a} {b} {int(lazy.opened)}".encode())
        finally:
            os._exit(0)
    os.close(w)
    out = os.read(r, 100).decode()
    os.close(r)
    os.waitpid(pid, 0)
    assert out == "8 7 1"
    assert not lazy.opened  # the parent's lazy one still opened nothing
    assert opened.acquire("f", 10, 60).remaining == 6
    opened.close()
    lazy.close()


def test_threads_share_one_limiter(shm):
    with rl.Limiter(shm=shm) as lim:
        admitted = []

        def work():
            admitted.append(sum(bool(lim.acquire("t", 1000, 3600)) for _ in range(500)))

        ts = [threading.Thread(target=work) for _ in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert sum(admitted) == 1000


def _rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def test_memory_flat_over_a_million_calls(shm):
    with rl.Limiter(shm=shm, environment="production") as lim:
        keys = [f"user:{i}" for i in range(1000)]
        for i in range(200_000):  # warm: every allocator pool filled
            lim.acquire(keys[i % 1000], 100, 60)
            if i % 4 == 0:
                lim.check("GET", "/api/users", ip="198.51.100.7").headers()
        gc.collect()
        before = _rss_kib()
        for i in range(1_000_000):
            lim.acquire(keys[i % 1000], 100, 60)
            if i % 4 == 0:
                d = lim.check("GET", "/api/users", ip="198.51.100.7")
                d.headers()
        gc.collect()
        grown = _rss_kib() - before
        assert grown < 2048, f"RSS grew by {grown} KiB over a million calls"


def test_decision_for_renders_a_result(shm):
    with rl.Limiter(shm=shm) as lim:
        lim.acquire("d", 1, 60)
        r = lim.acquire("d", 1, 60)
        d = rl._rl.decision_for(r, "ip", "sliding_window", "GET:/x", 60, "1/minute")
        assert not d.allowed
        assert d.headers()["X-RateLimit-Scope"] == "per_ip"
        assert json.loads(d.body())["rule"] == "GET:/x"


def test_unsigned_options_out_of_range_raise(shm):
    """redis_pool_size and the Redis timeouts are C `unsigned`: 2**32 must not wrap to 0 (a
    command timeout of 0) or 2**32+1 to 1, silently."""
    for opt in ("redis_pool_size", "redis_connect_timeout_ms", "redis_command_timeout_ms"):
        with pytest.raises(rl.InvalidArgument, match=f"{opt}: 4294967296 is out of range"):
            rl.Limiter(shm=shm, **{opt: 2**32})
        with pytest.raises(rl.InvalidArgument, match=f"{opt}: 4294967297 is out of range"):
            rl.Limiter(shm=shm, **{opt: 2**32 + 1})
        rl.Limiter(shm=shm, **{opt: 2**32 - 1}).close()  # the largest value is accepted


def test_huge_ints_raise_invalid_argument_not_overflow_error(shm):
    """A window or an algorithm/mode number beyond a C long is a bad argument like any other
    out-of-range value (rl.InvalidArgument, a ValueError), not an OverflowError."""
    with rl.Limiter(shm=shm) as lim:
        for window in (2**63, -(2**63) - 1, 2**100):
            with pytest.raises(rl.InvalidArgument, match="window: .* is out of range"):
                lim.acquire("k", 1, window)
        with pytest.raises(rl.InvalidArgument, match="algorithm: .* is not a valid value"):
            lim.acquire("k", 1, 1, algorithm=2**64)
        with pytest.raises(rl.InvalidArgument, match="mode: -1 is not a valid value"):
            lim.acquire("k", 1, 1, mode=-1)
        with pytest.raises(rl.InvalidArgument, match="scope: .* is not a valid value"):
            rl._rl.decision_for(lim.acquire("k", 1, 1), scope=2**70)
        assert lim.acquire("k2", 1, 10**6).allowed  # in range: still fine


def test_errors_of_gil_released_calls_carry_errno_and_message(shm):
    """reset() runs without the GIL: its exceptions are rl.Error like every other one (.errno
    the code, .strerror rl's message), the class chosen by the code. (check(nogil=True) and
    health() share the path; no argument from Python makes them fail.)"""
    import errno

    with rl.Limiter(shm=shm) as lim:
        with pytest.raises(rl.InvalidArgument) as e:
            lim.reset("k", 0, 1)  # requests 0
        assert e.value.errno == errno.EINVAL
        assert e.value.strerror.startswith("reset: ") and "requests" in e.value.strerror
        with pytest.raises(rl.Error) as e:
            lim.reset("x" * 600, 1, 1)  # a key over RL_KEY_MAX
        assert e.value.errno == errno.E2BIG and e.value.strerror.startswith("reset: ")


def test_bypass_list_longer_than_16k_is_whole(shm):
    """bypass_list() returns every entry, however long the list (it was cut at 16 KiB, the last
    entry in half)."""
    names = [f"user-{i:04d}-" + "x" * 40 for i in range(420)]  # ~21 KiB
    with rl.Limiter(shm=shm) as lim:
        for n in names:
            lim.bypass_add("user", n)
        got = lim.bypass_list("user")
        assert sorted(got) == sorted(names), (len(got), got[-1:])


def test_init_runs_once(shm):
    """__init__ again (even before the segment is opened) is refused: it would free the option
    strings an rl_open() on another thread may be reading, and silently re-point the Limiter."""
    lim = rl.Limiter(shm=shm)
    with pytest.raises(RuntimeError, match="__init__ called twice"):
        lim.__init__(shm=shm + "-other")
    assert lim.shm == shm
    lim.acquire("k", 1, 1)
    lim.close()


def test_trusted_proxies_as_one_str_is_a_clear_type_error():
    """trusted_proxies="10.0.0.0/8" (a str, not a list) names the mistake and its fix, instead
    of complaining that the CIDR "1" is not an address."""
    from rl.asgi import ClientIP

    for bad in ("10.0.0.0/8", b"10.0.0.0/8"):
        with pytest.raises(TypeError, match=r"trusted must be a list of CIDRs, not a (str|bytes)"):
            rl.client_ip("10.1.2.3", "6.6.6.6", bad)
    from rl.wsgi import RateLimitMiddleware as WSGIMiddleware

    with pytest.raises(TypeError, match=r"write \['10.0.0.0/8'\]"):
        ClientIP("10.0.0.0/8")
    with pytest.raises(TypeError, match=r"write \['10.0.0.0/8'\]"):
        WSGIMiddleware(None, limiter=rl.Limiter(), trusted_proxies="10.0.0.0/8")
    assert rl.client_ip("10.1.2.3", "6.6.6.6", ("10.0.0.0/8",)) == "6.6.6.6"


def test_control_plane_waits_for_the_writer_lock_without_the_gil(shm, tmp_path):
    """configure_endpoint(), load_config() and bypass_add() wait up to ~2 s for another
    process's rule-set writer lock (a byte lock on the segment file): without the GIL, so the
    process's other threads run meanwhile (a thread ticking every 10 ms keeps ticking)."""
    import fcntl

    lim = rl.Limiter(shm=shm, environment="production")
    lim.open()
    rules = tmp_path / "rules.yaml"
    rules.write_text(lim.config_dump())
    fd = os.open("/dev/shm" + shm, os.O_RDWR)
    stop = threading.Event()
    ticks = [0]

    def ticker():
        while not stop.is_set():
            time.sleep(0.01)
            ticks[0] += 1

    t = threading.Thread(target=ticker)
    t.start()
    try:
        # A record lock conflicts with librl's open-file-description lock on the same byte
        # (even in this process): the writer lock is held by "another writer".
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 1)
        for name, call in (
            ("configure_endpoint",
             lambda: lim.configure_endpoint("/x", [{"requests": 1, "window": 1, "name": "n"}])),
            ("bypass", lambda: lim.bypass_add("user", "vip")),
            ("load_config", lambda: lim.load_config(str(rules))),
        ):
            before, t0 = ticks[0], time.monotonic()
            with pytest.raises(rl.Error) as e:
                call()
            waited, during = time.monotonic() - t0, ticks[0] - before
            print(f"{name}: waited {waited:.2f} s for the lock; the other thread ticked {during}")
            assert e.value.errno == 11 and "writing the rule set" in str(e.value), e.value
            assert waited >= 0.5, "it did not wait for the lock: the test proves nothing"
            assert during >= 10, name
    finally:
        stop.set()
        t.join(10)
        os.close(fd)
        lim.close()
    # the lock released: the same calls go through
    with rl.Limiter(shm=shm) as lim:
        lim.configure_endpoint("/x", [{"requests": 1, "window": 1, "name": "n"}])
        lim.bypass_add("user", "vip")
        lim.load_config(str(rules))


def test_error_paths_leak_no_python_objects(shm, tmp_path):
    """Every error path of the extension (bad arguments, rl's errors, closed handles) releases
    what it took: tracemalloc sees Python memory flat over thousands of failing calls."""
    import tracemalloc

    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("version: 1\nendpoints: [{pattern: '/x', limits: [{requests: -5}]}]\n")
    lim = rl.Limiter(shm=shm)
    lim.open()
    closed = rl.Limiter(shm=shm)
    closed.close()
    res = lim.acquire("k", 1, 1)
    calls = [
        lambda: lim.acquire("k", 0, 1),
        lambda: lim.acquire("k", 1, 2**70),
        lambda: lim.acquire("x" * 600, 1, 1),
        lambda: lim.acquire("k", 1, 1, algorithm="leaky"),
        lambda: lim.acquire("k", 1, 1, mode="strict"),  # no Redis
        lambda: lim.acquire("k", 1, 1, nope=1),
        lambda: lim.reset("k", 0, 1),
        lambda: lim.check("GET", "/x\x00"),
        lambda: lim.configure_endpoint("/x", [{"requests": 1, "window": 1, "name": "n"}, 5]),
        lambda: lim.configure_endpoint("/x", [{"requests": 1, "window": 1, "scope": "planet"}]),
        lambda: lim.configure_endpoint("/x", [{"requests": 0, "window": 1}]),
        lambda: lim.load_config(str(bad_yaml)),
        lambda: lim.bypass_remove("user", "nobody"),
        lambda: lim.bypass_add("ip", "not-an-ip"),
        lambda: closed.acquire("k", 1, 1),
        lambda: rl.client_ip("not-an-ip"),
        lambda: rl.client_ip("10.0.0.1", "1.2.3.4", ["10.0.0.0/99"]),
        lambda: rl.client_ip("10.0.0.1", "1.2.3.4", "10.0.0.0/8"),
        lambda: rl._rl.decision_for(res, scope="planet"),
        lambda: rl.Limiter(shm="no-slash"),
        lambda: rl.Limiter(shm=shm, redis_pool_size=2**40),
        lambda: rl.check_config_file(str(bad_yaml)),
    ]

    def run(n):
        for _ in range(n):
            for c in calls:
                try:
                    c()
                except (rl.Error, ValueError, TypeError):
                    pass
                else:
                    raise AssertionError("a bad call succeeded")

    tracemalloc.start()
    try:
        run(200)  # warm: caches, interned strings, free lists
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        run(2000)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        lim.close()
    assert grown < 64 * 1024, f"Python memory grew by {grown} bytes over {2000 * len(calls)} failing calls"
