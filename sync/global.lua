-- rl GLOBAL sync: one batch of one host's GLOBAL keys, atomically (docs/design.md section 10).
--
-- Each key is one hash, KEYS[i] = "rl:g:{<group>}:<cluster id>", holding the cluster's token bucket
-- (tk tokens, ts last refill, microseconds of Redis' TIME, tr the refill's remainder in units of
-- 1/window_us token: the refill is exact) and per host x:
--   G:x granted (the ceiling Redis knows), U:x consumption reported, I:x slot incarnation,
--   r:x demand rate (units/us, EWMA), p:x decayed peak demand per sync, t:x last seen,
--   bt:x bp:x bs:x bc:x bn:x the host's bursts (the last one's start, the interval and size
--   EWMAs, the last one's size so far, count; see need),
--   rb:x its demand rate outside bursts (EWMA),
--   e:x s:x q:x the last (epoch, sequence) processed and its answer "L,rel" (fencing, retries),
--   h:x the host's own clock at its last report (rates are measured on it: see dt below),
--   c:x the part of tk credited to x (refill shared at fair rates; tk = common + credits).
-- Invariant kept: tk + sum over hosts of max(0, G - U) <= B, and every unit a host admits lies
-- under its G, which was debited from tk when granted. So the hosts together never admit more
-- than one exact bucket of (rate, B) would; see the proof in docs/design.md.
--
-- ARGV: host, epoch, seq, T_us (the host's reaction time: its sync interval, or with one above
-- 100 ms its demand-round cadence of 100 ms, at which every slot with demand reports), R_us
-- (silent-host reclaim), then 9
-- per key: incarnation, K (ceiling), C (consumed), Ka (the G the host last heard of), den
-- (denied attempts since its last report), requests, window_us, B (burst), ttl_ms; and last,
-- optionally, the host's monotonic clock in microseconds when it read its slots.
-- Returns {hosts, L1, rel1, want1, L2, ...}: L units granted (ceiling += L), rel units to hand
-- back (ceiling -= rel, never below consumed), want = 1 while the host's demand is not zero
-- (report this key every round, even without a lease), L = -1: refused, the epoch is not the
-- newest.
local now
do
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local h, ep, sq = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local T, R = tonumber(ARGV[4]), tonumber(ARGV[5])
local H, TAU, PTAU = 2, 3 * T, 2000000
-- The host's clock (optional: absent, rates are measured on Redis' TIME alone). A demand rate
-- is attempts over the time between two reports as the host took them: batches that reach
-- Redis together (queued in a stopped server, or behind a stalled link, then run at once) are
-- then still as far apart as they were taken, not 1 us apart, which would make every one of
-- them look like a burst.
local hclock = tonumber(ARGV[6 + 9 * #KEYS])
local out = {1}
local nmax = 1

-- floor(a / b) for integers below 2^53 (a double division, corrected once)
local function idiv(a, b)
  local q = math.floor(a / b)
  if q * b > a then q = q - 1 elseif (q + 1) * b <= a then q = q + 1 end
  return q
end

-- The bucket's refill over el microseconds at Lq per Wq us, exactly (docs/design.md section
-- 10): whole tokens, the remainder kept in tr (units of 1/Wq token), and never above the room
-- cap - tk (what would pass it is thrown away, fraction included, as a full bucket's is).
-- Returns (tokens added, new tr). Exact while room x Wq < 2^52 (every integer below 2^53);
-- beyond that (or on a non-integer tk) the double rate, as before.
local function refill(tk, cap, el, tr, Lq, Wq)
  local room = cap - tk
  if el < 0 then el = 0 end
  if tk ~= math.floor(tk) or room * Wq >= 4503599627370496 or Lq >= 4503599627370496 then
    return math.min(cap, tk + Lq / Wq * el) - tk, 0
  end
  if el >= idiv(room * Wq - tr + Lq - 1, Lq) then return room, 0 end
  local num = el * Lq + tr
  local whole = idiv(num, Wq)
  return whole, num - whole * Wq
end

-- A host's need: what it should hold until it can next be served, H x its demand over a
-- round (rate, or its peak per report). A periodic burster (at least two bursts, each report's
-- attempts 4 x its rate or more, spaced by 4 T or more, larger on average than bmin = an equal
-- share of B) is served by its pattern instead: it needs its burst size while a burst is due
-- (from T + max(T, interval / 8) before the next expected one until half an interval after
-- it), and H x its rate outside the bursts otherwise,
-- so that between its bursts its lease goes to the hosts whose burst comes next. Bursts are
-- whole before a report can answer them (the hot path never waits), so a lease that is to serve
-- a burst must be in place when the burst arrives: this is what an exact cluster bucket, which
-- every host reaches at once, would give it.
local function need(r, p, bt, bp, bs, bn, rb, bc, bmin)
  local v
  if bn and bn >= 2 and bp >= 4 * T and now <= bt + 1.5 * bp and bs > bmin then
    v = H * (rb or 0) * T
    if now + T + math.max(T, bp / 8) >= bt + bp then v = v + math.max(bs or 0, bc or 0) end
  else
    v = H * math.max((r or 0) * T, p or 0)
  end
  if v < 0.5 then return 0 end -- idle: the lease goes back
  return math.max(v, 1)
end

-- max-min fair split of `total` over the hosts' wants (water filling): {host = share}
local function waterfill(hosts, want, total)
  local items = {}
  for _, x in ipairs(hosts) do items[#items + 1] = x end
  table.sort(items, function(a, c) return want[a] < want[c] end)
  local left, n, share = total, #items, {}
  for idx, x in ipairs(items) do
    local g = math.min(want[x], left / (n - idx + 1))
    share[x] = g
    left = left - g
  end
  return share
end

for i = 1, #KEYS do
  local b = 5 + (i - 1) * 9
  local inc = ARGV[b + 1]
  local Ks, Cs, Ka = tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  local den = tonumber(ARGV[b + 5])
  local rate = tonumber(ARGV[b + 6]) / tonumber(ARGV[b + 7])
  local B, ttl = tonumber(ARGV[b + 8]), tonumber(ARGV[b + 9])
  local k = KEYS[i]
  local raw = redis.call('HGETALL', k)
  local f = {}
  for j = 1, #raw, 2 do f[raw[j]] = raw[j + 1] end
  local e0 = tonumber(f['e:' .. h] or '0')
  local s0 = tonumber(f['s:' .. h] or '0')
  local L, rel, want = 0, 0, 0
  if ep < e0 or (ep == e0 and sq < s0) then
    L = -1 -- a deposed leader (fencing), or an older batch overtaken by a newer one
  elseif ep == e0 and sq == s0 and f['q:' .. h] then
    -- a retry of a batch already applied: the same answer, nothing counted twice
    local q = f['q:' .. h]
    local c = string.find(q, ',', 1, true)
    L, rel = tonumber(string.sub(q, 1, c - 1)), tonumber(string.sub(q, c + 1))
    want = 1
  else
    local tk, ts, tr = tonumber(f.tk), tonumber(f.ts), tonumber(f.tr or '0')
    if not tk then tk, ts, tr = B, now, 0 end
    -- live hosts; a host silent for R gives its lease back
    local hosts, held, needs, rates, pend = {}, {}, {}, {}, {}
    local sumO = 0
    for key, v in pairs(f) do
      if string.sub(key, 1, 2) == 'G:' then
        local x = string.sub(key, 3)
        local Ox = tonumber(v) - tonumber(f['U:' .. x] or '0')
        if Ox < 0 then Ox = 0 end
        local tx = tonumber(f['t:' .. x] or '0')
        if x ~= h and now - tx > R then
          tk = tk + Ox
          redis.call('HDEL', k, 'G:' .. x, 'U:' .. x, 'I:' .. x, 'r:' .. x, 'p:' .. x,
                     't:' .. x, 'e:' .. x, 's:' .. x, 'q:' .. x, 'c:' .. x, 'bt:' .. x,
                     'bp:' .. x, 'bs:' .. x, 'bn:' .. x, 'rb:' .. x, 'bc:' .. x, 'h:' .. x)
        elseif x ~= h then
          hosts[#hosts + 1] = x
          held[x] = Ox
          sumO = sumO + Ox
          local px = tonumber(f['p:' .. x] or '0') * math.exp(-(now - tx) / PTAU)
          pend[x] = {tonumber(f['r:' .. x]), px, tonumber(f['bt:' .. x]),
                     tonumber(f['bp:' .. x]), tonumber(f['bs:' .. x]),
                     tonumber(f['bn:' .. x]), tonumber(f['rb:' .. x]),
                     tonumber(f['bc:' .. x])}
          rates[x] = tonumber(f['r:' .. x]) or 0
        end
      end
    end
    hosts[#hosts + 1] = h
    -- bursts smaller than an equal share of B need no pattern: the share holds them (and a
    -- host whose steady demand comes in clumps, when its thread was off the CPU, is no burster)
    local bmin = B / #hosts
    for x, a in pairs(pend) do
      needs[x] = need(a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], bmin)
    end
    -- this host's record; a new slot incarnation starts from what the host says it was given
    local G, U, r, p, tl = tonumber(f['G:' .. h]), tonumber(f['U:' .. h]),
      tonumber(f['r:' .. h]), tonumber(f['p:' .. h]), tonumber(f['t:' .. h])
    local myO = 0
    if G then myO = math.max(0, G - U) end
    -- refill, capped so that the bucket plus the outstanding leases never exceed B
    local cap = B - sumO - myO
    local add = 0
    if tk < cap then
      add, tr = refill(tk, cap, now - ts, tr, tonumber(ARGV[b + 6]), tonumber(ARGV[b + 7]))
      tk = tk + add
    else
      tr = 0
    end
    if f['I:' .. h] ~= inc then
      -- a new incarnation of this host's slot: an old one's unused lease comes back (a slot is
      -- dropped only when nothing is outstanding, so this is at most a grant that never landed)
      tk = tk + myO
      G, U = Ka, 0
    end
    -- what the host handed back (K below G), or raised without Redis (a cold-start grant, the
    -- LOCAL fallback: K above G), and consumption beyond the ceiling (OPEN fallback, races)
    tk = tk + (G - Ks)
    G = Ks
    if Cs > G then
      tk = tk - (Cs - G)
      G = Cs
    end
    if tk < -B then tk = -B end -- a debt of at most one burst: an outage never locks out
    local adm = Cs - U
    if adm < 0 then adm = 0 end
    U = Cs
    local O = G - U
    -- demand: attempts (admitted + denied) as an EWMA rate and a decayed peak per sync
    local att = adm + den
    local dt = T
    if tl then dt = math.max(1, now - tl) end
    local hl = tonumber(f['h:' .. h])
    if hclock and hl and hclock > hl then dt = hclock - hl end
    local inst = att / dt
    -- a burst: this report's attempts at least 4 x what the rate so far gives over dt (and 2);
    -- reports of one burst (an early round, then a regular one) count once
    -- (bc: the attempts of the current burst so far: an early round may report its first
    -- denial while the rest is still arriving; bs: the sizes of the bursts before, EWMA)
    local bt, bp, bs, bn, rb, bc = tonumber(f['bt:' .. h]), tonumber(f['bp:' .. h]),
      tonumber(f['bs:' .. h]), tonumber(f['bn:' .. h]), tonumber(f['rb:' .. h]),
      tonumber(f['bc:' .. h])
    local isb = att >= 2 and att >= 4 * (r or 0) * dt
    local inb = bt and now - bt < math.max(4 * T, 0.5 * (bp or 0))
    if inb and now - bt > 4 * T and
       att >= math.max(2, 4 * (rb or 0) * dt, (bs or bc or 0) / 8) then
      -- a "burst" that goes on for more than four rounds at a good part of its size per report
      -- is steady demand (or a burst detected where reports arrived together): the host is no
      -- periodic burster, whose need outside its bursts (rb) would otherwise starve it until
      -- the next burst it is not going to send
      redis.call('HDEL', k, 'bt:' .. h, 'bp:' .. h, 'bs:' .. h, 'bn:' .. h, 'bc:' .. h)
      bt, bp, bs, bn, bc, inb, isb = nil, nil, nil, nil, nil, false, false
    end
    if inb then
      bc = (bc or 0) + att
    elseif isb then
      if not bt then
        bn = 1
      else
        local iv = now - bt
        if bp then bp = bp + 0.5 * (iv - bp) else bp = iv end
        if bs then bs = bs + 0.5 * (bc - bs) else bs = bc end
        bn = math.min(bn + 1, 8)
      end
      bt, bc = now, att
    end
    local ib = inst
    if isb or inb then ib = 0 end
    if rb == nil then rb = ib else rb = rb + (1 - math.exp(-dt / TAU)) * (ib - rb) end
    if r == nil then r = inst else r = r + (1 - math.exp(-dt / TAU)) * (inst - r) end
    p = math.max(att, (p or 0) * math.exp(-dt / PTAU))
    needs[h] = need(r, p, bt, bp, bs, bn, rb, bc, bmin)
    held[h] = O
    -- the pool: the bucket, every outstanding lease, and what the bucket gains until the next
    -- round. Counting the inflow shares the *rate* fairly when demand exceeds it (the bucket is
    -- then empty at every round and would leave nothing to share).
    local pool = tk + sumO + O + rate * T
    if not tl and den > 0 then
      -- a host new to the key that was already denied: its demand is unknown beyond what it
      -- tried; ask as much as the busiest host
      local mx = needs[h]
      for _, x in ipairs(hosts) do mx = math.max(mx, needs[x]) end
      needs[h] = mx
    end
    -- max-min fair shares (water filling) of the pool over the needs, and of the refill rate
    -- over the demand rates
    local alloc = waterfill(hosts, needs, math.max(0, pool))
    rates[h] = r
    -- (the rate is shared over H x the demand rates: a host's credit then grows faster than
    -- it consumes, up to its target, so a small host beside one that drains the bucket is not
    -- held to exactly its own rate, where any jitter in the rounds would deny it)
    local wrates = {}
    for _, x in ipairs(hosts) do wrates[x] = H * rates[x] end
    local rshare = waterfill(hosts, wrates, rate)
    -- The refill is credited to the hosts below their share at their fair rates (c:x), so a
    -- host that reports often cannot take what arrived for one that reports once a round; a
    -- host's credit never exceeds its share, the rest stays common. tk = common + credits.
    local credit, csum = {}, 0
    for _, x in ipairs(hosts) do
      local c = tonumber(f['c:' .. x] or '0')
      if tk <= 0 then c = 0 end
      if rate > 0 then c = c + add * rshare[x] / rate end
      -- capped at the share, not at what the host lacks of it as Redis last saw: a small host
      -- is at its share whenever it reports, so a cap at its lack would throw away all the
      -- refill meant for it between its reports, and leave it what arrives in its own script
      c = math.min(c, math.max(0, alloc[x]))
      credit[x] = c
      csum = csum + c
    end
    if csum > math.max(0, tk) then
      for _, x in ipairs(hosts) do credit[x] = credit[x] * math.max(0, tk) / csum end
      csum = math.max(0, tk)
    end
    local common = math.max(0, tk - csum)
    -- Spare: when the pool is larger than the needs, a host may hold up to 8 x its need (never
    -- more than an equal share of the pool), so a slow key reports once in many checks instead
    -- of at every one. Bursts and skew are unaffected: there the needs use up the pool.
    local spare = math.max(0, pool)
    for _, x in ipairs(hosts) do spare = spare - alloc[x] end
    local target = alloc[h]
    if spare > 0 then
      target = math.max(target, math.min(8 * needs[h], pool / #hosts, target + spare))
    end
    -- Up to its fair share (alloc) from its credit and the common tokens; beyond it (spare)
    -- only from what is left after what the other hosts still lack of their shares: the pool
    -- counts the refill until the next round, which is not in the bucket yet, so an early
    -- reporter must not take the tokens another host's share needs now.
    local avail = credit[h] + common
    local base = math.min(math.max(0, alloc[h] - O), avail)
    local extra = math.max(0, target - O) - math.max(0, alloc[h] - O)
    local lack = 0
    for _, x in ipairs(hosts) do
      if x ~= h then lack = lack + math.max(0, alloc[x] - held[x] - credit[x]) end
    end
    L = math.floor(base + math.min(math.max(0, extra), math.max(0, avail - base - lack)))
    credit[h] = math.max(0, credit[h] - L)
    -- (a host's first report knows too little of its demand to be asked to give back)
    if tl and target < O - 1 then rel = math.floor(O - target) end
    tk = tk - L
    G = G + L
    -- report every round while below the target, or while holding a lease that hosts below
    -- theirs could use (so an idle host's lease goes back within a few rounds)
    local others = 0
    for _, x in ipairs(hosts) do
      if x ~= h then others = others + math.max(0, alloc[x] - held[x]) end
    end
    -- and on a busy key (demand at least half the rate) every host with demand reports every
    -- round: Redis' view of a quiet host's lease is an overestimate, and the cap
    -- B - sum of leases would then throw refill away exactly when it is needed
    local demand = 0
    for _, x in ipairs(hosts) do demand = demand + rates[x] end
    -- and a periodic burster always: it collects its lease in the rounds before its burst is
    -- due and gives it back after (its need moves with time, not with its reports); and a host
    -- that holds more than it would if one more host came (B / (hosts + 1)): only its own
    -- report can give that back, so it must hear of a newcomer within a round, not after R/3
    if alloc[h] - (O + L) >= 1 or (O + L >= 1 and others >= 1) or
       (needs[h] > 0 and demand >= 0.5 * rate) or
       (bn and bn >= 2 and bp and bp >= 4 * T and now <= bt + 1.5 * bp and bs > bmin) or
       O + L > B / (#hosts + 1) then
      want = 1
    end
    local set = {'tk', tk, 'ts', now, 'tr', tr, 'G:' .. h, G, 'U:' .. h, U, 'I:' .. h, inc, 'r:' .. h, r,
                 'p:' .. h, p, 't:' .. h, now, 'e:' .. h, ep, 's:' .. h, sq,
                 'q:' .. h, L .. ',' .. rel, 'rb:' .. h, rb}
    if hclock then
      set[#set + 1] = 'h:' .. h
      set[#set + 1] = ARGV[6 + 9 * #KEYS] -- as sent: a double would print 1e14 and up rounded
    end
    if bt then
      set[#set + 1] = 'bt:' .. h
      set[#set + 1] = bt
      set[#set + 1] = 'bc:' .. h
      set[#set + 1] = bc
      set[#set + 1] = 'bn:' .. h
      set[#set + 1] = bn
    end
    if bp then
      set[#set + 1] = 'bp:' .. h
      set[#set + 1] = bp
      set[#set + 1] = 'bs:' .. h
      set[#set + 1] = bs
    end
    for _, x in ipairs(hosts) do
      set[#set + 1] = 'c:' .. x
      set[#set + 1] = credit[x]
    end
    redis.call('HSET', k, unpack(set))
    redis.call('PEXPIRE', k, math.max(ttl, 2 * R / 1000))
    if #hosts > nmax then nmax = #hosts end
  end
  out[#out + 1] = L
  out[#out + 1] = rel
  out[#out + 1] = want
end
out[1] = nmax
return out
