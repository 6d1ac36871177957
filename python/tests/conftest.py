"""Fixtures of the suite 'python': unique segment names, free loopback ports, real servers
(uvicorn, gunicorn, redis-server) started in their own process groups and always stopped, and
waits that poll a condition (never a fixed sleep)."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

# rl's environment variables from the caller's shell must not reach the Limiters and servers of
# the tests (each test sets what it needs).
for _v in ("RL_SHM", "RL_CONFIG", "ENVIRONMENT", "RATE_LIMITING_ENABLED", "REDIS_URL",
           "REDIS_POOL_SIZE", "ENABLE_RATE_LIMIT_MONITORING", "METRICS_RETENTION_DAYS",
           "RL_SYNC_INTERVAL_MS", "RL_FALLBACK", "RL_CLUSTER_HOSTS", "RL_HOST_ID"):
    os.environ.pop(_v, None)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
EXAMPLES = ROOT / "examples"
APPS = HERE / "apps"
PKG = Path(os.environ.get("PYTHONPATH", "").split(os.pathsep)[0] or ".").resolve()


def wait_for(cond, timeout=30.0, what="condition", interval=0.02):
    """Polls cond() until it returns a truthy value; fails naming `what` after timeout s."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def request(port, method="GET", path="/", headers=None, timeout=30.0, body=None):
    """One request on a new connection (so a multi-worker server spreads them): (status,
    headers dict, body bytes)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers={"Connection": "close", **(headers or {})})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def hammer(port, path, n, threads=8, method="GET", headers=None):
    """n requests from `threads` threads; the list of (status, headers, body)."""
    with ThreadPoolExecutor(threads) as ex:
        return list(ex.map(lambda _: request(port, method, path, headers), range(n)))


def up(port, path="/health"):
    try:
        return request(port, "GET", path, timeout=2.0)[0] == 200
    except OSError:
        return False


class Server:
    """A server process in its own session: stop() kills the whole group (workers too).
    args may hold "{port}": the server's port, a free one."""

    def __init__(self, args, cwd, env, log_dir: Path, name):
        self._spawn_args = (args, cwd, env, log_dir, name)
        self.retries = 4
        self._spawn()

    def _spawn(self):
        args, cwd, env, log_dir, name = self._spawn_args
        self.port = free_port()
        self.log = log_dir / f"{name}-{self.port}.log"
        self.logf = open(self.log, "wb")
        self.proc = subprocess.Popen(
            [a.replace("{port}", str(self.port)) for a in args], cwd=cwd, env=env,
            stdout=self.logf, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def wait_up(self, path="/health", timeout=60.0):
        def ok():
            if self.proc.poll() is not None:
                # free_port()'s port can be taken (by another test's connection) before the
                # server binds it: a new port and another try.
                if "address already in use" in self.output().lower() and self.retries > 0:
                    self.retries -= 1
                    self.stop()
                    self._spawn()
                    return False
                raise AssertionError(f"server exited {self.proc.returncode}:\n{self.output()}")
            return up(self.port, path)

        wait_for(ok, timeout, f"the server on port {self.port} to answer {path}")
        return self

    def output(self) -> str:
        self.logf.flush()
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        # Workers left in the group (a master killed first): never leave one behind.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.logf.close()


@pytest.fixture
def shm():
    """A unique segment name, unlinked at the end."""
    import rl

    name = f"/rl-pytest-{os.getpid()}-{uuid.uuid4().hex[:10]}"
    yield name
    rl.unlink(name)


@pytest.fixture
def tmp(tmp_path):
    return tmp_path


@pytest.fixture
def servers(tmp_path):
    """Starts servers; every one is stopped at the end, also when the test fails."""
    started = []

    def start(args, cwd, env_extra, name="server"):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(PKG), str(APPS), str(EXAMPLES)])
        env.update(env_extra)
        s = Server(args, cwd, env, tmp_path, name)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


@pytest.fixture
def redis_server(tmp_path):
    """A private redis-server on a free loopback port (no persistence), stopped at the end."""
    exe = shutil.which("redis-server")
    if not exe:
        pytest.fail("redis-server not found: run scripts/setup (package redis-server)")
    port = free_port()
    d = tempfile.mkdtemp(dir=tmp_path)
    log = open(Path(d) / "redis.log", "wb")
    p = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", d, "--daemonize", "no"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )

    def ping():
        try:
            with socket.create_connection(("127.0.0.1", port), 1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    try:
        wait_for(ping, 10, "redis-server to answer PING")

        class R:
            pass

        r = R()
        r.port, r.pid, r.url = port, p.pid, f"redis://127.0.0.1:{port}/0"
        yield r
    finally:
        try:
            os.kill(p.pid, signal.SIGCONT)  # a test that paused it
        except ProcessLookupError:
            pass
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        log.close()


PY = sys.executable
