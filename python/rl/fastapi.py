"""rl.fastapi: per-route limits as FastAPI dependencies and the seed's monitoring routes.

    import rl, rl.fastapi
    app = FastAPI()
    rl.fastapi.install(app, rl.Limiter(shm="/rl-myapp"))   # limiter + the 429 handler

    @app.get("/api/items", dependencies=[Depends(rl.fastapi.limit("100/minute", scope="ip"))])
    async def items(): ...

    app.include_router(rl.fastapi.monitoring_router(admin=is_admin))

A limit() dependency counts in the same shared-memory segment as the middleware, so every worker
process of the host shares it. Its key is the route's path template and the scope's value (the
client IP, the user, or one counter for everyone). A denied request raises RateLimitExceeded
(an HTTPException 429 carrying the seed's headers); with install() its answer is the seed's JSON
body.
"""

from __future__ import annotations

import json
import time
from typing import Awaitable, Callable, Optional, Union

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from . import Decision, Error, InvalidArgument, Limiter, parse_rate
from ._rl import decision_for
from .asgi import ClientIP

_default: dict = {"limiter": None, "client_ip": ClientIP(())}


class RateLimitExceeded(HTTPException):
    """429 with the X-RateLimit-* headers and Retry-After; .decision is the rl.Decision."""

    def __init__(self, decision: Decision):
        self.decision = decision
        super().__init__(429, detail=json.loads(decision.body()), headers=decision.headers())


async def _exceeded_handler(request: Request, exc: RateLimitExceeded):
    return Response(
        exc.decision.body(),
        status_code=429,
        media_type="application/json",
        headers=exc.decision.headers(),
    )


def install(app: FastAPI, limiter: Optional[Limiter] = None, trusted_proxies=()) -> Limiter:
    """Makes `limiter` the one limit() dependencies and the monitoring router use (default: one
    from the environment) and answers RateLimitExceeded with the seed's JSON body."""
    if limiter is None:
        limiter = Limiter()
    _default["limiter"] = limiter
    _default["client_ip"] = ClientIP(trusted_proxies)
    app.state.rl_limiter = limiter
    app.add_exception_handler(RateLimitExceeded, _exceeded_handler)
    return limiter


def get_limiter() -> Limiter:
    """The limiter install() set, else one built from the environment at first use."""
    if _default["limiter"] is None:
        _default["limiter"] = Limiter()
    return _default["limiter"]


def limit(
    rate: str,
    scope: str = "ip",
    *,
    algorithm: str = "sliding_window",
    burst: int = 0,
    mode: str = "local",
    cost: int = 1,
    key: Optional[Callable[[Request], Union[str, Awaitable[str]]]] = None,
    user: Optional[Callable[[Request], Optional[str]]] = None,
    limiter: Optional[Limiter] = None,
):
    """A dependency enforcing `rate` ("100/minute", "5/300s") on the route it guards.

    scope: "ip" (the client address, through install()'s trusted proxies), "user" (user(request),
    else the IP), "global" (one counter for the route), or a key callable of your own. mode
    "strict" decides in Redis, off the event loop. Bad arguments raise rl.InvalidArgument here,
    at import, not at the first request.
    """
    requests, window = parse_rate(rate)
    if scope not in ("ip", "user", "global") and key is None:
        raise InvalidArgument(22, f"limit: scope {scope!r} is not 'ip', 'user' or 'global'")
    if algorithm not in ("token_bucket", "sliding_window", "fixed_window", "gcra"):
        raise InvalidArgument(22, f"limit: unknown algorithm {algorithm!r}")
    if mode not in ("local", "global", "strict"):
        raise InvalidArgument(22, f"limit: mode {mode!r} is not local, global or strict")
    for what, v, least in (("burst", burst, 0), ("cost", cost, 1)):
        if not isinstance(v, int) or isinstance(v, bool) or v < least:
            raise InvalidArgument(22, f"limit: {what} {v!r} must be an int of at least {least}")
    rl_scope = {"ip": "ip", "user": "user", "global": "endpoint"}.get(scope, "descriptor")

    async def dependency(request: Request, response: Response) -> Decision:
        lim = limiter or get_limiter()
        route = request.scope.get("route")
        where = getattr(route, "path", None) or request.url.path
        if key is not None:
            who = key(request)
            if hasattr(who, "__await__"):
                who = await who
        elif scope == "global":
            who = ""
        else:
            who = None
            if scope == "user" and user is not None:
                who = user(request)
            if who is None:
                who = _default["client_ip"](request.scope)
        k = f"py:{request.method}:{where}:{scope}:{who}"
        r = await lim.acquire_async(k, requests, window, burst, algorithm, cost, mode)
        d = decision_for(r, rl_scope, algorithm, f"{request.method}:{where}", window, rate)
        if not r.allowed:
            raise RateLimitExceeded(d)
        response.headers.update(d.headers())
        return d

    return dependency


