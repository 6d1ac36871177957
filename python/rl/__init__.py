"""rl: shared-memory rate limits for Python servers (docs/python.md).

Every worker process of a host attaches one POSIX shared-memory segment and decides each request
there with one compare-and-swap: `uvicorn --workers 4` and `gunicorn -w 4` share exact limits
with no network round trip. Limits marked GLOBAL are reconciled with Redis in the background
(checks stay local); STRICT limits are decided in Redis, one round trip each, and are offered as
awaitables that run off the event loop.

    import rl
    limiter = rl.Limiter(shm="/rl-myapp")             # opens nothing until first use
    r = limiter.acquire("user:42", requests=100, window=60)
    if not r:
        print("retry in", r.retry_after, "s")
    d = limiter.check("GET", "/api/users", ip="198.51.100.7")   # the rule set (YAML)
    d.headers(); d.body()

Nothing is opened at import, and a Limiter attaches its segment at its first use, so a
`gunicorn --preload` master that builds one at import opens nothing; a process forked from one
that had opened it may use it at once (librl restarts its Redis sync thread in the child and
drops the Redis connections it inherited).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import threading

from . import _rl
from ._rl import Decision, Error, InvalidArgument, Result, check_config_file, client_ip, unlink

__all__ = [
    "Limiter",
    "Result",
    "Decision",
    "Error",
    "InvalidArgument",
    "client_ip",
    "unlink",
    "check_config_file",
    "parse_rate",
    "version",
    "ALGORITHMS",
    "SCOPES",
    "MODES",
]

__version__ = "0.1.0"

ALGORITHMS = ("token_bucket", "sliding_window", "fixed_window", "gcra")
SCOPES = ("ip", "user", "global", "endpoint", "descriptor", "user_endpoint")
MODES = ("local", "global", "strict")

_UNITS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
}
_RATE = re.compile(r"^\s*(\d+)\s*(?:/|per)\s*(\d+)?\s*([a-z]+)\s*$")


def version() -> str:
    """librl's version string."""
    return _rl.version()


def parse_rate(rate: str) -> tuple[int, int]:
    """Parses "100/minute", "5 per 300 seconds", "10/5m" into (requests, window_seconds).

    Raises rl.InvalidArgument naming what is wrong.
    """
    if not isinstance(rate, str):
        raise TypeError(f"rate: expected a str such as '100/minute', got {type(rate).__name__}")
    m = _RATE.match(rate.lower())
    if not m or m.group(3) not in _UNITS:
        raise InvalidArgument(
            22,
            f"rate {rate!r}: expected '<requests>/<unit>' or '<requests>/<n><unit>' with unit "
            f"one of second, minute, hour, day (e.g. '100/minute', '5/300s')",
        )
    requests = int(m.group(1))
    window = int(m.group(2) or 1) * _UNITS[m.group(3)]
    if requests < 1 or window < 1:
        raise InvalidArgument(22, f"rate {rate!r}: requests and window must be at least 1")
    return requests, window


class Limiter(_rl.Handle):
    """A handle on one rl segment, attached at its first use.

    Limiter(shm=None, config=None, redis_url=None, environment=None, *, capacity=None,
            enabled=None, fallback=None, sync_interval_ms=None, redis_pool_size=None,
            redis_connect_timeout_ms=None, redis_command_timeout_ms=None, host_id=None,
            cluster_hosts=None, no_sync=False, no_stats=False, create=True, from_env=True,
            monitoring=-1)

    shm is the segment's name ("/rl-myapp"); config a YAML rule file published when the segment
    has none yet (docs/configuration.md); environment the preset used without one
    ("development", "staging", "production"); redis_url enables GLOBAL and STRICT limits
    through Redis. With from_env (the default) RL_SHM, RL_CONFIG, ENVIRONMENT, REDIS_URL,
    RATE_LIMITING_ENABLED, ... fill what is not given. Bad values raise rl.InvalidArgument
    (a ValueError) at construction or, for what only opening can tell, at first use
    (rl.Error carrying rl's message).

    acquire() and check() are the C methods themselves: a LOCAL or GLOBAL decision runs with
    the GIL held (it takes tens of nanoseconds, less than releasing the GIL would). A STRICT
    acquire releases the GIL while it waits on Redis; in async code use acquire_async() and
    check_async(), which run STRICT work in a thread and never block the event loop.

    Any thread may use one Limiter. A Limiter is a context manager (close() at exit).
    """

    def __init__(self, shm=None, config=None, redis_url=None, environment=None, **kw):
        super().__init__(shm, config, redis_url, environment, **kw)
        self._pool = None
        self._pool_pid = 0
        self._pool_lock = threading.Lock()

    # -- the event loop side -------------------------------------------------------------------
    def _executor(self) -> concurrent.futures.ThreadPoolExecutor:
        pid = os.getpid()
        if self._pool is None or self._pool_pid != pid:  # a forked child has no pool threads
            with self._pool_lock:
                if self._pool is None or self._pool_pid != pid:
                    self._pool = concurrent.futures.ThreadPoolExecutor(
                        max_workers=32, thread_name_prefix="rl-strict"
                    )
                    self._pool_pid = pid
        return self._pool

    async def acquire_async(self, key, requests, window, burst=0, algorithm=None, cost=1,
                            mode=None) -> Result:
        """acquire() for async code: LOCAL and GLOBAL decide at once, inline (they never
        block); STRICT runs in a worker thread (the GIL released while Redis answers), so the
        event loop goes on serving other requests."""
        if mode in ("strict", 2) and self.redis_configured:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                self._executor(),
                lambda: self.acquire(key, requests, window, burst, algorithm, cost, mode),
            )
        return self.acquire(key, requests, window, burst, algorithm, cost, mode)

    async def check_async(self, method, path, ip=None, user=None, tier=None, cost=1) -> Decision:
        """check() in a worker thread without the GIL: for requests that may meet a STRICT
        layer (rl.asgi decides which do). Never blocks the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor(),
            lambda: self.check(method, path, ip, user, tier, cost, True),
        )

    # -- operators -----------------------------------------------------------------------------
    def bypass_add(self, kind: str, value: str) -> None:
        """Adds an address/CIDR (kind "ip") or a user name ("user") to the emergency bypass
        list of every process attached to the segment."""
        self._bypass("add", kind, value)

    def bypass_remove(self, kind: str, value: str) -> None:
        """Removes an entry of the bypass list (rl.Error ENOENT when it is not there)."""
        self._bypass("remove", kind, value)

    def bypass_list(self, kind: str) -> list[str]:
        """The bypass list of `kind` ("ip" or "user")."""
        return [x for x in self._bypass("list", kind).splitlines() if x]

    def close(self) -> None:
        """Detaches the segment (idempotent); later calls raise ValueError."""
        super().close()
        pool, self._pool = self._pool, None
        if pool is not None and self._pool_pid == os.getpid():
            pool.shutdown(wait=False)

    def __enter__(self) -> "Limiter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("open" if self.opened else "not yet opened")
        return f"<rl.Limiter shm={self.shm or '(RL_SHM or default)'!r} {state}>"
