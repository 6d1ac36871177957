"""rl's Redis modes behind real uvicorn servers and a private redis-server: a GLOBAL limit shared
by two app groups (two segments, two "hosts"), and a STRICT route while Redis is SIGSTOPped
(the fallback answers, and the event loop keeps serving /health meanwhile)."""

import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import APPS, PY, hammer, request, wait_for

RULES = """\
version: 1
environment: test
description: "python/tests/test_redis.py"
endpoints:
  - pattern: "GET:/global"
    limits:
      - {name: cluster, requests: 100, window: 60s, algorithm: token_bucket, scope: global, mode: global}
  - pattern: "GET:/strict"
    limits:
      - {name: strict, requests: 1000, window: 60s, algorithm: fixed_window, scope: per_ip, mode: strict}
sync: {interval: 50ms}
"""


def start_group(servers, cfg, redis_url, shm, workers, extra=None):
    env = {"RL_SHM": shm, "RL_CONFIG": str(cfg), "REDIS_URL": redis_url, "RL_CLUSTER_HOSTS": "2",
           **(extra or {})}
    args = [PY, "-m", "uvicorn", "rules_app:app", "--host", "127.0.0.1", "--port", "{port}",
            "--log-level", "warning"]
    if workers > 1:
        args += ["--workers", str(workers)]
    return servers(args, APPS, env, f"group-{shm[-4:]}").wait_up()


@pytest.fixture
def cfg(tmp_path):
    p = tmp_path / "rules.yaml"
    p.write_text(RULES)
    return p


@pytest.fixture
def two_shms(shm):
    import rl

    other = shm + "-b"
    yield shm, other
    rl.unlink(other)


def rl_health(port):
    return json.loads(request(port, "GET", "/rl-health", timeout=10)[2])


def test_two_groups_stay_within_a_global_limit(servers, redis_server, cfg, two_shms):
    a = start_group(servers, cfg, redis_server.url, two_shms[0], 2)
    b = start_group(servers, cfg, redis_server.url, two_shms[1], 2)
    for g in (a, b):  # each group's sync thread has talked to Redis
        wait_for(lambda: rl_health(g.port)["sync_rounds"] > 0, 30, "a GLOBAL sync round")
    t0 = time.monotonic()
    with ThreadPoolExecutor(2) as ex:
        ra, rb = ex.map(lambda g: hammer(g.port, "/global", 300, threads=8), (a, b))
    elapsed = time.monotonic() - t0
    na = sum(r[0] == 200 for r in ra)
    nb = sum(r[0] == 200 for r in rb)
    assert all(r[0] in (200, 429) for r in ra + rb)
    bound = 100 + int(100 * elapsed / 60) + 1
    print(f"GLOBAL 100/min over two groups: admitted {na} + {nb} = {na + nb} of 600 in "
          f"{elapsed:.2f} s (bound {bound})")
    assert na + nb <= bound
    assert na > 0 and nb > 0  # both hosts got a share
    assert rl_health(a.port)["sync_errors"] == 0


@pytest.mark.parametrize("fallback,expected", [("closed", 429), ("open", 200)])
def test_strict_route_while_redis_is_stopped(servers, redis_server, cfg, shm, fallback,
                                             expected):
    timeout_ms = 3000
    s = start_group(servers, cfg, redis_server.url, shm, 1,
                    {"RL_FALLBACK": fallback, "RL_TEST_COMMAND_TIMEOUT_MS": str(timeout_ms)})
    assert request(s.port, "GET", "/strict")[0] == 200  # decided in Redis
    assert rl_health(s.port)["strict_checks"] >= 1
    os.kill(redis_server.pid, signal.SIGSTOP)
    try:
        done = threading.Event()
        out = {}

        def strict():
            t = time.monotonic()
            out["status"] = request(s.port, "GET", "/strict", timeout=60)[0]
            out["end"] = time.monotonic()
            out["elapsed"] = out["end"] - t
            done.set()

        th = threading.Thread(target=strict)
        th.start()
        # While the STRICT request waits on the stopped Redis, the event loop answers /health.
        # /health is asked until the STRICT answer; the proof is an answer completed well
        # inside the wait: once the STRICT request reaches the worker, a blocked loop would
        # answer nothing for the whole command timeout, up to the STRICT answer. (Counting
        # answers from the start would also count those given before it reached the worker.)
        answers = []
        while not done.is_set():
            t = time.monotonic()
            st = request(s.port, "GET", "/health", timeout=30)[0]
            assert st == 200
            answers.append(time.monotonic())
            print(f"/health answered in {1000 * (answers[-1] - t):.1f} ms")
        th.join(60)
        assert out["status"] == expected, out
        # It waited on Redis (the command timeout), then the configured fallback answered.
        assert out["elapsed"] >= timeout_ms / 1000 * 0.5
        span = timeout_ms / 1000
        inside = [a for a in answers if out["end"] - 0.8 * span < a < out["end"] - 0.1]
        print(f"{len(inside)} of {len(answers)} /health answers came inside the STRICT wait")
        assert inside, "no /health answer while the STRICT request waited on Redis"
    finally:
        os.kill(redis_server.pid, signal.SIGCONT)
    h = rl_health(s.port)
    assert h["strict_fallbacks"] >= 1
    # Redis is back: STRICT decisions go to Redis again (the breaker closes).
    wait_for(lambda: request(s.port, "GET", "/strict")[0] == 200
             and rl_health(s.port)["strict_checks"] > h["strict_checks"], 60,
             "STRICT checks to reach Redis again")


