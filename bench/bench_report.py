#!/usr/bin/env python3
"""scripts/bench's report: one Markdown summary of every benchmark row, from the reports of one run.

Called by scripts/bench (not by hand) with the Markdown reports of `rl-bench --redis --markdown`
and `rl-global --markdown`, and the HTTP measurements scripts/bench took (one line per rl-load
run: mode, round, the server's /rate-limits/health counters and its workers' CPU ticks before
and after, rl-load's --json). It prints to stdout: the summary (every row, the ratios, the
targets, the HTTP row, memory per key, the accuracy table), then both reports as they are; and
writes the plot's data (one row per bar group) to --dat for bench/bench.gp. Nothing here
measures: a row a bench did not print is shown as "n/a".
"""
import argparse
import json
import re
import statistics
import sys


def ns_of(text):
    """'61 ns', '58.2 us', '3.77 ms' -> nanoseconds (None when it is none of them)."""
    m = re.fullmatch(r"\s*([0-9.]+)\s*(ns|us|ms|s)\s*", text or "")
    if not m:
        return None
    return float(m.group(1)) * {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[m.group(2)]


def rate_of(text):
    """'25.95 M' or '17196' -> checks per second."""
    m = re.fullmatch(r"\s*([0-9.]+)\s*([kM]?)\s*", text or "")
    if not m:
        return None
    return float(m.group(1)) * {"": 1, "k": 1e3, "M": 1e6}[m.group(2)]


def tables(text):
    """Every Markdown table row of text as a list of stripped cells (header rows included)."""
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and not re.match(r"^\|[-:| ]+\|$", line):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def item(text, key):
    """The value of the report line '- key:  value' (None when there is none)."""
    m = re.search(r"^- " + re.escape(key) + r":\s+(.*)$", text, re.M)
    return m.group(1) if m else None


def section(text, start, end):
    """The lines of text from the one starting with start up to the one starting with end."""
    out, inside = [], False
    for line in text.splitlines():
        if line.startswith(start):
            inside = True
        elif inside and end and line.startswith(end):
            break
        if inside:
            out.append(line)
    return "\n".join(out).strip()


def fmt_rate(v):
    if v is None:
        return "n/a"
    if v >= 1e6:
        return f"{v / 1e6:.2f} M"
    if v >= 1e4:
        return f"{v:,.0f}"
    return f"{v:,.1f}"


def fmt_ns(v):
    if v is None:
        return "n/a"
    if v < 1000:
        return f"{v:.0f} ns" if v >= 10 else f"{v:.1f} ns"
    if v < 1e6:
        return f"{v / 1e3:.1f} us"
    return f"{v / 1e6:.2f} ms"


def fmt_x(v):
    return "n/a" if v is None else f"{v:,.0f} x" if v >= 10 else f"{v:.2f} x"


def pct(v):
    return "n/a" if v is None else f"{v:.2f} %"


def div(a, b):
    return a / b if a is not None and b else None


class Row:
    """One line of the summary: a measured thing and where it comes from."""

    def __init__(self, key, what, source, rate=None, mean=None, p99=None, per=None, plot=None):
        self.key, self.what, self.source = key, what, source
        self.rate, self.mean, self.p99 = rate, mean, p99
        self.per = per if per is not None else (1e9 / rate if rate else None)
        self.plot = plot  # the plot's label, None: not plotted


def rl_bench_rows(text):
    rows = {}
    for c in tables(text):
        if len(c) >= 4 and re.fullmatch(r"\([a-g]'?\)", c[0]):
            label = c[0] + " " + c[1]
            rows[label] = (float(c[2]) if re.fullmatch(r"[0-9.]+", c[2]) else None, rate_of(c[3]))
    return rows


def find(rows, prefix):
    for k, v in rows.items():
        if k.startswith(prefix):
            return v
    return (None, None)


def redis_rows(text):
    """rl-bench --redis: {(keys, what-prefix): (checks/s, mean ns, p99 ns)}."""
    out = {}
    for c in tables(text):
        if len(c) == 6 and c[0] in ("1", "10,000", "-") and c[1] != "what":
            out[(c[0], c[1])] = (rate_of(c[2]), ns_of(c[3]), ns_of(c[4]))
    return out


def rget(rows, keys, prefix):
    for (k, w), v in rows.items():
        if k == keys and w.startswith(prefix):
            return v
    return (None, None, None)


def global_rows(text):
    """rl-global section 4: {(mode, threads): (checks/s, mean ns, p99 ns)}; section 2: hot."""
    x, hot = {}, {}
    for c in tables(text):
        if len(c) == 7 and c[0] in ("GLOBAL", "STRICT") and c[1].isdigit():
            x[(c[0], int(c[1]))] = (rate_of(c[2]), ns_of(c[3]), ns_of(c[4]))
        if len(c) == 7 and re.match(r"(LOCAL|GLOBAL) rl_acquire, 1 hot key", c[0]):
            hot[c[0].split()[0]] = float(c[1])
    return x, hot


def http_runs(path, clk_tck):
    """scripts/bench's HTTP lines -> {mode: [run, ...]}, run a dict of the derived numbers."""
    runs = {"on": [], "off": []}
    for line in open(path, encoding="utf-8"):
        f = line.split(maxsplit=10)
        if len(f) < 11:
            continue
        mode, rnd = f[0], int(f[1])
        r0, n0, h0, t0, r1, n1, h1, t1 = map(int, f[2:10])
        load = json.loads(f[10])
        dreq = max(r1 - r0, 1)
        cpu_ns = (t1 - t0) * 1e9 / clk_tck / dreq
        lim_ns = (n1 - n0) / dreq
        runs[mode].append(
            {
                "round": rnd,
                "rps": load["throughput_rps"],
                "avg_ns": load["avg_latency_ms"] * 1e6,
                "p99_ns": load["p99_latency_ms"] * 1e6,
                "allowed": load["allowed"],
                "denied": load["denied"],
                "errors": load["errors"],
                "total": load["total"],
                "requests": dreq,
                "cpu_ns": cpu_ns,
                "lim_ns": lim_ns,
                "hdr_ns": (h1 - h0) / dreq,
                "share": lim_ns / cpu_ns * 100 if cpu_ns > 0 else None,
            }
        )
    return runs


def med(runs, key):
    v = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(v) if v else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rl-bench", required=True)
    ap.add_argument("--rl-global", required=True)
    ap.add_argument("--http", required=True)
    ap.add_argument("--http-n", type=int, required=True)
    ap.add_argument("--http-c", type=int, required=True)
    ap.add_argument("--clk-tck", type=int, default=100)
    ap.add_argument("--demo-log", required=True)
    ap.add_argument("--command", required=True)
    ap.add_argument("--seconds", type=int, default=0)
    ap.add_argument("--dat", required=True)
    a = ap.parse_args()

    rb = open(a.rl_bench, encoding="utf-8").read()
    rg = open(a.rl_global, encoding="utf-8").read()
    demo_log = open(a.demo_log, encoding="utf-8").read()
    lb = rl_bench_rows(rb)
    rr = redis_rows(rb)
    gx, hot = global_rows(rg)
    http = http_runs(a.http, a.clk_tck)

    floor_ns, floor_rate = find(lb, "(a) ")
    b_ns, b_rate = find(lb, "(b) ")
    f_ns, f_rate = find(lb, "(f) ")
    local = rget(rr, "1", "LOCAL rl_acquire, 1 key")
    s1 = rget(rr, "1", "STRICT rl_acquire, 1 key, concurrency 1")
    s32 = rget(rr, "1", "STRICT rl_acquire, 1 key, concurrency 32")
    pipe = rget(rr, "1", "EVALSHA pipelined")
    g1 = gx.get(("GLOBAL", 1), (None, None, None))
    g32 = gx.get(("GLOBAL", 32), (None, None, None))
    gs1 = gx.get(("STRICT", 1), (None, None, None))
    gs32 = gx.get(("STRICT", 32), (None, None, None))
    seed = (221.2, 23.5e6, 87.3e6)
    on, off = http["on"], http["off"]
    h_on = (med(on, "rps"), med(on, "avg_ns"), med(on, "p99_ns"))
    h_off = (med(off, "rps"), med(off, "avg_ns"), med(off, "p99_ns"))

    rows = [
        Row("floor", "bare hardware floor: one clock read + one CAS on a shared word (a)",
            "rl-bench (a)", floor_rate, floor_ns, None, floor_ns, "bare floor"),
        Row("local", "LOCAL rl_acquire, 1 key, 1 thread", "rl-bench --redis",
            local[0], local[1], local[2], None, "LOCAL"),
        Row("local-b", "LOCAL rl_acquire, 1 hot key (b), median of 5 runs", "rl-bench (b)",
            b_rate, b_ns, None, b_ns),
        Row("check", "LOCAL rl_check, the seed's */api/* rule, 3 layers (f)", "rl-bench (f)",
            f_rate, f_ns, None, f_ns, "LOCAL rl_check"),
        Row("global", "GLOBAL rl_acquire, 1 key, 1 thread, sync thread + Redis running",
            "rl-global 4.", g1[0], g1[1], g1[2], None, "GLOBAL"),
        Row("global-hot", "GLOBAL rl_acquire, 1 hot key, median of 5 runs", "rl-global 2.",
            div(1e9, hot.get("GLOBAL")), hot.get("GLOBAL"), None, hot.get("GLOBAL")),
        Row("global32", "GLOBAL rl_acquire, 1 key, 32 threads (total)", "rl-global 4.",
            g32[0], g32[1], g32[2]),
        Row("strict1", "STRICT (pure Redis, 1 Lua script per check), concurrency 1",
            "rl-bench --redis", s1[0], s1[1], s1[2], None, "STRICT c1"),
        Row("strict1g", "STRICT, concurrency 1 (rl-global's pair for GLOBAL / STRICT)",
            "rl-global 4.", gs1[0], gs1[1], gs1[2]),
        Row("strict32", "STRICT, concurrency 32 (total)", "rl-bench --redis",
            s32[0], s32[1], s32[2], None, "STRICT c32"),
        Row("strict32g", "STRICT, concurrency 32 (rl-global's pair)", "rl-global 4.",
            gs32[0], gs32[1], gs32[2]),
        Row("pipe", "EVALSHA pipelined x64, 1 connection (latency: one round trip of 64)",
            "rl-bench --redis", pipe[0], pipe[1], pipe[2], None, "pipelined x64"),
        Row("http-on", f"HTTP: rl-demo with rl (2 workers, {a.http_c} connections)",
            "scripts/bench", *h_on, None, "HTTP + rl"),
        Row("http-off", "HTTP: rl-demo --no-limiter (same routes, no rl)", "scripts/bench",
            *h_off, None, "HTTP, no rl"),
        Row("seed", "the seed's published load test (NOT measured here)", "seed document",
            *seed, None, "seed (published)"),
    ]
    R = {r.key: r for r in rows}

    machine = item(rb, "machine") or item(rg, "machine") or "unknown"
    compiler = item(rb, "compiler") or "unknown"
    load = item(rb, "load") or "unknown"
    server = item(rg, "server") or item(rb, "server") or "unknown"
    title = re.search(r"^#### rl-bench, (.*)$", rb, re.M)

    p = print
    p("# Benchmark results (generated by scripts/bench)")
    p()
    p(f"- command:  `{a.command}` ({a.seconds} s; the full reports of both benches follow the summary)")
    p(f"- run:      {title.group(1) if title else 'unknown'}")
    p(f"- machine:  {machine}")
    p(f"- load:     {load}")
    p(f"- compiler: {compiler}")
    p(f"- redis:    {server}")
    p()
    p("## Every row")
    p()
    p("Per check: the mean latency of one call as its caller sees it, and the cost per check,")
    p("1 s / throughput (for a concurrent row the two differ: the callers wait in a queue).")
    p("Sources: `rl-bench --redis` and `rl-global`, the C benches of bench/ (their reports below);")
    p("the HTTP rows are scripts/bench's own (below). The seed's row is its published example, not")
    p("measured here.")
    p()
    p("| row | source | checks/s | latency mean | latency p99 | 1 s / throughput | x STRICT c1 |")
    p("|---|---|--:|--:|--:|--:|--:|")
    s1rate = R["strict1"].rate
    for r in rows:
        x = div(r.rate, s1rate)
        p(f"| {r.what} | {r.source} | {fmt_rate(r.rate)} | {fmt_ns(r.mean)} | {fmt_ns(r.p99)} "
          f"| {fmt_ns(r.per)} | {fmt_x(x)} |")
    p()

    # Ratios and targets.
    g_over_s = div(g1[0], gs1[0])
    l_over_s = div(local[0], s1[0])
    share = med(on, "share")
    thr_loss = (1 - h_on[0] / h_off[0]) * 100 if h_on[0] and h_off[0] else None
    lim_ns = med(on, "lim_ns")
    timer_ns = med(off, "lim_ns")
    cpu_on = med(on, "cpu_ns")
    cpu_off = med(off, "cpu_ns")

    def verdict(ok):
        return "n/a" if ok is None else ("**met**" if ok else "**missed**")

    p("## Ratios and targets")
    p()
    p("| ratio / target | value | target | result |")
    p("|---|--:|---|---|")
    p(f"| GLOBAL / STRICT, concurrency 1, checks/s (rl-global 4., one run, adjacent rows) "
      f"| {fmt_x(g_over_s)} | >= 1,000 x | {verdict(None if g_over_s is None else g_over_s >= 1000)} |")
    p(f"| GLOBAL p99, 1 thread | {fmt_ns(g1[2])} | <= 1 us | "
      f"{verdict(None if g1[2] is None else g1[2] <= 1000)} |")
    p(f"| LOCAL / STRICT c1 (rl-bench --redis) | {fmt_x(l_over_s)} | - | - |")
    p(f"| GLOBAL / STRICT, 32 threads each (rl-global 4.) | {fmt_x(div(g32[0], gs32[0]))} | - | - |")
    p(f"| LOCAL / STRICT c32 (rl-bench --redis) | {fmt_x(div(local[0], s32[0]))} | - | - |")
    p(f"| LOCAL / EVALSHA pipelined x64 | {fmt_x(div(local[0], pipe[0]))} | - | - |")
    p(f"| GLOBAL hot path / LOCAL hot path, ns (rl-global 2.) "
      f"| {fmt_x(div(hot.get('GLOBAL'), hot.get('LOCAL')))} | <= 1.10 x | "
      f"{verdict(None if not hot.get('LOCAL') else hot['GLOBAL'] / hot['LOCAL'] <= 1.10)} |")
    p(f"| GLOBAL checks/s / the seed's 221.2 req/s | {fmt_x(div(g1[0], seed[0]))} | - | - |")
    p(f"| HTTP with rl, req/s / the seed's 221.2 req/s (both whole HTTP requests) "
      f"| {fmt_x(div(h_on[0], seed[0]))} | - | - |")
    p(f"| the seed's 23.5 ms mean / HTTP with rl, mean latency "
      f"| {fmt_x(div(seed[1], h_on[1]))} | - | - |")
    p(f"| HTTP: rl's share of the server's CPU time per request (measured inside the workers) "
      f"| {pct(share)} | < 1 % | "
      f"{verdict(None if share is None else share < 1)} |")
    p(f"| HTTP: throughput lost with rl (1 - with / without, medians) "
      f"| {'n/a' if thr_loss is None else f'{thr_loss:.1f} %'} | - | - |")
    p()

    # HTTP.
    p("## HTTP: rl-demo with and without the limiter")
    p()
    p(f"tools/rl-demo, 2 worker processes, its segment loaded with bench/http-rules.yaml (the seed's")
    p(f"`*/api/*` rule: 3 layers, limits raised so that nothing is denied), LOCAL (no REDIS_URL); and")
    p(f"`rl-demo --no-limiter` (the same routes, no rl_client_ip, rl_check or X-RateLimit headers).")
    p(f"Both run at once on free loopback ports; tools/rl-load sends `GET /api/users` (X-Forwarded-For")
    p(f"192.0.2.1, X-User user-one) over {a.http_c} keep-alive connections, {a.http_n:,} requests per run,")
    p(f"after a 2,000-request warm-up; the runs alternate (with, without; then without, with; ...).")
    p(f"Client, server and everything else share the machine's CPUs. Per run, from the server:")
    p(f"*in rl* is the time the workers measured around rl_client_ip + rl_check and (*of it headers*)")
    p(f"around rl_format_headers with the headers' MHD_add_response_header calls (CLOCK_MONOTONIC,")
    p(f"summed in a shared page, read from /rate-limits/health before and after the run; with")
    p(f"--no-limiter the same clock reads around nothing: the timer's own cost). A thread preempted")
    p(f"inside a timed region counts the wait too, so *in rl* is an upper bound. *CPU* is the")
    p(f"workers' utime + stime (/proc, clock ticks of 1/{a.clk_tck} s) over the requests;")
    p(f"*share* = in rl / CPU.")
    p()
    p("| limiter | run | req/s | latency mean | latency p99 | allowed | denied | errors | in rl per request | of it headers | server CPU per request | share |")
    p("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for mode, runs in (("on", on), ("off", off)):
        for r in sorted(runs, key=lambda r: r["round"]):
            p(f"| {'rl' if mode == 'on' else '--no-limiter'} | {r['round']} | {r['rps']:,.0f} "
              f"| {fmt_ns(r['avg_ns'])} | {fmt_ns(r['p99_ns'])} | {r['allowed']:,} | {r['denied']:,} "
              f"| {r['errors']:,} | {fmt_ns(r['lim_ns'])} | {fmt_ns(r['hdr_ns'])} | {fmt_ns(r['cpu_ns'])} "
              f"| {pct(r['share'])} |")
    p()
    p(f"Medians: with rl {fmt_rate(h_on[0])} req/s, {fmt_ns(h_on[1])} mean; without "
      f"{fmt_rate(h_off[0])} req/s, {fmt_ns(h_off[1])} mean. In rl {fmt_ns(lim_ns)} per request, "
      f"{fmt_ns(med(on, 'hdr_ns'))} of it on the headers "
      f"(the timer alone: {fmt_ns(timer_ns)}) of {fmt_ns(cpu_on)} of server CPU "
      f"({fmt_ns(cpu_off)} without rl): "
      f"{pct(share)}.")
    lines = [l for l in demo_log.splitlines() if "per request in rl" in l]
    if lines:
        p()
        p("The servers' own totals when they stopped (warm-up and health requests included):")
        p()
        for l in lines:
            p(f"    {l}")
    p()

    # Memory.
    seg = item(rb, "segment")
    mem = item(rb, "memory")
    p("## Memory per key")
    p()
    p(f"- rl (shared memory): {seg or 'n/a'} (segment bytes / capacity: every slot is one 64-byte")
    p("  cache line, 1.125 slots per key of capacity, plus the header and the limit table). The")
    p("  segment lives in /dev/shm, so it is the same bytes whatever the number of processes; the")
    p("  RSS of a process is not a useful measure of it (every process that touched a page counts")
    p("  it again, and a process that touched few pages counts few).")
    p(f"- Redis, STRICT: {mem or 'n/a'}")
    p()

    # Accuracy.
    p("## Accuracy of GLOBAL mode (rl-global 1.)")
    p()
    acc = section(rg, "##### 1. Accuracy", "##### 2.")
    p(re.sub(r"^##### ", "### ", acc, flags=re.M) if acc else "n/a (rl-global printed no accuracy table)")
    p()

    p("## rl-bench --redis --markdown, the whole report")
    p()
    p(rb.strip())
    p()
    p("## rl-global --markdown, the whole report")
    p()
    p(rg.strip())

    with open(a.dat, "w", encoding="utf-8") as f:
        f.write("# label  mean_latency_ns  ns_per_check(1s/throughput)\n")
        for r in rows:
            if r.plot:
                f.write(f'"{r.plot}" {r.mean if r.mean else "NaN"} {r.per if r.per else "NaN"}\n')
    return 0


if __name__ == "__main__":
    sys.exit(main())
