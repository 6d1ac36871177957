"""Real nginx instances for the ngx_http_rl_module suites (nginx/tests/).

Each instance runs Debian's nginx binary with the module from the build (NGINX_RL_MODULE), in a
prefix directory of its own under a temporary directory, listening on free loopback ports; its
segments have unique names. stop() (and the context manager) stops it and removes the segments
and the directory, also when a test fails. Waits are for conditions, with deadlines, never fixed
sleeps, except where the passing of time is the behaviour under test (a rate refilling).
"""

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

NGINX = os.environ.get("NGINX_BIN", "/usr/sbin/nginx")
MODULE = os.environ.get("NGINX_RL_MODULE", "")


def _blocked_for_others(path):
    """The first directory on the way to `path` that users other than its owner cannot search
    (no o+x), or None."""
    d = os.path.realpath(path)
    while True:
        try:
            if not os.stat(d).st_mode & 0o001:
                return d
        except OSError:
            return d
        if d == "/":
            return None
        d = os.path.dirname(d)


def _worker_user():
    """(user, why) for nginx's `user` directive. Run as root, the workers run as nobody (as
    Debian's nginx runs them as www-data): the suites check a master that maps nothing and
    workers that create their segments as another user. Where nobody cannot reach /dev/shm or
    the temporary directory (a chroot whose / is mode 0700, as `mktemp -d` makes it), nginx's
    workers could not start as nobody: they run as root instead, `why` says so, and the tests
    that need a second user skip with that reason."""
    if os.geteuid() != 0:
        return None, "not root: the workers run as the test's own user"
    for p in ("/dev/shm", tempfile.gettempdir()):
        b = _blocked_for_others(p)
        if b:
            return "root", ("user nobody cannot reach %s (%s is mode %o): nginx's workers run "
                            "as root" % (p, b, os.stat(b).st_mode & 0o7777))
    return "nobody", None


WORKER_USER, WORKER_USER_WHY = _worker_user()
if WORKER_USER == "root":
    print("ngxharness: " + WORKER_USER_WHY, file=sys.stderr)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(cond, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))


def unique(tag):
    return "%s-%d-%s" % (tag, os.getpid(), uuid.uuid4().hex[:8])


class Response:
    def __init__(self, status, headers, body, elapsed):
        self.status = status
        self.headers = headers
        self.body = body
        self.elapsed = elapsed

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


def get(port, path="/", headers=None, timeout=10.0):
    t0 = time.monotonic()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        body = r.read()
        return Response(r.status, r.getheaders(), body, time.monotonic() - t0)
    finally:
        c.close()


