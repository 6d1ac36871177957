#!/usr/bin/env python3
"""Discrete-event simulation of rl's GLOBAL mode (docs/design.md section 10).

One cluster-wide token bucket (rate r, burst B) lives in "Redis" (exact, Redis' own clock).
N hosts decide locally: a request is admitted iff the host's ceiling has a unit left
(consumed + 1 <= ceiling); nothing waits.  Each host's leader syncs every T (random phase,
RTT uniform 0.2-1 ms; the script runs at send + RTT/2, the reply lands at send + RTT).

Designs (see DESIGNS below):
  A  plain lease: lease = bucket tokens / N, debited
  B  design.md: pre-debited lease = water filling of the *bucket* over H x EWMA demand x T
  C  B + early sync when the lease runs out / falls below a low-water mark (<= once per X)
  D  pool water filling: targets are max-min shares of the *pool* (bucket + outstanding
     leases) over need = H x max(EWMA rate x T, decayed peak per interval); the spare pool is
     leased out in proportion to need (an idle host's need decays to 0); reserve for hosts
     below their share; early sync.
Protocol variants (how a sync hands back the old lease):
  exact  at send the host lowers its ceiling to consumed + keep (a tiny in-flight reserve)
         and hands back the rest; reply: ceiling += lease.  No unit is ever used twice.
  cs     host reports unused = ceiling - consumed_at_send, keeps admitting; reply sets
         ceiling = consumed_at_send + lease  (design.md text "consumed + lease")
  cnow   as cs but reply sets ceiling = consumed_now + lease (a tempting bug)
Cap variants: pool (bucket refills only to B - sum of outstanding leases) or bucket (to B).

Metrics (all against an exact reference bucket fed with the merged arrivals):
  over_run   max(0, admitted - ref admitted) over the whole run from t=0 (both start full)
  over_win   max over 1 s windows (100 ms steps, after warm-up) of
             (admitted in window - (ref tokens at window start + r x 1 s)) / that allowance
  conf_run / conf_win   conformance: units a bucket (r, B) fed with the *admitted* stream
             would have rejected (whole run / worst 1 s window), in % of the allowance
  util       admitted / min(demand, ref admitted), measured after warm-up
Deterministic: every random stream is seeded from (seed, host, purpose).

Usage:  python3 sim.py main   [--seeds 3] [--jobs 2]     -> tables (markdown) on stdout
        python3 sim.py sweep  [--seeds 3]                 -> D/C parameter sweeps at T=100 ms
        python3 sim.py coldstart                          -> cold-start experiment
        python3 sim.py bugs                               -> protocol / cap variants
        python3 sim.py one DESIGN PATTERN T_ms [seed]     -> one run, all metrics
"""
import bisect
import heapq
import math
import random
import sys
from dataclasses import dataclass, replace

RTT_MIN, RTT_MAX = 0.0002, 0.001
WARM, RUN = 5.0, 60.0


@dataclass(frozen=True)
class Design:
    name: str
    kind: str = 'A'            # 'A' plain, 'B' bucket water filling, 'D' pool water filling
    H: float = 2.0             # headroom on need
    tau_T: float = 3.0         # EWMA time constant, in intervals T
    peak_tau: float = 0.0      # s; >0: need also covers the decayed peak per interval
    early: bool = False        # early sync when the lease runs out / below low water
    lw: float = 0.0            # low-water mark, fraction of the last lease
    X: float = 0.005           # minimum spacing of early syncs (s)
    spare: float = 0.0         # fraction of the spare pool leased out (in proportion to need)
    reserve: bool = False      # keep in the bucket what hosts below their share still lack
    hint: bool = False         # early sync only if the last reply was not bucket-bound
    demand_admitted: bool = False  # report admitted units as demand (instead of attempts)
    coldwait: bool = False     # a new slot's first requests wait for its first sync (1 RTT)
    newfair: bool = False      # a host's first sync for a key asks as much as the busiest
    est: bool = True           # D: others' holdings estimated as O - rate x age (else O)
    protocol: str = 'exact'    # exact | cs | cnow
    cap: str = 'pool'          # pool | bucket
    grant: int = 0             # cold start: unaccounted initial ceiling of a new slot
    min_need: float = 1.0      # need floor for a host with any demand (units)