def monitoring_router(
    limiter: Optional[Limiter] = None,
    admin: Optional[Callable[[Request], bool]] = None,
    prefix: str = "/rate-limits",
) -> APIRouter:
    """The seed's monitoring routes: GET {prefix}/metrics, /metrics/endpoint/{endpoint},
    /metrics/real-time, /config, /health, and POST /reset (only when admin(request) is true;
    403 otherwise, and always 403 without an admin callable)."""
    router = APIRouter(prefix=prefix, tags=["rate-limits"])
    last = {"t": 0.0, "checks": 0, "denied": 0}

    def lim() -> Limiter:
        return limiter or get_limiter()

    @router.get("/metrics")
    def metrics():
        s = lim().stats()
        eps = lim().endpoint_stats()
        top = sorted(eps.items(), key=lambda kv: kv[1]["denied"], reverse=True)[:10]
        return {
            "total_requests": s["checks"],
            "allowed_requests": s["allowed"],
            "denied_requests": s["denied"],
            "bypassed_requests": s["bypassed"],
            "denial_rate": s["denied"] / s["checks"] if s["checks"] else 0.0,
            "top_denied_endpoints": [{"endpoint": k, **v} for k, v in top if v["denied"]],
            "endpoints": eps,
            "stats": s,
        }

    @router.get("/metrics/endpoint/{endpoint:path}")
    def endpoint_metrics(endpoint: str):
        eps = lim().endpoint_stats()
        if endpoint not in eps:
            return JSONResponse({"error": "not_found", "endpoint": endpoint,
                                 "known": sorted(eps)}, status_code=404)
        v = eps[endpoint]
        total = v["allowed"] + v["denied"]
        return {"endpoint": endpoint, **v, "total": total,
                "denial_rate": v["denied"] / total if total else 0.0}

    @router.get("/metrics/real-time")
    def real_time():
        s = lim().stats()
        now = time.monotonic()
        dt = now - last["t"] if last["t"] else 0.0
        out = {
            "requests_total": s["checks"],
            "requests_per_minute": (s["checks"] - last["checks"]) * 60.0 / dt if dt else None,
            "denial_rate": (s["denied"] - last["denied"]) / (s["checks"] - last["checks"])
            if dt and s["checks"] > last["checks"] else 0.0,
            "interval_s": dt or None,
        }
        last.update(t=now, checks=s["checks"], denied=s["denied"])
        return out

    @router.get("/config")
    def config():
        return PlainTextResponse(lim().config_dump(), media_type="application/yaml")

    @router.get("/health")
    def health():
        # A def route: FastAPI runs it in its thread pool, and health() PINGs Redis without
        # the GIL, so the event loop never waits on Redis here either.
        h = lim().health()
        ok = (not h["redis_configured"]) or h["connected"]
        return JSONResponse({"status": "healthy" if ok else "degraded", **h},
                            status_code=200 if ok else 503)

    @router.post("/reset")
    async def reset(request: Request):
        if admin is None or not admin(request):
            return JSONResponse({"error": "forbidden", "message": "admin only"}, status_code=403)
        try:
            body = await request.json()
            args = (body["key"], body["requests"], body["window"], body.get("burst", 0),
                    body.get("algorithm"), body.get("mode"))
            # A GLOBAL or STRICT key is deleted in Redis too: one round trip, up to the command
            # timeout. In a worker thread (the GIL released), never on the event loop.
            await run_in_threadpool(lim().reset, *args)
        except (KeyError, TypeError, ValueError) as e:  # rl.InvalidArgument is a ValueError
            return JSONResponse({"error": "bad_request", "message": str(e),
                                 "expected": {"key": "str", "requests": "int",
                                              "window": "seconds"}}, status_code=400)
        except Error as e:  # Redis could not answer (the segment part is done anyway)
            return JSONResponse({"error": "redis_unavailable", "message": e.strerror},
                                status_code=503)
        return {"reset": body["key"]}

    return router
