"""The same route as examples/fastapi_app.py's /api/users (100 per minute per client), limited
with python3-limits on its in-memory storage: the usual Python setup, whose counters live in
each worker process. Answers carry the worker's pid so a test can count per process."""

import os

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

storage = MemoryStorage()
limiter = MovingWindowRateLimiter(storage)
rate = parse("100/minute")
app = FastAPI()


@app.get("/health")
def health():
    return {"status": "ok", "pid": os.getpid()}


@app.get("/api/users")
def users(request: Request):
    if not limiter.hit(rate, "users", request.client.host):
        return JSONResponse({"error": "rate_limited", "pid": os.getpid()}, status_code=429)
    return {"users": ["alice", "bob"], "pid": os.getpid()}
