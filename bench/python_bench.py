#!/usr/bin/env python3
"""The Python binding's speed beside python3-limits, measured in one run (docs/benchmarks.md,
"Python").

    PYTHONPATH=build/python /usr/bin/python3 bench/python_bench.py [--quick] [--markdown]

Per-call cost from Python (one thread, one hot key; the best of 7 timed batches):
  - rl: acquire() LOCAL (token bucket, sliding and fixed window), check() against the production
    preset, acquire() STRICT (one Redis round trip, a private redis-server);
  - python3-limits: MovingWindowRateLimiter and FixedWindowRateLimiter on MemoryStorage and on
    RedisStorage (the same private redis-server).
Then the FastAPI app's requests/s under one uvicorn worker, with rl's middleware and without
(build/tools/rl-load, 8 keep-alive connections). Speed is reported, never asserted: this exits 0
once it has measured (1 on a setup error).
"""

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import rl

ROOT = Path(__file__).resolve().parent.parent


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_for(cond, timeout, what):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise SystemExit(f"python_bench: timed out waiting for {what}")
        time.sleep(0.02)


def timeit(fn, n, batches=7):
    """ns per call: the best and the median of `batches` timed loops of n calls (the machine
    is shared: the fastest batch is the least disturbed one; the median shows the state that
    grows, like the moving window's timestamps)."""
    fn(min(n, 1000))  # warm
    out = []
    for _ in range(batches):
        t = time.perf_counter_ns()
        fn(n)
        out.append((time.perf_counter_ns() - t) / n)
    return min(out), statistics.median(out)


class Redis:
    def __init__(self):
        exe = shutil.which("redis-server")
        if not exe:
            raise SystemExit("python_bench: redis-server not found (scripts/setup)")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="rl-pybench-")
        self.p = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
             "no", "--dir", self.dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)

        def ping():
            try:
                with socket.create_connection(("127.0.0.1", self.port), 1) as s:
                    s.sendall(b"PING\r\n")
                    return s.recv(16).startswith(b"+PONG")
            except OSError:
                return False

        wait_for(ping, 10, "redis-server")
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def stop(self):
        self.p.terminate()
        self.p.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def micro(redis, quick):
    shm = f"/rl-pybench-{os.getpid()}"
    try:
        return _micro(redis, quick, shm)
    finally:  # also when a measurement fails: no segment left in /dev/shm
        rl.unlink(shm)
        rl.unlink(shm + "-r")


