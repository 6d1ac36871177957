#!/usr/bin/env python3
"""GLOBAL mode at scale: what one Redis does per key report, measured, and the model built on it.

Measures, against a private redis-server (from PATH, a free loopback port, no persistence, a
temporary directory; stopped and removed at exit), the cost of the real sync script
(sync/global.lua) per key reported, as a function of the number of hosts that share a key (the
script reads and rewrites the key's whole hash, one field group per host, and water-fills over
the hosts: O(hosts) per report):

  - for H in --hosts (default 1,4,16,100): --keys keys (default 4,096), each made known to H
    hosts (every host reports every key once), then --rounds rounds in which one host reports
    every key again, in batches of 128 keys per EVALSHA (as sync/global.c sends them), pipelined
    like one sync round; Redis' own time per call (INFO commandstats, usec_per_call) / 128 =
    microseconds of Redis CPU per key report; the bytes of one batch's request and reply (RESP,
    as sent) / 128 = bytes per key report; the hash's memory (MEMORY USAGE);
  - then the model for --model-hosts hosts and --model-keys active keys (default 100 x 100,000)
    at sync interval T, each key in use on k hosts (each measured row): the key reports per
    second (every round for a busy key, every R/3 = 5 s for a quiet one that holds a lease),
    Redis CPU in cores, bytes per sync round per host, the Redis Cluster masters it takes to
    stay under --core-budget of a core per master (GLOBAL keys carry one of 256 hash-tag groups,
    so a cluster of N <= 256 masters spreads them evenly: each master does 1/N of the work), and
    what one such key costs alone (one key lives on one master: a cluster cannot split it).

Standard library only. Usage:

    python3 scale.py [--hosts 1,4,16,100] [--keys 4096] [--rounds 5] [--T-ms 100]
                     [--model-hosts 100] [--model-keys 100000] [--markdown]
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BATCH = 128


def enc(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if not isinstance(a, bytes):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.f = self.s.makefile("rb")
        self.rx = 0

    def _line(self):
        ln = self.f.readline()
        self.rx += len(ln)
        return ln[:-2]

    def read(self):
        ln = self._line()
        t, rest = ln[:1], ln[1:]
        if t in (b"+",):
            return rest
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)
            self.rx += n + 2
            return data[:-2]
        if t == b"*":
            return [self.read() for _ in range(int(rest))]
        raise RuntimeError("unexpected reply %r" % ln)

    def pipeline(self, cmds):
        self.s.sendall(b"".join(cmds))
        return [self.read() for _ in cmds]

    def cmd(self, *args):
        return self.pipeline([enc(*args)])[0]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start_redis():
    d = tempfile.mkdtemp(prefix="rl-scale-")
    port = free_port()
    p = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no", "--dir", d], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            c = Conn(port)
            c.cmd("PING")
            return p, d, port, c
        except OSError:
            time.sleep(0.05)
    p.kill()
    shutil.rmtree(d, ignore_errors=True)
    raise SystemExit("scale.py: redis-server did not answer")


def batch_cmd(sha, keys, host, epoch, seq, T_us, R_us, cs):
    """One EVALSHA of global.lua for `keys`, as sync/global.c builds it (9 arguments per key)."""
    args = ["EVALSHA", sha, len(keys)] + keys + [host, epoch, seq, T_us, R_us]
    for c in cs:
        # incarnation, K, C, Ka, denied delta, requests, window_us, B, ttl_ms
        args += ["%016x" % 1, c + 50, c, c + 50 if c else 0, 0, 1000, 1000000, 1000, 2000]
    return enc(*args)


def measure(c, sha, H, nkeys, rounds, T_us, R_us):
    c.cmd("FLUSHALL")
    keys = ["rl:g:{%02x}:%032x" % (i & 0xff, i * 2654435761 + H) for i in range(nkeys)]
    seq = {}
    # every host reports every key once: the hash holds H hosts
    for h in range(H):
        host = "%016x" % (h + 1)
        cmds = []
        for b in range(0, nkeys, BATCH):
            seq[host] = seq.get(host, 0) + 1
            cmds.append(batch_cmd(sha, keys[b:b + BATCH], host, 1, seq[host], T_us, R_us,
                                  [0] * len(keys[b:b + BATCH])))
        c.pipeline(cmds)
    c.cmd("CONFIG", "RESETSTAT")
    host = "%016x" % 1
    tx = rx = calls = 0
    used = 0
    for r in range(rounds):
        cmds = []
        for b in range(0, nkeys, BATCH):
            seq[host] += 1
            used += 1
            cmds.append(batch_cmd(sha, keys[b:b + BATCH], host, 1, seq[host], T_us, R_us,
                                  [r + 1] * len(keys[b:b + BATCH])))
        tx += sum(len(x) for x in cmds)
        rx0 = c.rx
        c.pipeline(cmds)
        rx += c.rx - rx0
        calls += len(cmds)
    info = c.cmd("INFO", "commandstats").decode()
    usec = None
    for ln in info.splitlines():
        if ln.startswith("cmdstat_evalsha:"):
            kv = dict(x.split("=") for x in ln.split(":", 1)[1].split(","))
            usec = float(kv["usec_per_call"])
    mem = c.cmd("MEMORY", "USAGE", keys[0])
    n = calls * BATCH
    return {"H": H, "us_key": usec / BATCH, "tx_key": tx / n, "rx_key": rx / n, "mem": mem}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hosts", default="1,4,16,100")
    ap.add_argument("--keys", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--T-ms", type=int, default=100)
    ap.add_argument("--model-hosts", type=int, default=100)
    ap.add_argument("--model-keys", type=int, default=100000)
    ap.add_argument("--core-budget", type=float, default=0.5)
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    if not shutil.which("redis-server"):
        print("scale.py: redis-server is not on PATH: skipped", file=sys.stderr)
        return 77
    p, d, port, c = start_redis()
    try:
        lua = open(os.path.join(ROOT, "sync", "global.lua"), "rb").read()
        sha = c.cmd("SCRIPT", "LOAD", lua).decode()
        T_us = a.T_ms * 1000
        # Redis reclaims a host silent for R: far beyond the probe's length, so that every host
        # stays in the hash while the others report (the leader's R is max(3T, 15 s))
        R_us = 3600 * 1000000
        res = []
        for H in [int(x) for x in a.hosts.split(",")]:
            m = measure(c, sha, H, a.keys, a.rounds, T_us, R_us)
            print("scale.py: %3d hosts per key: %.1f us of Redis per key report, %.0f B sent, "
                  "%.0f B received per key, %d B per key in Redis" %
                  (H, m["us_key"], m["tx_key"], m["rx_key"], m["mem"]), file=sys.stderr)
            res.append(m)
        version = c.cmd("INFO", "server").decode().split("redis_version:")[1].split()[0]
    finally:
        p.kill()
        p.wait()
        shutil.rmtree(d, ignore_errors=True)
    md = a.markdown
    print("%sredis-server %s, sync/global.lua, batches of %d keys, %d keys x %d rounds per row" %
          ("- " if md else "", version, BATCH, a.keys, a.rounds))
    if md:
        print("\n| hosts per key | Redis us per key report | bytes sent per key | bytes received "
              "per key | Redis memory per key |\n|--:|--:|--:|--:|--:|")
    for m in res:
        print(("| %d | %.1f | %.0f | %.0f | %d B |" if md else "%4d hosts: %6.1f us %6.0f B %4.0f B %7d B")
              % (m["H"], m["us_key"], m["tx_key"], m["rx_key"], m["mem"]))
    # The model: NK keys in the cluster, each in use on k of the NH hosts (k = a measured row);
    # a host reports a key every round while it is busy (demand >= half the rate: every host
    # with demand reports), every R/3 while it is quiet and holds a lease (liveness).
    NH, NK, T = a.model_hosts, a.model_keys, a.T_ms / 1000.0
    R = max(3 * T, 15.0)
    per_key = 159  # overwritten below by the measured bytes
    print("\n%smodel: %d hosts, %d active GLOBAL keys, each in use on k hosts, T = %d ms, "
          "R/3 = %.0f s; Redis CPU = key reports/s x the measured cost at k hosts; a Redis "
          "Cluster spreads the keys over at most 256 masters (256 hash-tag groups), one key "
          "never spans two" % ("- " if md else "", NH, NK, a.T_ms, R / 3))
    if md:
        print("\n| k hosts per key | keys | key reports/s | Redis CPU, cores | bytes per round per "
              "host | masters at <= %.0f %% of a core | one such key alone, cores |"
              "\n|--:|---|--:|--:|--:|--:|--:|" % (100 * a.core_budget))
    for m in res:
        k = m["H"]
        per_key = m["tx_key"] + m["rx_key"]
        for label, per_s in (("busy", 1 / T), ("quiet", 3 / R)):
            rep = NK * k * per_s
            cores = rep * m["us_key"] / 1e6
            host_keys = NK * k / NH  # keys a host uses
            per_round = host_keys * per_s * T * per_key
            masters = max(1, -(-cores // a.core_budget))
            mtxt = "%d" % masters if masters <= 256 else "> 256 (bends)"
            one = k * per_s * m["us_key"] / 1e6
            row = (k, label, rep, cores, per_round / 1e3, mtxt, one)
            print(("| %d | %s | %.3g | %.2f | %.0f kB | %s | %.4f |" if md else
                   "k=%3d %-5s %10.3g reports/s %9.2f cores %9.0f kB/round/host %-14s one key %.4f cores")
                  % row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
