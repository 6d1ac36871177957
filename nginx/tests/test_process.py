#!/usr/bin/env python3
"""nginx's process model with rl_req: nothing opened by `nginx -t` or the master, segments
opened by the workers after the user switch, counts kept across a reload, a binary upgrade and a
worker killed with SIGKILL (under load), and the segment's owner and mode."""

import os
import pwd
import signal
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ngxharness import WORKER_USER, WORKER_USER_WHY, Nginx, get, unique, wait_for  # noqa: E402

CONF = """
    rl_req_zone $binary_remote_addr zone=z:1m rate=1r/m shm=@shm:z@ @extra@;
    server { listen 127.0.0.1:@port@;
        location / { rl_req zone=z burst=@burst@ nodelay; root @html@; } }
"""


def maps(pid):
    try:
        with open("/proc/%d/maps" % pid) as f:
            return f.read()
    except OSError:
        return ""


class Load:
    """Threads sending requests until stopped; counts answers by status (0: no answer)."""

    def __init__(self, port, threads=4):
        self.port = port
        self.counts = {}
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        self.ts = [threading.Thread(target=self.run) for _ in range(threads)]

    def run(self):
        while not self.stop_flag.is_set():
            try:
                s = get(self.port, "/index.html", timeout=5).status
            except OSError:
                s = 0
            with self.lock:
                self.counts[s] = self.counts.get(s, 0) + 1

    def __enter__(self):
        for t in self.ts:
            t.start()
        return self

    def total(self):
        with self.lock:
            return sum(self.counts.values())

    def __exit__(self, *a):
        self.stop_flag.set()
        for t in self.ts:
            t.join()