DESIGNS = {
    'A': Design('A', kind='A'),
    'B': Design('B', kind='B', H=2.0, tau_T=3.0),
    'C': Design('C', kind='B', H=2.0, tau_T=3.0, early=True, lw=0.0, X=0.005),
    'D': Design('D', kind='D', H=2.0, tau_T=3.0, peak_tau=2.0, early=True, lw=0.0,
                spare=0.0, reserve=True, est=False, X=0.010, newfair=True),
}


# ---------------------------------------------------------------- arrival patterns

def poisson(rng, lam, t0, t1):
    out = []
    if lam <= 0:
        return out
    t = t0 + rng.expovariate(lam)
    while t < t1:
        out.append(t)
        t += rng.expovariate(lam)
    return out


def pattern(name, seed, r=1000.0):
    """-> dict(arrivals=[(t, host)], n, life={host: (start, stop, crash)}, r, B, end,
    resets=[(t, host)], keys=...)"""
    end = WARM + RUN
    B = 1000.0
    life = {h: (0.0, end, False) for h in range(4)}
    rates = {}
    arr = []
    resets = []
    if name == 'uniform15':
        rates = {h: 1.5 * r / 4 for h in range(4)}
    elif name == 'uniform10':
        rates = {h: 1.0 * r / 4 for h in range(4)}
    elif name == 'below':
        rates = {h: 0.5 * r / 4 for h in range(4)}
    elif name == 'skewed':
        rates = {0: 0.80 * 1.5 * r, 1: 0.05 * 1.5 * r, 2: 0.05 * 1.5 * r, 3: 0.05 * 1.5 * r}
    elif name in ('joinleave', 'joinidle'):
        rates = {h: 1.5 * r / 4 for h in range(4)}
        life[3] = (20.0, end, False)
        life[0] = (0.0, 40.0, name == 'joinleave')   # crash (no goodbye) or stays idle
    elif name.startswith('bursts') or name == 'burstsreset':
        spread = 0.0
        if name.startswith('bursts') and name[6:].isdigit():
            spread = int(name[6:]) / 1000.0            # bursts20: 300 spread over 20 ms
        for n in range(int(end)):
            for h in range(4):
                t0 = n + 0.25 * h
                for i in range(300):
                    arr.append((t0 + spread * i / 300.0, h))
                if name == 'burstsreset' and n >= 1:
                    resets.append((t0 - 1e-6, h))        # slot recreated just before the burst
    elif name in ('freshkey', 'freshkey20'):
        # a key brand new cluster-wide: host h first sees it at 0.25 h with a 300 burst
        spread = 0.02 if name == 'freshkey20' else 0.0
        end = 2.0
        for h in range(4):
            life[h] = (0.25 * h, end, False)
            for i in range(300):
                arr.append((0.25 * h + spread * i / 300.0, h))
    elif name in ('uniformreset', 'hotreset'):
        # a hot key (1.5x the rate); every second one host's slot is recreated (evicted, or
        # the host is new to the key); 'hotreset': it starts with a burst of 300 at once
        rates = {h: 1.5 * r / 4 for h in range(4)}
        resets = [(n + 0.25 * (n % 4) + 0.1, n % 4) for n in range(1, int(end))]
        if name == 'hotreset':
            for (t0, h) in resets:
                arr.extend((t0 + 1e-6, h) for _ in range(300))
    else:
        raise ValueError(name)
    for h, lam in rates.items():
        rng = random.Random(f'{seed}/{name}/{h}/arr')
        s, e, _ = life[h]
        e = min(e, end)
        arr.extend((t, h) for t in poisson(rng, lam, s, e))
    arr.sort()
    return dict(arrivals=arr, n=4, life=life, r=r, B=B, end=end, resets=resets)


# ---------------------------------------------------------------- reference bucket

def ref_bucket(times, r, B, grid):
    """Exact greedy bucket on `times`.  Returns (admitted times, tokens at each grid point)."""
    tok, last = B, 0.0
    adm = []
    gtok = []
    gi = 0
    for t in times:
        while gi < len(grid) and grid[gi] <= t:
            gtok.append(min(B, tok + r * (grid[gi] - last)))
            gi += 1
        tok = min(B, tok + r * (t - last))
        last = t
        if tok >= 1.0 - 1e-9:
            tok -= 1.0
            adm.append(t)
    while gi < len(grid):
        gtok.append(min(B, tok + r * (grid[gi] - last)))
        gi += 1
    return adm, gtok


