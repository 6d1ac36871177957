"""The seed's Quick Start in Python, on rl's shared memory (docs/python.md).

Run it from examples/ (the build tree's package on the path):

    PYTHONPATH=../build/python python3 -m uvicorn fastapi_app:app --workers 4 --port 8000

Every worker process attaches one shared-memory segment (RL_SHM, default /rl-fastapi-example),
so the limits below hold for the whole host however many workers serve it. The rule set is
ENVIRONMENT's preset (production by default; RL_CONFIG names a YAML file instead), plus the
Quick Start's rule for /api/users, added at start-up. With REDIS_URL, the preset's GLOBAL layers
sync through Redis and its STRICT layers (logins) are decided there, off the event loop.

The client is the TCP peer: X-Forwarded-For is believed only from RL_TRUSTED_PROXIES
(comma-separated CIDRs). X-User and X-Tier name the user and tier: a demo stand-in for real
authentication (rl trusts what it is given).
"""

import os

from fastapi import Depends, FastAPI, Request

import rl
import rl.fastapi
from rl.asgi import RateLimitMiddleware, header

# Nothing is opened here: gunicorn --preload imports this in its master, which must not attach
# the segment; each worker attaches it at its first request.
limiter = rl.Limiter(shm=os.environ.get("RL_SHM", "/rl-fastapi-example"))
trusted = [c for c in os.environ.get("RL_TRUSTED_PROXIES", "").split(",") if c]

app = FastAPI(title="rl Quick Start")
app.add_middleware(
    RateLimitMiddleware,
    limiter=limiter,
    trusted_proxies=trusted,
    user=lambda scope: header(scope, "x-user"),
    tier=lambda scope: header(scope, "x-tier"),
    exempt_paths=["/health", "/docs", "/openapi.json"],
)
rl.fastapi.install(app, limiter, trusted_proxies=trusted)
app.include_router(
    rl.fastapi.monitoring_router(
        limiter, admin=lambda request: request.headers.get("x-admin-token") == "demo"
    )
)


@app.on_event("startup")
def configure() -> None:
    # The Quick Start's "configure endpoint": 100 requests per 60 s sliding window per IP on
    # /api/users. Published to the segment, so every worker (and rlctl) sees it.
    limiter.configure_endpoint(
        "/api/users",
        [{"requests": 100, "window": 60, "algorithm": "sliding_window", "scope": "ip"}],
    )


@app.get("/health")
def health():
    return {"status": "ok", "pid": os.getpid()}


@app.get("/api/users")
def users(request: Request):
    return {"users": ["alice", "bob"], "pid": os.getpid()}


@app.post("/api/test")
async def api_test(request: Request):
    return {"received": await request.body() and (await request.json()), "pid": os.getpid()}


@app.post("/auth/login")
async def login(_=Depends(rl.fastapi.limit("5/300s", scope="ip", algorithm="fixed_window"))):
    # The middleware applies the rule set's "POST:/auth/login" layers; the dependency is the
    # seed's per-route form of the same protection.
    return {"token": "..."}


@app.post("/upload/{name}")
def upload(name: str):
    return {"stored": name}
