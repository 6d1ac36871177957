#!/bin/sh
# rlctl with Redis (suite 'redis'): a worker's GLOBAL layer reaches Redis, `rlctl serve` keeps
# the sync going as its leader, `status` and `health` report Redis and the sync, `reset` removes a
# GLOBAL key's cluster-wide state, and `health` is degraded when Redis cannot be reached.
#   sh tests/test_rlctl_redis.sh RLCTL WORKER
# Needs RL_TEST_REDIS_URL and RL_TEST_REDIS_ADMIN_URL (scripts/test); exits 77 (skipped) without
# them, unless RL_TEST_REDIS_REQUIRED is set.
set -u
RLCTL=$1
WORKER=$2
if [ -z "${RL_TEST_REDIS_URL:-}" ]; then
    if [ -n "${RL_TEST_REDIS_REQUIRED:-}" ]; then
        echo "RL_TEST_REDIS_URL unset under scripts/test" >&2
        exit 1
    fi
    echo "skipped: run through scripts/test (RL_TEST_REDIS_URL unset)"
    exit 77
fi
SEG=/rl-ctlr-${RL_TEST_TAG:+$RL_TEST_TAG-}$$ # RL_TEST_TAG: scripts/test's run
TMP=$(mktemp -d "${TMPDIR:-/tmp}/rlctl-redis.XXXXXX")
# ok, fail, free_port, stop_serve, finish
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/lib.sh"
cleanup() {
    stop_serve
    [ -n "${PIDS:-}" ] && kill $PIDS 2>/dev/null
    rm -f "/dev/shm$SEG" "/dev/shm$SEG-a" "/dev/shm$SEG-b"
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
# admin: redis-cli against the suite's standalone server as its admin (KEYS, DEL).
admin() {
    python3 - "$RL_TEST_REDIS_ADMIN_URL" "$@" <<'PY'
import socket, sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
s = socket.create_connection((u.hostname, u.port), 2)
def cmd(*a):
    s.sendall(("*%d\r\n" % len(a) + "".join("$%d\r\n%s\r\n" % (len(x), x) for x in a)).encode())
    f = s.makefile("rb")
    line = f.readline().decode().rstrip()
    if line[0] == "*":
        return [f.readline() and f.readline().decode().rstrip() for _ in range(int(line[1:]))]
    return line
if u.password:
    cmd("AUTH", urllib.parse.unquote(u.password))
r = cmd(*sys.argv[2:])
print("\n".join(r) if isinstance(r, list) else r)
PY
}

cat >"$TMP/rules.yaml" <<YAML
version: 1
defaults:
  - {name: cluster, requests: 5, window: 60s, algorithm: token_bucket, scope: per_ip, mode: global}
YAML
# A worker with REDIS_URL: its checks create GLOBAL keys.
if REDIS_URL=$RL_TEST_REDIS_URL "$WORKER" "$SEG" "$TMP/rules.yaml" >"$TMP/w.out" 2>&1; then
    ok "worker with a GLOBAL layer"
else
    fail "worker"
    cat "$TMP/w.out"
fi
# rlctl serve with REDIS_URL leads the sync once the worker is gone.
PORT=$(free_port)
REDIS_URL=$RL_TEST_REDIS_URL "$RLCTL" serve --shm "$SEG" --listen "127.0.0.1:$PORT" --for 30 \
    >/dev/null 2>"$TMP/serve.err" &
SERVE_PID=$!
led=0
for _ in $(seq 100); do
    REDIS_URL=$RL_TEST_REDIS_URL "$RLCTL" status --json --shm "$SEG" >"$TMP/status.json" 2>/dev/null
    if python3 -c "
import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(0 if d['sync']['leader_pid'] == int(sys.argv[2]) and d['sync']['rounds'] > 0 else 1)" \
        "$TMP/status.json" "$SERVE_PID" 2>/dev/null; then
        led=1
        break
    fi
    sleep 0.1
done
if [ $led = 1 ]; then ok "rlctl serve leads the sync"; else
    fail "rlctl serve did not lead the sync"
    cat "$TMP/status.json" "$TMP/serve.err"
fi
if python3 -c "
import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(0 if d['redis'] == 'connected' and d['sync']['fallback'] is False else 1)" \
    "$TMP/status.json"; then ok "status: Redis connected, synced"; else fail "status fields"; fi
if REDIS_URL=$RL_TEST_REDIS_URL "$RLCTL" health --shm "$SEG" >"$TMP/h.out" 2>&1; then
    ok "health with Redis up: exit 0"
else
    fail "health with Redis up"
    cat "$TMP/h.out"
fi
# The worker's GLOBAL keys reached Redis; reset removes the key's cluster-wide state.
# (the sync reports them within a round: poll, at most 10 s)
i=0
while [ "$i" -lt 100 ]; do
    before=$(admin KEYS 'rl:g:*' | grep -c 'rl:g:')
    [ "$before" -ge 2 ] && break
    sleep 0.1
    i=$((i + 1))
done
if [ "$before" -ge 2 ]; then ok "GLOBAL keys in Redis ($before)"; else fail "GLOBAL keys in Redis: $before"; fi
# --rule finds GLOBAL keys too (a GLOBAL slot shows only its layer's 8-digit tag).
REDIS_URL=$RL_TEST_REDIS_URL "$RLCTL" keys --rule default --json --shm "$SEG" >"$TMP/k.json" 2>&1
if python3 -c "
import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(0 if d['total'] >= 2 and all(k['recent_denials'] is None for k in d['keys']) else 1)" \
    "$TMP/k.json"; then ok "keys --rule lists the GLOBAL keys"; else
    fail "keys --rule with GLOBAL keys"
    cat "$TMP/k.json"
fi
# GLOBAL slots keep the key's first 8 bytes only: reset them all by slot.
if REDIS_URL=$RL_TEST_REDIS_URL "$RLCTL" reset --all --yes --shm "$SEG" >"$TMP/r.out" 2>&1; then
    ok "reset --all with REDIS_URL"
else
    fail "reset --all"
    cat "$TMP/r.out"
fi
stop_serve
after=$(admin KEYS 'rl:g:*' | grep -c 'rl:g:')
if [ "$after" -eq 0 ]; then ok "reset removed the cluster-wide state"; else
    fail "rl:g:* keys left after reset: $after"
fi
# Monitoring rollups: two hosts (two segments: a host is host name + segment) count requests;
# each one's `rlctl serve`, leading its segment's sync with ENABLE_RATE_LIMIT_MONITORING, pushes
# the counts to Redis; `stats --cluster` sums them.
admin KEYS 'rl:m:*' | grep 'rl:m:' | while read -r k; do admin DEL "$k" >/dev/null; done
cat >"$TMP/local.yaml" <<YAML
version: 1
endpoints:
  - pattern: "/api/*"
    limits: [{requests: 5, window: 60s, algorithm: fixed_window, scope: per_ip}]
YAML
for h in a b; do
    "$WORKER" "$SEG-$h" "$TMP/local.yaml" >"$TMP/w-$h.out" 2>&1 || fail "worker $h"
done
PIDS=
for h in a b; do
    P=$(free_port)
    ENABLE_RATE_LIMIT_MONITORING=true REDIS_URL=$RL_TEST_REDIS_URL "$RLCTL" serve \
        --shm "$SEG-$h" --listen "127.0.0.1:$P" --for 20 >/dev/null 2>"$TMP/serve-$h.err" &
    PIDS="$PIDS $!"
done
got=0
for _ in $(seq 50); do
    REDIS_URL=$RL_TEST_REDIS_URL "$RLCTL" stats --cluster --since 5m --json --shm "$SEG-a" \
        >"$TMP/cluster.json" 2>"$TMP/cluster.err"
    if python3 -c "
import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(0 if d['hosts'] == 2 and d['total_requests'] == 22 else 1)" "$TMP/cluster.json" \
        2>/dev/null; then
        got=1
        break
    fi
    sleep 0.2
done
for p in $PIDS; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
if [ $got = 1 ] && python3 -c "
import json, sys
d = json.load(open(sys.argv[1]))
e = {x['endpoint']: x for x in d['endpoints']}
ok = (d['scope'] == 'cluster' and d['allowed_requests'] == 16 and d['denied_requests'] == 6
      and e['/api/*']['allowed_requests'] == 16 and e['/api/*']['denied_requests'] == 6
      and d['top_denied_endpoints'] == [{'endpoint': '/api/*', 'denied': 6}]
      and abs(d['requests_per_minute'] - 22 / 5) < 1e-9)
sys.exit(0 if ok else 1)" "$TMP/cluster.json"; then
    ok "stats --cluster: both hosts' counts, summed"
else
    fail "stats --cluster"
    cat "$TMP/cluster.json" "$TMP/cluster.err" "$TMP/w-a.out" "$TMP/serve-a.err"
fi
# A second push adds only what is new: a third run on host a, pushed by a new serve.
"$WORKER" "$SEG-a" - >/dev/null 2>&1
P=$(free_port)
ENABLE_RATE_LIMIT_MONITORING=true REDIS_URL=$RL_TEST_REDIS_URL "$RLCTL" serve --shm "$SEG-a" \
    --listen "127.0.0.1:$P" --for 20 >/dev/null 2>&1 &
SERVE_PID=$!
got=0
for _ in $(seq 50); do
    REDIS_URL=$RL_TEST_REDIS_URL "$RLCTL" stats --cluster --json --shm "$SEG-a" \
        >"$TMP/cluster.json" 2>/dev/null
    if python3 -c "
import json, sys
sys.exit(0 if json.load(open(sys.argv[1]))['total_requests'] == 33 else 1)" \
        "$TMP/cluster.json" 2>/dev/null; then
        got=1
        break
    fi
    sleep 0.2
done
stop_serve
if [ $got = 1 ]; then ok "stats --cluster: a later push adds only the new counts (33)"; else
    fail "stats --cluster after a second push"
    cat "$TMP/cluster.json"
fi
rm -f "/dev/shm$SEG-a" "/dev/shm$SEG-b"

# Redis unreachable: degraded.
DEAD=$(free_port)
REDIS_URL=redis://127.0.0.1:$DEAD "$RLCTL" health --shm "$SEG" >"$TMP/h.out" 2>&1
rc=$?
if [ $rc -eq 1 ] && grep -q 'Redis unreachable' "$TMP/h.out"; then
    ok "health with Redis down: exit 1, says why"
else
    fail "health with Redis down: exit $rc"
    cat "$TMP/h.out"
fi
finish