def checker_rejects(times, r, B):
    """Feed the admitted stream to an exact bucket: times of the units it would reject."""
    tok, last = B, 0.0
    rej = []
    for t in times:
        tok = min(B, tok + r * (t - last))
        last = t
        if tok >= 1.0 - 1e-9:
            tok -= 1.0
        else:
            rej.append(t)
    return rej


def count(ts, a, b):
    return bisect.bisect_left(ts, b) - bisect.bisect_left(ts, a)


# ---------------------------------------------------------------- the simulation

class Host:
    __slots__ = ('id', 'C', 'K', 'att', 'inflight', 'last_send', 'gen', 'lease_last', 'bound',
                 'alive', 'rate', 'pending', 'last_early', 'started', 'grant_left', 'syncs',
                 'fresh', 'waiting', 'buf', 'C_last')

    def __init__(self, h):
        self.id = h
        self.C = 0
        self.K = 0
        self.att = 0
        self.inflight = False
        self.last_send = None
        self.gen = 0
        self.lease_last = 0
        self.bound = False
        self.alive = False
        self.rate = None
        self.pending = False
        self.last_early = -1e9
        self.started = 0.0
        self.grant_left = 0
        self.syncs = 0
        self.fresh = True
        self.waiting = False
        self.buf = []
        self.C_last = 0


class Rec:
    __slots__ = ('O', 'G', 'rate', 'peak', 'last_seen', 'active', 'alloc')

    def __init__(self):
        self.O = 0.0
        self.G = 0
        self.rate = None
        self.peak = 0.0
        self.last_seen = 0.0
        self.active = True
        self.alloc = 0.0


def waterfill(cap, needs):
    """Max-min fair split of cap over {h: need}.  -> {h: alloc}"""
    alloc = {}
    left = max(0.0, cap)
    items = sorted(needs.items(), key=lambda kv: kv[1])
    n = len(items)
    for i, (h, need) in enumerate(items):
        share = left / (n - i)
        g = min(need, share)
        alloc[h] = g
        left -= g
    return alloc