def test_strict_acquire_async_keeps_the_loop_running(redis_server, shm):
    """acquire_async(mode="strict") waits on a stopped Redis in a thread, without the GIL: a
    coroutine ticking every 10 ms keeps ticking meanwhile; then the fallback (closed) denies."""
    import asyncio

    import rl

    lim = rl.Limiter(shm=shm, redis_url=redis_server.url, redis_command_timeout_ms=2000,
                     fallback="closed", from_env=False, no_sync=True)
    try:
        r = lim.acquire("s", 10, 60, algorithm="fixed_window", mode="strict")
        assert r.allowed and r.remaining == 9  # decided in Redis
        os.kill(redis_server.pid, signal.SIGSTOP)

        async def main():
            ticks = 0
            task = asyncio.create_task(
                lim.acquire_async("s", 10, 60, algorithm="fixed_window", mode="strict"))
            while not task.done():
                await asyncio.sleep(0.01)
                ticks += 1
            return await task, ticks

        try:
            res, ticks = asyncio.run(main())
        finally:
            os.kill(redis_server.pid, signal.SIGCONT)
        print(f"the event loop ticked {ticks} times while a STRICT acquire waited")
        assert not res.allowed  # fallback closed
        assert ticks >= 10
        assert lim.health()["strict_fallbacks"] >= 1
    finally:
        lim.close()


def redis_has_unread_bytes(port):
    """True when a connection to the (stopped) redis-server on `port` holds bytes it has not
    read: a command is waiting for it (from /proc/net/tcp{,6}: local port, rx_queue)."""
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(f).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, queues = fields[1], fields[4]
            if int(local.rsplit(":", 1)[1], 16) == port and int(queues.split(":")[1], 16) > 0:
                return True
    return False


def test_close_while_a_strict_call_waits(redis_server, shm):
    """close() while another thread waits on Redis without the GIL: the handle stays alive for
    that call (it is freed when the call ends), but no new call may start on it."""
    import rl

    lim = rl.Limiter(shm=shm, redis_url=redis_server.url, redis_command_timeout_ms=20000,
                     fallback="closed", from_env=False, no_sync=True)
    out = {}
    t = None
    try:
        assert lim.acquire("s", 10, 60, algorithm="fixed_window", mode="strict").remaining == 9
        os.kill(redis_server.pid, signal.SIGSTOP)

        def strict():
            try:
                out["r"] = lim.acquire("s", 10, 60, algorithm="fixed_window", mode="strict")
            except Exception as e:  # noqa: BLE001 - reported by the assertion below
                out["e"] = e

        t = threading.Thread(target=strict)
        t.start()
        wait_for(lambda: redis_has_unread_bytes(redis_server.port), 30,
                 "the STRICT command to reach the stopped redis-server")
        lim.close()  # deferred: the STRICT call still runs on the handle
        assert lim.closed and lim.opened
        with pytest.raises(ValueError, match="closed"):
            lim.acquire("k", 1, 1)
        with pytest.raises(ValueError, match="closed"):
            lim.check("GET", "/x")
    finally:
        os.kill(redis_server.pid, signal.SIGCONT)
        if t is not None:
            t.join(60)
        lim.close()
    assert "e" not in out, out
    assert out["r"].allowed and out["r"].remaining == 8  # Redis answered the waiting call
    assert not lim.opened  # the last call out closed the handle


def test_monitoring_reset_keeps_the_loop_running(redis_server, shm):
    """POST /rate-limits/reset of a GLOBAL key waits on Redis (one round trip): with Redis
    stopped, the event loop keeps running meanwhile (a coroutine ticking every 10 ms keeps
    ticking), and the answer is 503 naming Redis, not a 500."""
    import asyncio

    import httpx
    from fastapi import FastAPI

    import rl
    import rl.fastapi

    lim = rl.Limiter(shm=shm, redis_url=redis_server.url, redis_command_timeout_ms=2000,
                     from_env=False, no_sync=True)
    app = FastAPI()
    app.include_router(rl.fastapi.monitoring_router(lim, admin=lambda r: True))
    body = {"key": "k", "requests": 10, "window": 60, "mode": "global"}
    try:

        async def main():
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                r = await c.post("/rate-limits/reset", json=body)
                assert r.status_code == 200 and r.json() == {"reset": "k"}  # Redis up
                os.kill(redis_server.pid, signal.SIGSTOP)
                try:
                    task = asyncio.create_task(c.post("/rate-limits/reset", json=body))
                    ticks = 0
                    while not task.done():
                        await asyncio.sleep(0.01)
                        ticks += 1
                    return await task, ticks
                finally:
                    os.kill(redis_server.pid, signal.SIGCONT)

        r, ticks = asyncio.run(main())
        print(f"the event loop ticked {ticks} times while a reset waited on Redis")
        assert ticks >= 10
        assert r.status_code == 503, r.text
        assert r.json()["error"] == "redis_unavailable"
        # rl's message wraps its cause once (the cause is not overwritten by the wrapper)
        msg = r.json()["message"]
        assert msg.count("rl_reset:") == 1, msg
        assert "timed out" in msg or "Redis" in msg.split("deleted:", 1)[1], msg
    finally:
        lim.close()


