"""Experiments for sim.py: parameter sweeps, protocol/cap variants, cold start."""
import sim
from dataclasses import replace

ALLP = ['uniform15', 'uniform10', 'skewed', 'below', 'joinleave', 'joinidle', 'bursts']


def _summ(res, d, p, T, seeds):
    return sim.agg([res[(d.name, p, T, s)] for s in seeds], None)


def verdict(res, d, T, seeds):
    """Targets of the issue at this T; over-admission judged on the conformance measure."""
    a = {p: _summ(res, d, p, T, seeds) for p in ALLP}
    conf = max(a[p]['conf_win'] for p in ALLP)
    ow = max(a[p]['over_win'] for p in ALLP)
    util = min(a[p]['util'] for p in ALLP if p != 'bursts')
    ub = a['bursts']['util']
    small = a['skewed']['small']
    den = a['below']['denied']
    syn = max(a[p]['syncs'] for p in ALLP)
    ok = conf <= 0.01 and util >= 0.95 and ub >= 0.80 and small >= 0.90 and den <= 0.001
    return ok, (f"| {d.name} | {100*conf:.2f} | {100*ow:.2f} | {100*util:.1f} | {100*ub:.1f} | "
                f"{100*small:.1f} | {100*den:.3f} | {syn:.0f} | {'yes' if ok else 'no'} |")


HDR = ('| variant | conform. excess worst 1 s % | brief window metric worst % | util min (non-burst) % '
       '| bursts util % | small kept % | below denied % | max syncs/host/s | all targets |\n'
       '|---|---|---|---|---|---|---|---|---|')


def sweep(seeds, njobs, args):
    T = float(args[0]) / 1000 if args else 0.1
    D = sim.DESIGNS['D']
    C = sim.DESIGNS['C']
    vs = [D]
    for H in (1.25, 1.5, 3.0):
        vs.append(replace(D, name=f'D H={H}', H=H))
    for pt in (0.0, 0.5, 1.0, 5.0):
        vs.append(replace(D, name=f'D peak_tau={pt}s', peak_tau=pt))
    for tt in (1.0, 10.0):
        vs.append(replace(D, name=f'D tau={tt}T', tau_T=tt))
    for X in (0.001, 0.002, 0.010, 0.025):
        vs.append(replace(D, name=f'D X={X*1000:g}ms', X=X))
    vs.append(replace(D, name='D no early sync', early=False))
    vs.append(replace(D, name='D lw=0.25', lw=0.25))
    vs.append(replace(D, name='D hint (no early sync when bucket-bound)', hint=True))
    vs.append(replace(D, name='D spare=1', spare=1.0))
    vs.append(replace(D, name='D spare=0.5', spare=0.5))
    vs.append(replace(D, name='D newfair off', newfair=False))
    vs.append(replace(D, name='D reserve off', reserve=False))
    vs.append(replace(D, name='D est on', est=True))
    vs.append(replace(D, name='D demand = admitted units (not attempts)', demand_admitted=True))
    for H in (2.0, 5.0, 10.0):
        vs.append(replace(C, name=f'C H={H}', H=H))
        vs.append(replace(C, name=f'C H={H} lw=0.5', H=H, lw=0.5))
    vs.append(replace(sim.DESIGNS['A'], name='A + early sync', early=True))
    jobs = [(d, p, T, s) for d in vs for p in ALLP for s in seeds]
    res = sim.run_jobs(jobs, njobs)
    fj = [(d, 'freshkey20', T, k) for d in vs for k in range(20)]
    import multiprocessing as mp
    with mp.Pool(njobs) as pool:
        fres = dict(pool.map(_fresh_one, fj))
    print(f'T = {T*1000:g} ms, seeds {list(seeds)} (worst seed); last column: brand-new keys, '
          f'300-request bursts spread over 20 ms, g = 0, 20 keys\n')
    print(HDR.replace(' all targets |\n', ' all targets | fresh-key util % |\n').replace('---|\n', '---|---|\n', 0) + '---|')
    for d in vs:
        rs = [fres[(d.name, 'freshkey20', T, k)] for k in range(20)]
        fu = 100 * sum(x['adm'] for x in rs) / sum(x['ref'] for x in rs)
        print(verdict(res, d, T, seeds)[1] + f' {fu:.0f} |')


def bugs(seeds, njobs, args):
    """Where over-admission comes from when the protocol or the cap is done differently."""
    D = sim.DESIGNS['D']
    vs = [D,
          replace(D, name='D protocol=freeze', protocol='freeze'),
          replace(D, name='D protocol=cs (ceiling = consumed_at_send + lease)', protocol='cs'),
          replace(D, name='D protocol=cnow (ceiling = consumed_now + lease)', protocol='cnow'),
          replace(D, name='D cap=bucket (refill to B, leases ignored)', cap='bucket'),
          replace(sim.DESIGNS['A'], name='A cap=bucket', cap='bucket'),
          replace(sim.DESIGNS['B'], name='B cap=bucket', cap='bucket')]
    pats = ['uniform15', 'skewed', 'below', 'bursts']
    Ts = [0.01, 0.1, 1.0]
    jobs = [(d, p, T, s) for d in vs for p in pats for T in Ts for s in seeds]
    res = sim.run_jobs(jobs, njobs)
    print('conformance excess: whole run % / worst 1 s window % (worst seed); util % in brackets\n')
    print('| variant | T ms | ' + ' | '.join(pats) + ' |')
    print('|---|---|' + '---|' * len(pats))
    for d in vs:
        for T in Ts:
            cells = []
            for p in pats:
                a = _summ(res, d, p, T, seeds)
                cells.append(f"{100*a['conf_run']:.2f} / {100*a['conf_win']:.2f} ({100*a['util']:.0f})")
            print(f'| {d.name} | {T*1000:g} | ' + ' | '.join(cells) + ' |')


