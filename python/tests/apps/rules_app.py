"""A FastAPI app on rl for the Redis tests: its rule set is RL_CONFIG (written by the test),
Redis is REDIS_URL, the fallback RL_FALLBACK; RL_TEST_COMMAND_TIMEOUT_MS sets the Redis command
timeout. /health is exempt from limits and never touches rl."""

import os

from fastapi import FastAPI

import rl
from rl.asgi import RateLimitMiddleware

limiter = rl.Limiter(
    redis_command_timeout_ms=int(os.environ.get("RL_TEST_COMMAND_TIMEOUT_MS", "0")) or None,
    cluster_hosts=int(os.environ.get("RL_CLUSTER_HOSTS", "0")) or None,
)
app = FastAPI()
app.add_middleware(RateLimitMiddleware, limiter=limiter, exempt_paths=["/health"])


@app.get("/health")
async def health():
    return {"status": "ok", "pid": os.getpid()}


@app.get("/global")
async def global_route():
    return {"pid": os.getpid()}


@app.get("/strict")
async def strict_route():
    return {"pid": os.getpid()}


@app.get("/rl-health")
def rl_health():
    return limiter.health()