def simulate(d: Design, pat, T, seed, trace=None):
    r, B, N, end = pat['r'], pat['B'], pat['n'], pat['end']
    rng = random.Random(f'{seed}/rtt/{T}')
    hosts = [Host(h) for h in range(N)]
    recs = {}
    tokens = B
    last_refill = 0.0
    tau = d.tau_T * T
    reclaim_after = 3 * T + 0.01
    ev = []
    seq = [0]

    def push(t, kind, h, data=None):
        seq[0] += 1
        heapq.heappush(ev, (t, seq[0], kind, h, data))

    for h, (s, e, crash) in pat['life'].items():
        push(s, 'start', h)
        if e < end:
            push(e, 'crash' if crash else 'idle', h)
    for (t, h) in pat['resets']:
        push(t, 'reset', h)

    adm_t = []
    adm_h = [[] for _ in range(N)]
    n_syncs = 0
    n_early = 0

    def sumO():
        return sum(x.O for x in recs.values())

    def refill(now):
        nonlocal tokens, last_refill
        capv = B - sumO() if d.cap == 'pool' else B
        if tokens < capv:
            tokens = min(capv, tokens + r * (now - last_refill))
        last_refill = now

    def send(t, ho, early=False):
        nonlocal n_syncs, n_early
        a = ho.att
        ho.att = 0
        if d.demand_admitted:
            a = max(0, ho.C - ho.C_last)
        ho.C_last = ho.C
        dt = t - ho.last_send if ho.last_send is not None else max(t - ho.started, T / 10)
        dt = max(dt, 1e-6)
        # host-local EWMA of its arrival rate (for the in-flight reserve)
        al = 1 - math.exp(-dt / tau)
        ho.rate = a / dt if ho.rate is None else ho.rate + al * (a / dt - ho.rate)
        unused = ho.K - ho.C
        grant_used = 0
        if ho.grant_left:
            grant_used = d.grant              # the whole initial grant is charged now
            ho.grant_left = 0
        if d.protocol == 'exact':
            # report the cumulative ceiling and consumption; keep every unit (no freeze)
            keep = max(unused, 0)
            returned = 0
        elif d.protocol == 'freeze':
            keep = min(max(unused, 0), int(math.ceil(ho.rate * 2 * RTT_MAX)) + 1)
            ho.K = ho.C + keep
            returned = unused - keep
        else:
            keep = 0
            returned = max(unused, 0)
        rtt = rng.uniform(RTT_MIN, RTT_MAX)
        msg = dict(a=a, dt=dt, returned=returned, keep=keep, Cs=ho.C, Ks=ho.K, tsend=t, rtt=rtt,
                   grant_used=grant_used, fresh=ho.fresh)
        ho.fresh = False
        ho.inflight = True
        ho.last_send = t
        ho.syncs += 1
        n_syncs += 1
        if early:
            n_early += 1
            ho.last_early = t
        if not early:
            ho.gen += 1
            push(t + T, 'timer', ho.id, ho.gen)
        push(t + rtt / 2, 'redis', ho.id, msg)

    def script(t, h, m):
        nonlocal tokens
        refill(t)
        rec = recs.get(h)
        fresh = rec is None or m['fresh']
        if fresh:
            # new host, or a recreated slot: an old lease is lost, never credited (it may
            # have been used before the slot went away)
            rec = recs[h] = rec or Rec()
            rec.O = 0.0
            rec.G = m['Ks']
        # reclaim the leases of hosts not seen for a while (crashed)
        for j, x in recs.items():
            if j != h and x.active and t - x.last_seen > reclaim_after:
                tokens += x.O
                x.O = 0.0
                x.active = False
        rec.active = True
        # charge the unaccounted initial grant (may take the bucket below 0: a debt)
        tokens -= m['grant_used']
        if d.protocol == 'exact':
            # credit what the host released since its last sync (ceiling lowered on request)
            tokens += rec.G - m['Ks']
            rec.G = m['Ks']
            rec.O = float(m['Ks'] - m['Cs'])
        else:
            tokens += m['returned']
            rec.O = float(m['keep'])
        if d.cap == 'bucket':
            tokens = min(tokens, B)
        # demand
        dt = m['dt']
        inst = m['a'] / dt
        al = 1 - math.exp(-dt / tau)
        rec.rate = inst if rec.rate is None else rec.rate + al * (inst - rec.rate)
        if d.peak_tau > 0:
            rec.peak = max(float(m['a']), rec.peak * math.exp(-dt / d.peak_tau))
        rec.last_seen = t
        act = {j: x for j, x in recs.items() if x.active}
        first = fresh and d.newfair

        def need(x):
            v = x.rate * T
            if d.peak_tau > 0:
                v = max(v, x.peak)
            v *= d.H
            if v > 0:
                v = max(v, d.min_need)
            return v

        avail = max(tokens, 0.0)
        needs = {j: need(x) for j, x in act.items()}
        if first:
            # unknown demand: as much as the busiest host, and at least a 1/N share of the
            # pool (N = hosts in the cluster, known to Redis from the leaders' heartbeats)
            pool0 = max(tokens, 0.0) + sum(x.O for x in act.values())
            needs[h] = max(max(needs.values()), pool0 / N)
        if d.kind == 'A':
            # plain: hand back, then take a 1/N share of what the bucket holds
            target = (avail + rec.O) / len(act)
        elif d.kind == 'B':
            # design.md: water filling of what the bucket holds over H x demand
            alloc = waterfill(avail + rec.O, needs)
            target = alloc[h]
        else:  # 'D'
            now = t

            def est(x, j):
                if j == h or not d.est:
                    return x.O
                return max(0.0, x.O - (x.rate or 0.0) * (now - x.last_seen))
            held = {j: est(x, j) for j, x in act.items()}
            pool = tokens + sum(held.values())
            alloc = waterfill(pool, needs)
            spare = pool - sum(alloc.values())
            tn = sum(needs.values())
            target = alloc[h]
            if spare > 0 and tn > 0 and d.spare > 0:
                target += d.spare * spare * needs[h] / tn
            if d.reserve:
                res = sum(max(0.0, alloc[j] - held[j]) for j in act if j != h)
                avail = max(0.0, avail - res)
        L = math.floor(min(max(0.0, target - rec.O), avail))
        bound = L < target - rec.O - 1          # the bucket, not the target, limited the lease
        rel = 0
        if d.protocol == 'exact' and target < rec.O - 1:
            rel = math.floor(rec.O - target)     # ask the host to lower its ceiling
        tokens -= L
        rec.O += L
        rec.G += L
        if trace is not None:
            trace.append((t, h, m['a'], L, rel, tokens))
        push(m['tsend'] + m['rtt'], 'reply', h, dict(L=L, rel=rel, Cs=m['Cs'], keep=m['keep'], bound=bound))

    def maybe_early(t, ho):
        if not d.early or ho.inflight or not ho.alive or (d.hint and ho.bound):
            return
        rem = ho.K - ho.C
        if rem <= 0 or (d.lw > 0 and rem <= d.lw * ho.lease_last):
            if ho.last_send is None or t - ho.last_send >= d.X:
                send(t, ho, early=True)

    arrivals = pat['arrivals']
    ai = 0
    na = len(arrivals)
    INF = float('inf')
    while True:
        ta = arrivals[ai][0] if ai < na else INF
        te = ev[0][0] if ev else INF
        if ta == INF and te == INF:
            break
        if te <= ta:
            t, _, kind, h, data = heapq.heappop(ev)
            if t > end + 1:
                continue
            ho = hosts[h]
            if kind == 'start':
                ho.alive = True
                ho.started = t
                ho.K = ho.C + d.grant
                ho.grant_left = d.grant
                ho.fresh = True
                ho.waiting = d.coldwait
                ho.gen += 1
                push(t + rng.uniform(0, T), 'timer', h, ho.gen)
            elif kind == 'crash':
                ho.alive = False
            elif kind == 'idle':
                pass
            elif kind == 'reset':
                # the host's slot is evicted and recreated: the eviction hands the unused
                # lease back (exactly), Redis keeps the host's demand record for the key
                if h in recs:
                    refill(t)
                    tokens += max(0, ho.K - ho.C)
                    recs[h].O = 0.0
                ho.C = 0
                ho.C_last = 0
                ho.K = d.grant
                ho.grant_left = d.grant
                ho.fresh = True
                ho.waiting = d.coldwait
                ho.rate = None
                ho.last_send = None
                ho.started = t
                ho.lease_last = 0
            elif kind == 'timer':
                if not ho.alive or data != ho.gen:
                    continue
                if ho.inflight:
                    ho.pending = True
                else:
                    send(t, ho)
            elif kind == 'redis':
                script(t, h, data)
            elif kind == 'reply':
                if not ho.alive:
                    continue
                L = data['L']
                if d.protocol == 'exact':
                    ho.K += L
                    if data['rel']:
                        ho.K = max(ho.C, ho.K - data['rel'])
                elif d.protocol == 'freeze':
                    ho.K += L
                elif d.protocol == 'cs':
                    ho.K = data['Cs'] + L
                else:
                    ho.K = ho.C + L
                ho.lease_last = L + data['keep']
                ho.bound = data['bound']
                ho.inflight = False
                if ho.waiting:
                    ho.waiting = False
                    for _ in ho.buf:               # decided now, one RTT late
                        if ho.C + 1 <= ho.K:
                            ho.C += 1
                            adm_t.append(t)
                            adm_h[h].append(t)
                    ho.buf = []
                if ho.pending:
                    ho.pending = False
                    send(t, ho)
                elif ho.att > 0:
                    maybe_early(t, ho)
        else:
            t, h = arrivals[ai]
            ai += 1
            ho = hosts[h]
            if not ho.alive:
                continue
            ho.att += 1
            if ho.waiting:
                ho.buf.append(t)
                if not ho.inflight:
                    send(t, ho, early=True)
                continue
            if ho.C + 1 <= ho.K:
                ho.C += 1
                adm_t.append(t)
                adm_h[h].append(t)
            maybe_early(t, ho)
    return adm_t, adm_h, n_syncs, n_early