def _fresh_one(args):
    d, pname, T, seed = args
    pat = sim.pattern(pname, seed)
    adm, adm_h, ns, ne = sim.simulate(d, pat, T, seed)
    times = [t for t, _ in pat['arrivals']]
    ref, _ = sim.ref_bucket(times, pat['r'], pat['B'], [])
    rej = sim.checker_rejects(adm, pat['r'], pat['B'])
    return (d.name, pname, T, seed), dict(adm=len(adm), ref=len(ref), dem=len(times), rej=len(rej))


def coldstart(seeds, njobs, args):
    nkeys = 60
    D = sim.DESIGNS['D']
    grants = [0, 1, 5, 10, 25, 50, 100, 250]
    W = replace(D, name='g=wait', coldwait=True)
    print('### F1: a key new cluster-wide every second (Redis bucket full); each host sees it '
          'first with a 300 burst, hosts 250 ms apart; 60 keys\n')
    print('| grant g | T ms | burst | admitted/key | ref/key | util % | over-admission (conformance) per key |')
    print('|---|---|---|---|---|---|---|')
    for pname in ('freshkey', 'freshkey20'):
        for T in (0.1,):
            vs = [replace(D, name=f'g={g}', grant=g) for g in grants] + [W]
            jobs = [(d, pname, T, k) for d in vs for k in range(nkeys)]
            import multiprocessing as mp
            with mp.Pool(njobs) as pool:
                res = dict(pool.map(_fresh_one, jobs))
            for d in vs:
                rs = [res[(d.name, pname, T, k)] for k in range(nkeys)]
                adm = sum(x['adm'] for x in rs) / nkeys
                ref = sum(x['ref'] for x in rs) / nkeys
                rej = max(x['rej'] for x in rs)
                spread = 'at once' if pname == 'freshkey' else 'over 20 ms'
                print(f'| {d.name[2:]} | {T*1000:g} | {spread} | {adm:.0f} | {ref:.0f} | '
                      f'{100*adm/ref:.1f} | {rej} (max over keys) |')
    print('\n### F2: a key that Redis knows, on a slot just recreated (evicted after handing '
          'its lease back, or a host new to the key), grant g charged as a debt at the first '
          'sync. burstsreset: every burst of the burst pattern starts on a fresh slot; '
          'uniformreset: uniform 1.5x, one slot recreated per second; hotreset: the same plus '
          'a burst of 300 at once on the fresh slot\n')
    print('| grant g | T ms | pattern | conformance excess whole run % | worst 1 s % | '
          'brief window metric worst 1 s % | util % |')
    print('|---|---|---|---|---|---|---|')
    vs = [replace(D, name=f'g={g}', grant=g) for g in grants] + [W]
    for pname in ('burstsreset', 'uniformreset', 'hotreset'):
        for T in (0.1,):
            jobs = [(d, pname, T, s) for d in vs for s in seeds]
            res = sim.run_jobs(jobs, njobs)
            for d in vs:
                a = _summ(res, d, pname, T, seeds)
                print(f"| {d.name[2:]} | {T*1000:g} | {pname} | {100*a['conf_run']:.2f} | "
                      f"{100*a['conf_win']:.2f} | {100*a['over_win']:.2f} | {100*a['util']:.1f} |")


def compact(seeds, njobs, args):
    """One row per design and T: the numbers the issue's targets are about."""
    designs = [sim.DESIGNS[k] for k in 'ABCD']
    jobs = [(d, p, T, s) for d in designs for p in ALLP for T in sim.TS for s in seeds]
    res = sim.run_jobs(jobs, njobs)
    print(f'seeds {list(seeds)}; worst seed.  Over-admission, conformance (units an exact bucket fed '
          f'with the admitted stream would reject), whole run and worst 1 s window, all patterns: '
          + ('0.00 % everywhere' if all(v['conf_win'] == 0 and v['conf_run'] == 0 for v in res.values())
             else 'NONZERO somewhere') + '.  Whole-run admitted minus exact-bucket admitted: '
          + ('<= 0 everywhere' if all(v['over_run'] == 0 for v in res.values()) else 'NONZERO')
          + f'; max over t of admitted(0,t) - exact admitted(0,t): '
          f"{max(v['lead'] for v in res.values())} units.\n")
    print('Cells: utilisation % / brief window metric % (max over 1 s windows of admitted - (ref '
          'tokens at start + r x 1 s), in % of that allowance).\n')
    print('| design | T ms | uniform 1.5x | uniform 1.0x | skewed (small kept %) | below: denied % '
          '| join+crash | join+idle (util 1 s after leave) | bursts | max syncs/host/s |')
    print('|---|---|---|---|---|---|---|---|---|---|')
    for d in designs:
        for T in sim.TS:
            a = {p: _summ(res, d, p, T, seeds) for p in ALLP}

            def c(p):
                return f"{100*a[p]['util']:.1f} / {100*a[p]['over_win']:.2f}"
            ev = min(res[(d.name, 'joinidle', T, s)]['ev_util'][40.0] for s in seeds)
            syn = max(a[p]['syncs'] for p in ALLP)
            print(f"| {d.name} | {T*1000:g} | {c('uniform15')} | {c('uniform10')} | {c('skewed')} "
                  f"({100*a['skewed']['small']:.1f}) | {100*a['below']['denied']:.3f} | "
                  f"{c('joinleave')} | {c('joinidle')} ({100*ev:.0f}) | {c('bursts')} | {syn:.0f} |")
