"""rl.wsgi: the same checks for WSGI applications (Flask, Django, ...).

    from rl.wsgi import RateLimitMiddleware
    app.wsgi_app = RateLimitMiddleware(app.wsgi_app, limiter=rl.Limiter(shm="/rl-myapp"))

Every request is checked against the segment's rule set; a denied one is answered 429 with the
seed's JSON body and headers, an allowed one gets the X-RateLimit-* headers. WSGI workers are
threads or processes that may block, so a request with a STRICT layer simply waits on Redis in
its own thread (the GIL released meanwhile).
"""

from __future__ import annotations

from typing import Callable, Iterable, Optional

from . import Limiter, client_ip
from .asgi import rl_path, trusted_cidrs


def _text(v) -> Optional[str]:
    """A user or tier as rl keys it: None, or its text (a user id is often an int)."""
    return v if v is None or isinstance(v, str) else str(v)


class RateLimitMiddleware:
    """WSGI middleware; the arguments mean what they mean for rl.asgi.RateLimitMiddleware, but
    user and tier are callables environ -> str | None."""

    def __init__(
        self,
        app,
        limiter: Optional[Limiter] = None,
        *,
        trusted_proxies: Iterable[str] = (),
        user: Optional[Callable[[dict], Optional[str]]] = None,
        tier: Optional[Callable[[dict], Optional[str]]] = None,
        exempt_paths: Iterable[str] = (),
        ietf_headers: bool = False,
    ):
        self.app = app
        self.limiter = limiter if limiter is not None else Limiter()
        self.trusted = trusted_cidrs(trusted_proxies)  # a bad CIDR raises here
        self.user = user
        self.tier = tier
        self.exempt_paths = tuple(exempt_paths)
        self.ietf = ietf_headers

    def client_ip(self, environ: dict) -> str:
        peer = environ.get("REMOTE_ADDR") or ""
        xff = environ.get("HTTP_X_FORWARDED_FOR") if self.trusted else None
        try:
            return client_ip(peer, xff, self.trusted)
        except ValueError:  # InvalidArgument, or a NUL in the header
            return peer or "unknown"

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO") or "/"
        if self.exempt_paths and path.startswith(self.exempt_paths):
            return self.app(environ, start_response)
        lim = self.limiter
        d = lim.check(
            environ.get("REQUEST_METHOD", "GET"),
            rl_path(path),
            self.client_ip(environ),
            _text(self.user(environ)) if self.user else None,
            _text(self.tier(environ)) if self.tier else None,
            1,
            lim.redis_configured,  # nogil: a STRICT layer may wait on Redis
        )
        environ["rl.decision"] = d
        if d.bypassed or d.limit is None:
            return self.app(environ, start_response)
        hdrs = list(d.headers(ietf=self.ietf).items())
        if not d.allowed:
            body = d.body().encode()
            start_response(
                "429 Too Many Requests",
                [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *hdrs],
            )
            return [body]

        def start(status, headers, exc_info=None):
            return start_response(status, [*headers, *hdrs], exc_info)

        return self.app(environ, start)