def parallel(fns):
    """Runs the callables at once; returns their results in order."""
    out = [None] * len(fns)
    errs = []

    def run(i, f):
        try:
            out[i] = f()
        except Exception as e:  # noqa: BLE001 - reported below
            errs.append(e)

    ts = [threading.Thread(target=run, args=(i, f)) for i, f in enumerate(fns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errs:
        raise errs[0]
    return out


class Nginx:
    """One nginx. http_conf is the body of the http block; @port@ (@port0@, @port1@, ...),
    @html@, @dir@ and @NAME@ for the names given in `fmt` are substituted; @shm:NAME@ becomes a
    segment name unique to the test (removed by stop())."""

    def __init__(self, http_conf, workers=1, nports=1, main_conf="", fmt=None, load_module=True,
                 error_level="info", master=True):
        self.dir = tempfile.mkdtemp(prefix="rl-nginx-")
        self.ports = [free_port() for _ in range(nports)]
        self.port = self.ports[0]
        self.html = os.path.join(self.dir, "html")
        os.makedirs(self.html)
        os.makedirs(os.path.join(self.dir, "logs"))
        with open(os.path.join(self.html, "index.html"), "w") as f:
            f.write("hello from nginx\n")
        self.shms = {}
        self.proc = None
        self.workers = workers if master else 0
        self.conf_path = os.path.join(self.dir, "nginx.conf")
        self.error_log = os.path.join(self.dir, "logs", "error.log")
        self._conf_args = (workers, main_conf, fmt or {}, load_module, error_level, master)
        self._write_conf(http_conf, *self._conf_args)

    def shm(self, name):
        if name not in self.shms:
            self.shms[name] = "/" + unique("rl-ngxtest-" + name)
        return self.shms[name]

    def _write_conf(self, http_conf, workers, main_conf, fmt, load_module, error_level, master):
        self.http_conf = http_conf
        subst = dict(fmt)
        subst["html"] = self.html
        subst["dir"] = self.dir
        for i, p in enumerate(self.ports):
            subst["port%d" % i] = p
        subst["port"] = self.port
        body = http_conf
        # @shm:NAME@ placeholders: unique segment names per instance unless given in fmt.
        while "@shm:" in body:
            a = body.index("@shm:")
            b = body.index("@", a + 1)
            name = body[a + 5:b]
            body = body[:a] + self.shm(name) + body[b + 1:]
        for k, v in subst.items():
            body = body.replace("@%s@" % k, str(v))
        lm = "load_module %s;\n" % MODULE if load_module else ""
        user = {"nobody": "user nobody nogroup;\n", "root": "user root root;\n"}.get(
            WORKER_USER, "")
        conf = f"""{lm}{user}worker_processes {workers};
master_process {"on" if master else "off"};
daemon on;
error_log {self.error_log} {error_level};
pid {self.dir}/logs/nginx.pid;
{main_conf}
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {self.dir}/tmp_body;
    proxy_temp_path {self.dir}/tmp_proxy;
    fastcgi_temp_path {self.dir}/tmp_fcgi;
    uwsgi_temp_path {self.dir}/tmp_uwsgi;
    scgi_temp_path {self.dir}/tmp_scgi;
    default_type text/plain;
{body}
}}
"""
        with open(self.conf_path, "w") as f:
            f.write(conf)
        # Workers run as nobody (WORKER_USER): they read the html and write nothing here but
        # the logs (the master opens those).
        os.chmod(self.dir, 0o755)

    def rewrite(self, http_conf, fmt=None):
        self._write_conf(http_conf, self.workers, "", fmt or {}, True, "info", True)

    def cmd(self, *args, check=True):
        return subprocess.run([NGINX, "-p", self.dir + "/", "-c", self.conf_path, *args],
                              capture_output=True, text=True, check=check, timeout=30)

    def master_pid(self):
        try:
            with open(os.path.join(self.dir, "logs", "nginx.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def worker_pids(self):
        mp = self.master_pid()
        out = subprocess.run(["ps", "-o", "pid=,ppid=,args=", "-e"], capture_output=True,
                             text=True).stdout
        pids = []
        for line in out.splitlines():
            parts = line.split(None, 2)
            if len(parts) == 3 and int(parts[1]) == mp and "worker process" in parts[2] \
                    and "shutting down" not in parts[2]:
                pids.append(int(parts[0]))
        return sorted(pids)

    def start(self):
        # A free port is free when free_port() returns, not necessarily when nginx binds it
        # (another test's socket, or another instance made before this one started, may take
        # it meanwhile): on EADDRINUSE, new ports and another try; the tests read ngx.port(s)
        # after start().
        for attempt in range(5):
            r = self.cmd(check=False)
            if r.returncode == 0 or "Address already in use" not in r.stderr or attempt == 4:
                break
            self.ports = [free_port() for _ in self.ports]
            self.port = self.ports[0]
            self._write_conf(self.http_conf, *self._conf_args)
        if r.returncode != 0:
            raise AssertionError("nginx did not start: %s\n%s" % (r.stderr, self.log()))
        wait_for(self.master_pid, what="nginx's pid file")
        for p in self.ports:
            wait_for(lambda p=p: self._accepts(p), what="nginx listening on %d" % p)
        try:
            wait_for(lambda: len(self.worker_pids()) >= self.workers, what="nginx's workers")
        except AssertionError as e:
            ps = subprocess.run(["ps", "-o", "pid=,ppid=,user=,args=", "-e"], capture_output=True,
                                text=True).stdout
            raise AssertionError("%s (master %s)\nnginx processes:\n%s\nerror.log:\n%s" % (
                e, self.master_pid(), "\n".join(l for l in ps.splitlines() if "nginx" in l),
                self.log()[-4000:])) from None
        return self

    def _accepts(self, port):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    def reload(self):
        """SIGHUP; returns when the new workers run and the old ones have left (until then an
        old worker may still take a connection with the old configuration)."""
        old = set(self.worker_pids())
        os.kill(self.master_pid(), signal.SIGHUP)
        wait_for(lambda: len(set(self.worker_pids()) - old) >= self.workers,
                 what="new workers after the reload")

        def old_gone():
            for p in old:
                try:
                    os.kill(p, 0)
                    return False
                except ProcessLookupError:
                    pass
            return True
        wait_for(old_gone, timeout=20, what="the old workers to exit")

    def log(self):
        try:
            with open(self.error_log) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        mp = self.master_pid()
        if mp:
            try:
                os.kill(mp, signal.SIGTERM)
            except ProcessLookupError:
                mp = None
        if mp:
            def gone():
                try:
                    os.kill(mp, 0)
                    return False
                except ProcessLookupError:
                    return True
            try:
                wait_for(gone, timeout=10, what="nginx to exit")
            except AssertionError:
                os.kill(mp, signal.SIGKILL)
        for name in self.shms.values():
            try:
                os.unlink("/dev/shm" + name)
            except OSError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()  # __exit__ does not run when __enter__ raises
            raise

    def __exit__(self, *a):
        self.stop()


class Redis:
    """A redis-server of the test's own on a free loopback port, no persistence."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="rl-nginx-redis-")
        self.port = free_port()
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.ping, what="redis-server")
        return self

    def ping(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    @property
    def url(self):
        return "redis://127.0.0.1:%d/0" % self.port

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *a):
        self.stop()