def test_limiter_freed_while_sync_waits_on_redis_keeps_the_gil_free(redis_server, shm):
    """A Limiter garbage-collected while its sync thread waits on a stopped Redis: rl_close()
    joins that thread (up to the command timeout) without the GIL, so other Python threads run
    meanwhile (a thread ticking every 10 ms keeps ticking)."""
    import rl

    lim = rl.Limiter(shm=shm, redis_url=redis_server.url, redis_command_timeout_ms=3000,
                     sync_interval_ms=20, from_env=False)
    assert lim.acquire("g", 100, 60, mode="global").allowed
    wait_for(lambda: lim.health()["sync_rounds"] > 0, 30, "a GLOBAL sync round")
    os.kill(redis_server.pid, signal.SIGSTOP)
    stop = threading.Event()
    ticks = [0]

    def ticker():
        while not stop.is_set():
            time.sleep(0.01)
            ticks[0] += 1

    t = threading.Thread(target=ticker)
    try:
        wait_for(lambda: redis_has_unread_bytes(redis_server.port), 30,
                 "the sync thread's round to reach the stopped redis-server")
        t.start()
        wait_for(lambda: ticks[0] > 0, 10, "the ticker to start")
        before, t0 = ticks[0], time.monotonic()
        del lim  # the last reference: dealloc, rl_close, the sync thread joined
        waited, during = time.monotonic() - t0, ticks[0] - before
    finally:
        stop.set()
        os.kill(redis_server.pid, signal.SIGCONT)
        if t.is_alive():
            t.join(10)
    print(f"dealloc waited {waited:.2f} s; the other thread ticked {during} times")
    assert waited >= 0.3, "the sync thread was not waiting on Redis: the test proves nothing"
    assert during >= 10


def test_redis_from_the_environment_counts_before_first_use(redis_server, shm, monkeypatch):
    """REDIS_URL from the environment (how the apps are configured) makes redis_configured true
    before the Limiter is opened, so the first STRICT acquire_async() (which opens it) runs in a
    thread: with Redis stopped, the event loop keeps ticking meanwhile."""
    import asyncio

    import rl

    monkeypatch.setenv("REDIS_URL", redis_server.url)
    lim = rl.Limiter(shm=shm, redis_command_timeout_ms=1500, fallback="closed", no_sync=True)
    assert not lim.opened and lim.redis_configured
    assert not rl.Limiter(shm=shm, from_env=False).redis_configured
    os.kill(redis_server.pid, signal.SIGSTOP)
    try:

        async def main():
            ticks = 0
            task = asyncio.create_task(
                lim.acquire_async("s", 10, 60, algorithm="fixed_window", mode="strict"))
            while not task.done():
                await asyncio.sleep(0.01)
                ticks += 1
            return await task, ticks

        res, ticks = asyncio.run(main())
    finally:
        os.kill(redis_server.pid, signal.SIGCONT)
        lim.close()
    print(f"the event loop ticked {ticks} times while the first STRICT acquire waited")
    assert not res.allowed  # fallback closed: Redis did not answer
    assert ticks >= 5  # inline on the loop, it ticks once at most (after the wait)


def test_fork_while_a_strict_call_waits_child_can_close(redis_server, shm):
    """fork() while another thread of the parent waits on Redis without the GIL: the child has
    no such thread, so its close() detaches at once (it was deferred for ever, to the end of a
    call that does not run in the child)."""
    import rl

    lim = rl.Limiter(shm=shm, redis_url=redis_server.url, redis_command_timeout_ms=20000,
                     fallback="closed", from_env=False, no_sync=True)
    t = None
    try:
        assert lim.acquire("s", 10, 60, algorithm="fixed_window", mode="strict").allowed
        os.kill(redis_server.pid, signal.SIGSTOP)
        t = threading.Thread(
            target=lambda: lim.acquire("s", 10, 60, algorithm="fixed_window", mode="strict"))
        t.start()
        wait_for(lambda: redis_has_unread_bytes(redis_server.port), 30,
                 "the STRICT command to reach the stopped redis-server")
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                a = lim.acquire("local", 5, 60).remaining  # the inherited handle works
                lim.close()
                os.write(w, f"{a} {int(lim.opened)} {int(lim.closed)}".encode())
            finally:
                os._exit(0)
        os.close(w)
        out = os.read(r, 100).decode()
        os.close(r)
        os.waitpid(pid, 0)
        assert out == "4 0 1", out  # the child's close() detached
        assert lim.opened  # the parent's handle is still in use by its waiting thread
    finally:
        os.kill(redis_server.pid, signal.SIGCONT)
        if t is not None:
            t.join(60)
        lim.close()
    assert not lim.opened