def measure(d, pname, T, seed, pat=None):
    pat = pat or pattern(pname, seed)
    r, B = pat['r'], pat['B']
    adm, adm_h, n_syncs, n_early = simulate(d, pat, T, seed)
    times = [t for t, _ in pat['arrivals']]
    grid = [round(WARM + 0.1 * k, 6) for k in range(int(RUN * 10) - 9)]
    ref, gtok = ref_bucket(times, r, B, grid)
    rej = checker_rejects(adm, r, B)
    a0, a1 = WARM, WARM + RUN
    over_run = max(0, len(adm) - len(ref)) / len(ref)
    over_win = 0.0
    conf_win = 0.0
    for w, tk in zip(grid, gtok):
        allow = tk + r * 1.0
        x = count(adm, w, w + 1.0) - allow
        over_win = max(over_win, x / allow)
        conf_win = max(conf_win, count(rej, w, w + 1.0) / allow)
    dem = count(times, a0, a1)
    adm_m = count(adm, a0, a1)
    ref_m = count(ref, a0, a1)
    util = adm_m / min(dem, ref_m) if min(dem, ref_m) else 1.0
    per = []
    for h in range(pat['n']):
        ht = [t for t, hh in pat['arrivals'] if hh == h]
        dh = count(ht, a0, a1)
        per.append(count(adm_h[h], a0, a1) / dh if dh else 1.0)
    # cumulative lead over the reference: max over t of admitted(0,t) - ref admitted(0,t)
    lead, i, j = 0, 0, 0
    while i < len(adm):
        t = adm[i]
        while j < len(ref) and ref[j] <= t:
            j += 1
        i += 1
        lead = max(lead, i - j)
    ev_util = {}
    for (e0, e1) in ((20.0, 21.0), (40.0, 41.0)):
        dm = count(times, e0, e1)
        rf = count(ref, e0, e1)
        ev_util[e0] = count(adm, e0, e1) / min(dm, rf) if min(dm, rf) else 1.0
    return dict(lead=lead, ev_util=ev_util, over_run=over_run, over_win=over_win, conf_run=len(rej) / len(ref),
                conf_win=conf_win, util=util, denied=(dem - adm_m) / dem if dem else 0.0,
                small=min(per[1:]), per=per, syncs=n_syncs / pat['end'] / pat['n'],
                early=n_early / pat['end'] / pat['n'])


