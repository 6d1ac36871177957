"""rl.asgi: a pure ASGI rate-limiting middleware (no BaseHTTPMiddleware: no extra task, no
buffering, streaming answers stream).

    from rl.asgi import RateLimitMiddleware
    app.add_middleware(RateLimitMiddleware, limiter=rl.Limiter(shm="/rl-myapp"),
                       trusted_proxies=["10.0.0.0/8"], user=lambda scope: ...)

Every HTTP request is checked against the segment's rule set (rl_check: the most specific rule,
the global layers, the tier's layers). An allowed answer gets the X-RateLimit-* headers; a denied
one is answered 429 here with the seed's JSON body and headers (Retry-After), and the app never
sees it. The decision is left in scope["state"]["rl"] (request.state.rl in Starlette).

The event loop never waits on Redis: a request whose rule has a STRICT layer is checked in a
worker thread (Limiter.check_async). Which requests those are is learnt from their decisions
(per method, path and tier, bounded, forgotten when the rule set changes); a request not seen yet
under the current rules goes to the thread once.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any, Awaitable, Callable, Iterable, Optional, Union

from . import Decision, Limiter, client_ip

log = logging.getLogger("rl")

Scope = dict
Getter = Callable[[Scope], Union[Optional[str], Awaitable[Optional[str]]]]

_CACHE_MAX = 4096


def header(scope: Scope, name: str) -> Optional[str]:
    """The first value of request header `name` (case-insensitive) in an ASGI scope, or None."""
    key = name.lower().encode("latin-1")
    for k, v in scope.get("headers") or ():
        if k == key:
            return v.decode("latin-1")
    return None


def peer_address(scope: Scope) -> str:
    """The TCP peer of an ASGI scope ("" when the server gives none)."""
    client = scope.get("client")
    return str(client[0]) if client else ""


def trusted_cidrs(trusted_proxies: Iterable[str]) -> tuple:
    """The trusted proxies as a tuple, checked now (a bad CIDR, or one str instead of a list,
    raises at start-up rather than at the first request)."""
    if isinstance(trusted_proxies, (str, bytes)):
        client_ip("127.0.0.1", None, trusted_proxies)  # raises TypeError naming the fix
    trusted = tuple(trusted_proxies)
    client_ip("127.0.0.1", None, trusted)
    return trusted


class ClientIP:
    """The client's address from an ASGI scope: the peer, or, when the peer is one of
    `trusted_proxies` (CIDRs), the right-most X-Forwarded-For entry that is not (rl_client_ip).
    A client that is not behind a trusted proxy cannot change its address with the header."""

    def __init__(self, trusted_proxies: Iterable[str] = (), header_name: str = "x-forwarded-for"):
        self.trusted = trusted_cidrs(trusted_proxies)
        self.header = header_name.lower().encode("latin-1")

    def __call__(self, scope: Scope) -> str:
        peer = peer_address(scope)
        xff = None
        if self.trusted:
            for k, v in scope.get("headers") or ():
                if k == self.header:
                    xff = v.decode("latin-1") if xff is None else xff + "," + v.decode("latin-1")
        try:
            return client_ip(peer, xff, self.trusted)
        except ValueError:  # InvalidArgument, or a NUL in the header
            # A peer that is not an address (a Unix socket, a test client) or a garbled header:
            # the peer as given, never a value the client chose.
            return peer or "unknown"


def rl_path(path: str) -> str:
    """The path as rl checks it: an ASGI or WSGI path is percent-decoded, so a client's "%00" is
    a NUL there, which rl's C strings cannot carry (check() refuses it): it is checked as "%00"
    again, so the request is limited like any other (the app still gets the path as sent)."""
    return path.replace("\x00", "%00") if "\x00" in path else path


async def _call(fn: Optional[Getter], scope: Scope) -> Optional[str]:
    if fn is None:
        return None
    v = fn(scope)
    if inspect.isawaitable(v):
        v = await v
    # A user id is often an int: rl keys on its text. (Passed as is, check() would raise
    # TypeError and fail_open would let every request through, unlimited.)
    return v if v is None or isinstance(v, str) else str(v)


class RateLimitMiddleware:
    """ASGI middleware checking every HTTP request with rl.

    limiter: an rl.Limiter (default: rl.Limiter() from the environment: RL_SHM, RL_CONFIG,
      REDIS_URL, ...). It is attached at the first request, in the worker process.
    trusted_proxies: CIDRs whose X-Forwarded-For is believed (default: none: the peer).
    client_ip: a callable scope -> str replacing the above.
    user, tier: callables scope -> str | None (may be async): the verified user and their tier.
      rl trusts what they return: take it from your authentication, not from a raw header.
    exempt_paths: path prefixes never checked ("/health", "/docs"); exempt_ips, exempt_users:
      exact values never checked (the rule set's bypass lists, changed at run time with
      `rlctl bypass`, apply as well).
    ietf_headers: also send RateLimit-Policy and RateLimit (draft-ietf-httpapi-ratelimit-headers).
    fail_open: when rl raises (a bug, never a full table or Redis: those are decided by the rule
      set), let the request through and log it (default) instead of answering 500.
    """

    def __init__(
        self,
        app,
        limiter: Optional[Limiter] = None,
        *,
        trusted_proxies: Iterable[str] = (),
        client_ip: Optional[Callable[[Scope], str]] = None,
        user: Optional[Getter] = None,
        tier: Optional[Getter] = None,
        exempt_paths: Iterable[str] = (),
        exempt_ips: Iterable[str] = (),
        exempt_users: Iterable[str] = (),
        ietf_headers: bool = False,
        fail_open: bool = True,
    ):
        self.app = app
        self.limiter = limiter if limiter is not None else Limiter()
        self.client_ip = client_ip or ClientIP(trusted_proxies)
        self.user = user
        self.tier = tier
        self.exempt_paths = tuple(exempt_paths)
        self.exempt_ips = frozenset(exempt_ips)
        self.exempt_users = frozenset(exempt_users)
        self.ietf = ietf_headers
        self.fail_open = fail_open
        self._inline: dict = {}  # (method, path, tier) -> True: no STRICT layer
        self._generation = -1

    async def decide(self, method: str, path: str, ip: str, user, tier) -> Decision:
        """The decision for one request, off the event loop when it may wait on Redis."""
        lim = self.limiter
        if not lim.redis_configured:  # STRICT layers then count locally: never block
            return lim.check(method, path, ip, user, tier)
        k = (method, path, tier)
        if k in self._inline:
            d = lim.check(method, path, ip, user, tier)
        else:
            d = await lim.check_async(method, path, ip, user, tier)
        g = d.config_generation
        if g != self._generation:
            self._inline.clear()
            self._generation = g
        if d.strict or d.bypassed:
            self._inline.pop(k, None)
        else:
            if len(self._inline) >= _CACHE_MAX:
                self._inline.clear()
            self._inline[k] = True
        return d

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path") or "/"
        if self.exempt_paths and path.startswith(self.exempt_paths):
            return await self.app(scope, receive, send)
        ip = self.client_ip(scope)
        if ip in self.exempt_ips:
            return await self.app(scope, receive, send)
        user = await _call(self.user, scope) if self.user is not None else None
        if user is not None and user in self.exempt_users:
            return await self.app(scope, receive, send)
        tier = await _call(self.tier, scope) if self.tier is not None else None
        try:
            lim = self.limiter
            rpath = rl_path(path)
            if lim.redis_configured:
                d = await self.decide(scope["method"], rpath, ip, user, tier)
            else:  # no Redis: every layer counts in shared memory and never blocks
                d = lim.check(scope["method"], rpath, ip, user, tier)
        except Exception:
            if not self.fail_open:
                raise
            log.exception("rl: check failed; request let through (fail_open)")
            return await self.app(scope, receive, send)
        scope.setdefault("state", {})["rl"] = d
        if d.bypassed or d.limit is None:
            return await self.app(scope, receive, send)
        hdrs = d.headers(raw=True, ietf=self.ietf)
        if not d.allowed:
            body = d.body().encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 429,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        *hdrs,
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                # A route's own limit (rl.fastapi.limit) already set its headers: they win.
                old = list(message.get("headers", ()))
                have = {k.lower() for k, _ in old}
                message = dict(message)
                message["headers"] = old + [h for h in hdrs if h[0] not in have]
            await send(message)

        await self.app(scope, receive, send_with_headers)