class ProcessModel(unittest.TestCase):
    def test_config_test_creates_nothing(self):
        ngx = Nginx(CONF, fmt={"burst": 1, "extra": ""})
        try:
            seg = "/dev/shm" + ngx.shm("z")
            r = ngx.cmd("-t")
            self.assertIn("test is successful", r.stderr)
            self.assertFalse(os.path.exists(seg), "nginx -t created " + seg)
            self.assertNotIn(" rl: ", ngx.log())  # rl logged nothing: it was not called
            ngx.start()
            # The master maps nothing of rl; every worker maps the segment, created as the
            # configured user (nobody) with the default mode 0600.
            self.assertNotIn(ngx.shm("z"), maps(ngx.master_pid()))
            wait_for(lambda: os.path.exists(seg), what="the workers' segment")
            for w in ngx.worker_pids():
                wait_for(lambda w=w: ngx.shm("z") in maps(w), what="worker %d's mapping" % w)
            # rl's own log reaches nginx's error_log.
            wait_for(lambda: "rl: segment %s: " % ngx.shm("z") in ngx.log(), what="rl's log")
            st = os.stat(seg)
            if WORKER_USER:
                self.assertEqual(pwd.getpwuid(st.st_uid).pw_name, WORKER_USER)
            self.assertEqual(st.st_mode & 0o777, 0o600)
        finally:
            ngx.stop()

    def test_two_instances_share_or_keep_apart(self):
        shared = "/" + unique("rl-ngxtest-shared")
        conf = CONF.replace("shm=@shm:z@", "shm=@seg@")
        a = Nginx(conf, fmt={"burst": 2, "extra": "", "seg": shared})
        b = Nginx(conf, fmt={"burst": 2, "extra": "", "seg": shared})
        c = Nginx(CONF, fmt={"burst": 2, "extra": ""})
        try:
            for n in (a, b, c):
                n.start()
            # a and b name one segment: one counter per key across both instances.
            self.assertEqual([get(a.port, "/index.html").status for _ in range(2)], [200, 200])
            self.assertEqual([get(b.port, "/index.html").status for _ in range(2)], [200, 503])
            # c has a segment of its own: its own counts.
            self.assertEqual([get(c.port, "/index.html").status for _ in range(4)],
                             [200, 200, 200, 503])
        finally:
            for n in (a, b, c):
                n.stop()
            try:
                os.unlink("/dev/shm" + shared)
            except OSError:
                pass

    def test_segment_mode(self):
        with Nginx(CONF, fmt={"burst": 1, "extra": "shm_mode=0660"}) as ngx:
            self.assertEqual(get(ngx.port, "/index.html").status, 200)
            st = os.stat("/dev/shm" + ngx.shm("z"))
            self.assertEqual(st.st_mode & 0o777, 0o660)

    @unittest.skipUnless(os.geteuid() == 0 and os.environ.get("RL_TEST_RLCTL"),
                         "needs root (to run rlctl as another user) and RL_TEST_RLCTL")
    @unittest.skipIf(WORKER_USER == "root", WORKER_USER_WHY)
    def test_rlctl_of_another_user_attaches_with_group_mode(self):
        # Workers run as nobody:nogroup. rlctl run as uid daemon in group nogroup attaches a
        # segment with shm_mode=0660 and sees nginx's keys; with the default 0600 it cannot.
        rlctl = os.environ["RL_TEST_RLCTL"]
        conf = CONF.replace("$binary_remote_addr", "$arg_k")
        as_daemon = ["setpriv", "--reuid=daemon", "--regid=nogroup", "--clear-groups", rlctl]
        with Nginx(conf, fmt={"burst": 1, "extra": "shm_mode=0660"}) as ngx:
            self.assertEqual(get(ngx.port, "/index.html?k=hello-operator").status, 200)
            r = subprocess.run(as_daemon + ["--shm", ngx.shm("z"), "--foreign", "keys"],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("hello-operator", r.stdout)
        with Nginx(conf, fmt={"burst": 1, "extra": ""}) as ngx:
            self.assertEqual(get(ngx.port, "/index.html?k=hello-operator").status, 200)
            r = subprocess.run(as_daemon + ["--shm", ngx.shm("z"), "--foreign", "keys"],
                               capture_output=True, text=True, timeout=30)
            self.assertNotEqual(r.returncode, 0, r.stdout)

    def test_helper_processes_open_nothing(self):
        # A proxy cache starts a cache manager and a cache loader: they open no segment.
        http = CONF.replace("rl_req_zone", "proxy_cache_path @dir@/cache keys_zone=c:1m;\n"
                            "    rl_req_zone")
        with Nginx(http, fmt={"burst": 1, "extra": ""}) as ngx:
            def helpers():
                out = subprocess.run(["ps", "-o", "pid=,ppid=,args=", "-e"],
                                     capture_output=True, text=True).stdout
                return [int(ln.split()[0]) for ln in out.splitlines()
                        if "cache manager" in ln and int(ln.split()[1]) == ngx.master_pid()]
            pids = wait_for(helpers, what="the cache manager")
            self.assertEqual(get(ngx.port, "/index.html").status, 200)
            for p in pids:
                self.assertNotIn(ngx.shm("z"), maps(p))
            for w in ngx.worker_pids():
                self.assertIn(ngx.shm("z"), maps(w))

    def test_reload_keeps_counts_under_load(self):
        # 1 r/m with burst 4: 5 requests in a minute at most, however many workers come and go.
        with Nginx(CONF, workers=2, fmt={"burst": 4, "extra": ""}) as ngx:
            t0 = time.monotonic()
            with Load(ngx.port) as load:
                wait_for(lambda: load.total() > 50, what="load before the reload")
                for _ in range(3):
                    n = load.total()
                    ngx.reload()
                    wait_for(lambda n=n: load.total() > n + 50, what="load after the reload")
            elapsed = time.monotonic() - t0
            counts = dict(load.counts)
            allowed = counts.get(200, 0)
            self.assertGreater(counts.get(503, 0), 100, counts)
            self.assertLessEqual(allowed, 5 + int(elapsed / 60) + 1, counts)
            self.assertGreaterEqual(allowed, 5, counts)
            self.assertEqual(set(counts) - {200, 503, 0}, set(), counts)

    def test_changed_rate_on_reload_starts_fresh(self):
        with Nginx(CONF, fmt={"burst": 1, "extra": ""}) as ngx:
            self.assertEqual([get(ngx.port, "/index.html").status for _ in range(3)],
                             [200, 200, 503])
            ngx.reload()  # same configuration: the counts stay
            self.assertEqual(get(ngx.port, "/index.html").status, 503)
            ngx.rewrite(CONF.replace("rate=1r/m", "rate=2r/m"), fmt={"burst": 1, "extra": ""})
            ngx.reload()  # another rate: another counter (docs/nginx.md)
            self.assertEqual([get(ngx.port, "/index.html").status for _ in range(3)],
                             [200, 200, 503])

    def test_zone_size_change_on_reload_keeps_the_segment(self):
        # The segment keeps the capacity it was created with (docs/nginx.md): 32k holds 512
        # keys, and still does after a reload that asks for 1m.
        conf = CONF.replace("$binary_remote_addr", "$arg_k")
        small = conf.replace("zone=z:1m", "zone=z:32k")
        with Nginx(small, fmt={"burst": 1, "extra": ""}) as ngx:
            for i in range(512):
                self.assertEqual(get(ngx.port, "/index.html?k=%d" % i).status, 200)
            ngx.rewrite(conf, fmt={"burst": 1, "extra": ""})
            ngx.reload()
            # (the table has 12.5 % more slots than the capacity it guarantees: 577 here)
            codes = [get(ngx.port, "/index.html?k=new%d" % i).status for i in range(150)]
            self.assertEqual(codes[:60], [200] * 60)
            self.assertIn(503, codes)
            self.assertIn("is full", ngx.log())

    def test_single_process_mode(self):
        # master_process off: the one process opens the segments itself.
        with Nginx(CONF, fmt={"burst": 1, "extra": ""}, master=False) as ngx:
            self.assertEqual([get(ngx.port, "/index.html").status for _ in range(3)],
                             [200, 200, 503])
            self.assertIn(ngx.shm("z"), maps(ngx.master_pid()))

    def test_worker_killed_under_load(self):
        with Nginx(CONF, workers=2, fmt={"burst": 4, "extra": ""}) as ngx:
            t0 = time.monotonic()
            with Load(ngx.port) as load:
                wait_for(lambda: load.total() > 50, what="load")
                for _ in range(2):
                    before = ngx.worker_pids()
                    os.kill(before[0], signal.SIGKILL)
                    wait_for(lambda: len(ngx.worker_pids()) == 2 and
                             ngx.worker_pids() != before, what="a replacement worker")
                    n = load.total()
                    wait_for(lambda n=n: load.total() > n + 50, what="load after the kill")
            elapsed = time.monotonic() - t0
            counts = dict(load.counts)
            self.assertLessEqual(counts.get(200, 0), 5 + int(elapsed / 60) + 1, counts)
            self.assertGreater(counts.get(503, 0), 100, counts)
            self.assertIn("exited on signal 9", ngx.log())
            # The replacement workers decide: a request now is refused, not admitted afresh.
            self.assertEqual(get(ngx.port, "/index.html").status, 503)

    def test_binary_upgrade_keeps_counts(self):
        with Nginx(CONF, fmt={"burst": 2, "extra": ""}) as ngx:
            self.assertEqual([get(ngx.port, "/index.html").status for _ in range(4)],
                             [200, 200, 200, 503])
            old = ngx.master_pid()
            os.kill(old, signal.SIGUSR2)  # start a new binary next to the old
            oldbin = os.path.join(ngx.dir, "logs", "nginx.pid.oldbin")
            wait_for(lambda: os.path.exists(oldbin) and ngx.master_pid() not in (None, old),
                     what="the new master")
            new = ngx.master_pid()
            os.kill(old, signal.SIGQUIT)  # the old one leaves; the new one serves alone

            def old_gone():
                try:
                    os.kill(old, 0)
                    return False
                except ProcessLookupError:
                    return True
            wait_for(old_gone, what="the old master to exit")
            wait_for(lambda: ngx.worker_pids(), what="the new master's workers")
            self.assertEqual(ngx.master_pid(), new)
            self.assertEqual(get(ngx.port, "/index.html").status, 503)


if __name__ == "__main__":
    unittest.main(verbosity=2)