# ---------------------------------------------------------------- drivers

PATTERNS = ['uniform15', 'uniform10', 'skewed', 'below', 'joinleave', 'joinidle', 'bursts']
TS = [0.010, 0.100, 1.000]


def _job(args):
    d, p, T, s = args
    return (d.name, p, T, s), measure(d, p, T, s)


def run_jobs(jobs, njobs):
    if njobs > 1:
        import multiprocessing as mp
        with mp.Pool(njobs) as pool:
            return dict(pool.map(_job, jobs, chunksize=1))
    return dict(map(_job, jobs))


def agg(res, key):
    """worst case over seeds for over-admission / denials, min for utilisation."""
    vals = list(res)
    out = {}
    for k in ('over_run', 'over_win', 'conf_run', 'conf_win', 'denied', 'syncs', 'early'):
        out[k] = max(v[k] for v in vals)
    for k in ('util', 'small'):
        out[k] = min(v[k] for v in vals)
    out['util_mean'] = sum(v['util'] for v in vals) / len(vals)
    return out


def table(designs, patterns, Ts, seeds, njobs):
    jobs = [(d, p, T, s) for d in designs for p in patterns for T in Ts for s in seeds]
    res = run_jobs(jobs, njobs)
    print(f'seeds {list(seeds)}; over-admission and denials: worst seed; utilisation: '
          f'worst seed (mean)\n')
    for p in patterns:
        print(f'### {p}\n')
        print('| design | T ms | over run % | over worst 1 s % | conform. excess run % | '
              'conform. excess worst 1 s % | util % | small kept % | denied % | syncs/host/s |')
        print('|---|---|---|---|---|---|---|---|---|---|')
        for d in designs:
            for T in Ts:
                a = agg([res[(d.name, p, T, s)] for s in seeds], None)
                small = f"{100 * a['small']:.1f}" if p == 'skewed' else ''
                print(f"| {d.name} | {int(T * 1000)} | {100 * a['over_run']:.2f} | "
                      f"{100 * a['over_win']:.2f} | {100 * a['conf_run']:.3f} | "
                      f"{100 * a['conf_win']:.2f} | {100 * a['util']:.1f} "
                      f"({100 * a['util_mean']:.1f}) | {small} | {100 * a['denied']:.2f} | "
                      f"{a['syncs']:.1f} |")
        print()
    return res


def main():
    args = sys.argv[1:]
    seeds = range(1, 4)
    njobs = 2
    if '--seeds' in args:
        i = args.index('--seeds')
        seeds = range(1, int(args[i + 1]) + 1)
        del args[i:i + 2]
    if '--jobs' in args:
        i = args.index('--jobs')
        njobs = int(args[i + 1])
        del args[i:i + 2]
    cmd = args[0] if args else 'main'
    if cmd == 'main':
        table([DESIGNS[k] for k in 'ABCD'], PATTERNS, TS, seeds, njobs)
    elif cmd == 'one':
        d = DESIGNS[args[1]]
        m = measure(d, args[2], float(args[3]) / 1000, int(args[4]) if len(args) > 4 else 1)
        for k, v in m.items():
            print(k, v)
    else:
        import experiments
        getattr(experiments, cmd)(seeds, njobs, args[1:])


if __name__ == '__main__':
    main()