def _micro(redis, quick, shm):
    n = 20_000 if quick else 200_000
    nr = 2_000 if quick else 10_000
    rows = []
    lim = rl.Limiter(shm=shm, environment="production", from_env=False)
    big = 4_000_000  # per hour: never denies here: the cost of a decision, not of a denial

    def rl_acq(alg):
        def f(k):
            a = lim.acquire
            for _ in range(k):
                a("user:42", big, 3600, 0, alg)
        return f

    for alg in ("token_bucket", "sliding_window", "fixed_window"):
        rows.append((f"rl acquire() LOCAL, {alg}", *timeit(rl_acq(alg), n)))

    def rl_check(k):
        c = lim.check
        for _ in range(k):
            c("GET", "/api/users", "198.51.100.7")
    rows.append(("rl check() LOCAL, production preset (3 layers)", *timeit(rl_check, n)))

    def rl_check_hdr(k):
        c = lim.check
        for _ in range(k):
            c("GET", "/api/users", "198.51.100.7").headers(raw=True)
    rows.append(("rl check() + headers(raw=True)", *timeit(rl_check_hdr, n)))

    from limits import parse
    from limits.storage import MemoryStorage, RedisStorage
    from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

    item = parse(f"{big}/hour")
    # The moving window keeps one timestamp per hit (O(limit) per call, limits #268): its
    # limit is 100,000 per minute and it gets a tenth of the calls.
    small = parse("100000/minute")
    mem = MemoryStorage()
    for name, strat, it, k in (("moving window", MovingWindowRateLimiter, small, n // 10),
                               ("fixed window", FixedWindowRateLimiter, item, n)):
        s = strat(mem)

        def f(k, s=s, it=it):
            h = s.hit
            for _ in range(k):
                h(it, "user:42")
        rows.append((f"python3-limits {name}, MemoryStorage", *timeit(f, k)))
        mem.reset()

    rlim = rl.Limiter(shm=shm + "-r", redis_url=redis.url, environment="production",
                      from_env=False, no_sync=True)

    def rl_strict(k):
        a = rlim.acquire
        for _ in range(k):
            a("user:42", big, 3600, 0, "fixed_window", 1, "strict")
    rows.append(("rl acquire() STRICT (Redis), fixed window", *timeit(rl_strict, nr)))

    rs = RedisStorage(redis.url)
    for name, strat, it in (("moving window", MovingWindowRateLimiter, small),
                            ("fixed window", FixedWindowRateLimiter, item)):
        s = strat(rs)

        def f(k, s=s, it=it):
            h = s.hit
            for _ in range(k):
                h(it, "user:42")
        rows.append((f"python3-limits {name}, RedisStorage", *timeit(f, nr)))
        rs.reset()
    lim.close()
    rlim.close()
    rows += asgi_rows(n // 4)
    return rows


def asgi_rows(n):
    """The middleware's own cost: a bare ASGI app called in process, with and without
    rl.asgi.RateLimitMiddleware around it (a roomy rule: every request allowed)."""
    import asyncio

    from rl.asgi import RateLimitMiddleware

    tmp = tempfile.mkdtemp(prefix="rl-pybench-asgi-")
    cfg = Path(tmp) / "rules.yaml"
    cfg.write_text("version: 1\ndefaults:\n  - {requests: 4000000, window: 1h, "
                   "algorithm: sliding_window, scope: per_ip}\n")
    shm = f"/rl-pybench-asgi-{os.getpid()}"
    lim = rl.Limiter(shm=shm, config=str(cfg), from_env=False)

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def receive():
        return {"type": "http.request"}

    async def send(m):
        pass

    mw = RateLimitMiddleware(app, limiter=lim)
    rows = []
    for name, target in (("bare ASGI app, called in process", app),
                         ("the same app inside rl.asgi.RateLimitMiddleware", mw)):
        def f(k, target=target):
            async def loop():
                for _ in range(k):
                    await target({"type": "http", "method": "GET", "path": "/api/users",
                                  "client": ("198.51.100.7", 40000), "headers": []},
                                 receive, send)
            asyncio.run(loop())
        rows.append((name, *timeit(f, n)))
    lim.close()
    rl.unlink(shm)
    shutil.rmtree(tmp, ignore_errors=True)
    return rows


APP = '''
import os
from fastapi import FastAPI
import rl
from rl.asgi import RateLimitMiddleware
app = FastAPI()
if os.environ.get("BENCH_RL") == "1":
    app.add_middleware(RateLimitMiddleware, limiter=rl.Limiter())
@app.get("/api/users")
async def users():
    return {"users": ["alice", "bob"]}
'''


def http(quick):
    """Both apps up at once; rl-load runs alternate between them (3 rounds), the median kept,
    so that a noisy neighbour hits both alike."""
    import http.client
    import json

    load = ROOT / "build" / "tools" / "rl-load"
    if not load.exists():
        return []
    tmp = tempfile.mkdtemp(prefix="rl-pybench-app-")
    (Path(tmp) / "bench_app.py").write_text(APP)
    # The preset's per-IP layers would deny a load test from one address: a roomy rule set.
    cfg = Path(tmp) / "rules.yaml"
    cfg.write_text("version: 1\ndefaults:\n  - {requests: 4000000, window: 1h, "
                   "algorithm: sliding_window, scope: per_ip}\n")
    n = 3000 if quick else 10000
    shm = f"/rl-pybench-http-{os.getpid()}"
    procs, ports = [], []
    try:
        for with_rl in (False, True):
            port = free_port()
            env = dict(os.environ, BENCH_RL="1" if with_rl else "0", RL_SHM=shm,
                       RL_CONFIG=str(cfg), PYTHONPATH=os.pathsep.join(
                           [str(Path(rl.__file__).resolve().parent.parent), tmp]))
            env.pop("REDIS_URL", None)
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "bench_app:app", "--port", str(port),
                 "--log-level", "warning", "--no-access-log"], cwd=tmp, env=env,
                start_new_session=True))
            ports.append(port)

        def get(port):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                c.request("GET", "/api/users")
                r = c.getresponse()
                r.read()
                return r.status, r.getheader("x-ratelimit-limit")
            except OSError:
                return None

        for port in ports:
            wait_for(lambda: get(port) is not None, 30, "uvicorn")
        # The middleware really decides (its header is there) and the plain app has none.
        assert get(ports[0])[1] is None and get(ports[1])[1] == "4000000", "bench apps"
        runs = {0: [], 1: []}
        for _ in range(3):
            for i, port in enumerate(ports):
                url = f"http://127.0.0.1:{port}/api/users"
                subprocess.run([str(load), "-n", "500", "-c", "8", url], capture_output=True)
                out = subprocess.run([str(load), "-n", str(n), "-c", "8", "--json", url],
                                     capture_output=True, text=True, check=True).stdout
                runs[i].append(json.loads(out))
        return [(sorted(runs[i], key=lambda j: j["throughput_rps"])[1], bool(i)) for i in (0, 1)]
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(10)
        rl.unlink(shm)
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    redis = Redis()
    try:
        rows = micro(redis, a.quick)
    finally:
        redis.stop()
    base = rows[0][1]
    print(f"Python {sys.version.split()[0]}, rl {rl.version()}, one thread, one hot key; "
          f"ratio to rl acquire() LOCAL token bucket ({base:.0f} ns)\n")
    print("| what | best ns/call | median ns/call | calls/s (best) | ratio (best) |")
    print("|---|--:|--:|--:|--:|")
    for name, ns, med in rows:
        print(f"| {name} | {ns:,.0f} | {med:,.0f} | {1e9 / ns:,.0f} | {ns / base:.1f} |")
    hr = http(a.quick)
    print("\nFastAPI (uvicorn, 1 worker) GET /api/users, rl-load -c 8 keep-alive connections, "
          "the median of 3 alternating runs\n")
    print("| app | requests/s | mean latency | p99 | decisions | ratio |")
    print("|---|--:|--:|--:|--:|--:|")
    b = None
    for j, with_rl in hr:
        rps = j["throughput_rps"]
        b = b or rps
        lat = j.get("avg_latency_ms")
        p99 = j.get("p99_latency_ms")
        print(f"| {'with rl.asgi.RateLimitMiddleware' if with_rl else 'without middleware'} | "
              f"{rps:,.0f} | {lat} ms | {p99} ms | {j['allowed']}/{j['total']} allowed | {rps / b:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
