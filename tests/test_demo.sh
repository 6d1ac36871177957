#!/usr/bin/env bash
# The HTTP demo end to end: rl-demo (2 worker processes, one segment, the production preset) on
# a free loopback port, checked over raw HTTP (python3), and rl-load against it; then rl-demo
# --no-limiter (the baseline of scripts/bench's HTTP row): the same routes without rl.
#
#   tests/test_demo.sh RL_DEMO RL_LOAD
#
# Prints one line per check and "N passed, N failed"; exits 1 when a check failed. The server
# is stopped and its segment removed on every exit path.
set -uo pipefail

demo=${1:?usage: test_demo.sh RL_DEMO RL_LOAD}
load=${2:?usage: test_demo.sh RL_DEMO RL_LOAD}

# ok, fail, free_port, wait_listening, finish
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/lib.sh"
check() { # check NAME CMD...
    local name=$1
    shift
    if "$@"; then ok "$name"; else fail "$name"; fi
}

tmp=$(mktemp -d)
shm="/rl-test-demo-${RL_TEST_TAG:+$RL_TEST_TAG-}$$-$RANDOM" # RL_TEST_TAG: scripts/test's run
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null
        for _ in $(seq 50); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$server_pid" 2>/dev/null
        wait "$server_pid" 2>/dev/null
    fi
    rm -f "/dev/shm${shm}"
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# http METHOD PATH [Header: value]...: one request on a fresh connection. Prints the status
# line, then each header line as received (with its CR shown as \r), an empty line, the body.
http() {
    python3 - "$port" "$@" <<'EOF'
import socket, sys
port, method, path, headers = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
req = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
req += "".join(h + "\r\n" for h in headers)
req += "Content-Length: 0\r\n\r\n"
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(req.encode())
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
head, _, body = data.partition(b"\r\n\r\n")
for line in (head + b"\r\n").split(b"\n")[:-1]:
    print(line.decode("latin-1").replace("\r", "\\r"))
print()
print(body.decode("latin-1"))
EOF
}

status_of() { head -n1 "$1" | awk '{print $2}'; }
header() { grep -i "^$2:" "$1" | head -n1 | sed -E 's/^[^:]*: ?//; s/\\r$//'; }
body_of() { sed -n '/^$/,$p' "$1" | sed 1d; }

# --- the command line ----------------------------------------------------------------------
silent() { "$@" >/dev/null 2>&1; }
check "rl-demo --help exits 0" silent "$demo" --help
check "rl-load --help exits 0" silent "$load" --help
"$demo" --bogus >/dev/null 2>"$tmp/err"
check "rl-demo rejects an unknown argument (exit 2)" test $? -eq 2
"$load" -n 1 http://192.0.2.1:80/ >/dev/null 2>"$tmp/err"
rc=$?
check "rl-load refuses a host that is not loopback (exit 2)" test $rc -eq 2
check "rl-load says why" grep -q 'loopback' "$tmp/err"

# --- the server ----------------------------------------------------------------------------
port=$(free_port)
# start_server [ARG]...: rl-demo on $port with 2 workers and the segment $shm; up=1 once it
# accepts connections.
# rl-demo listens before it forks its workers and prints its "listening on" line after the
# last fork: the port accepts early (connections wait in the backlog), so the line and the
# workers are waited for too (a slow start, e.g. under ASan on a busy machine, is no failure).
start_server() {
    "$demo" --port "$port" --workers 2 --shm "$shm" --unlink "$@" >"$tmp/server.log" 2>&1 &
    server_pid=$!
    up=0
    if wait_listening "$port" "$server_pid" 20 &&
        wait_until 20 grep -q '^rl-demo: listening on ' "$tmp/server.log"; then
        up=1
    fi
}
start_server
check "rl-demo listens on 127.0.0.1:$port" test $up -eq 1
if ((up == 0)); then
    cat "$tmp/server.log"
    finish
    exit 1
fi
check "rl-demo says LOCAL mode" grep -q 'LOCAL mode (no Redis)' "$tmp/server.log"
workers=$(pgrep -P "$server_pid" | wc -l)
check "rl-demo runs 2 worker processes" test "$workers" -eq 2

http GET /health >"$tmp/health"
check "GET /health is 200" test "$(status_of "$tmp/health")" = 200
for h in X-RateLimit-Limit X-RateLimit-Remaining X-RateLimit-Reset; do
    check "$h is a number" grep -qE "^$h: [0-9]+\\\\r$" "$tmp/health"
done
check "X-RateLimit-Scope is a scope name" grep -qE '^X-RateLimit-Scope: per_[a-z_]+\\r$' \
    "$tmp/health"
check "X-RateLimit-Algorithm is an algorithm" \
    grep -qE '^X-RateLimit-Algorithm: (token_bucket|sliding_window|fixed_window|gcra)\\r$' \
    "$tmp/health"
# Every header line ends in exactly one CR (printed as \r) and holds no other; a bare LF inside
# a value would have made a line that is not "Name: value".
check "no CR or LF inside header values" python3 -c '
import re, sys
lines = open(sys.argv[1], encoding="latin-1").read().split("\n")
heads = lines[1:lines.index("")]
assert heads, "no headers"
for h in heads:
    assert re.fullmatch(r"[!-9;-~]+: [^\\]*\\r", h), repr(h)' "$tmp/health"
check "the /health body is JSON" python3 -c 'import json, sys; json.loads(sys.stdin.read())' \
    < <(body_of "$tmp/health")

# Logins: rule "POST:/auth/login" allows 5 per 300 s per IP; the client is the
# X-Forwarded-For address because the peer (127.0.0.1) is a trusted proxy.
codes=""
for i in 1 2 3 4 5 6; do
    http POST /auth/login 'X-Forwarded-For: 192.0.2.77' >"$tmp/login$i"
    codes+="$(status_of "$tmp/login$i") "
done
check "logins 1-5 are 200, the 6th 429 (got: $codes)" test "$codes" = "200 200 200 200 200 429 "
check "the 429 carries Retry-After" grep -qE '^Retry-After: [0-9]+\\r$' "$tmp/login6"
check "the 429 says X-RateLimit-Remaining: 0" grep -qE '^X-RateLimit-Remaining: 0\\r$' \
    "$tmp/login6"
check "the 429 body is rl's JSON" python3 -c '
import json, sys
b = json.loads(sys.stdin.read())
assert b["error"] == "rate_limited", b
assert b["rule"] == "POST:/auth/login", b
assert b["retry_after"] > 0, b' < <(body_of "$tmp/login6")
http POST /auth/login 'X-Forwarded-For: 192.0.2.78' >"$tmp/other"
check "another client still logs in" test "$(status_of "$tmp/other")" = 200

http GET /api/users 'X-Forwarded-For: 198.51.100.3' 'X-User: alice' >"$tmp/users"
check "GET /api/users is 200" test "$(status_of "$tmp/users")" = 200
http POST /upload/a.txt 'X-Forwarded-For: 198.51.100.3' >"$tmp/upload"
check "POST /upload/a.txt is 200" test "$(status_of "$tmp/upload")" = 200
http GET /nowhere >"$tmp/nf"
check "an unknown route is 404 with headers" grep -qE '^X-RateLimit-Limit: ' "$tmp/nf"
check "... and status 404" test "$(status_of "$tmp/nf")" = 404
http PUT /api/test >"$tmp/put"
check "PUT /api/test is 405 with Allow: POST" grep -qE '^Allow: POST\\r$' "$tmp/put"
http GET /api/users 'X-Forwarded-For: not-an-ip' >"$tmp/badxff"
check "a malformed X-Forwarded-For is 400" test "$(status_of "$tmp/badxff")" = 400
http GET /rate-limits/health >"$tmp/rlh"
check "GET /rate-limits/health is 200" test "$(status_of "$tmp/rlh")" = 200
check "... and reports the segment" python3 -c '
import json, sys
b = json.loads(sys.stdin.read())
assert b["status"] == "healthy" and b["segment"] == sys.argv[1] and b["denied"] >= 1, b' \
    "$shm" < <(body_of "$tmp/rlh")
check "... and the limiter's time (requests, limiter_ns)" python3 -c '
import json, sys
b = json.loads(sys.stdin.read())
assert b["limiter"] == "on" and b["requests"] >= 10 and b["limiter_ns"] > 0, b' \
    < <(body_of "$tmp/rlh")

# --- rl-load --------------------------------------------------------------------------------
n=400
"$load" -n "$n" -c 4 --timeout 15 -X POST -d '{"test": "data"}' -H 'X-Forwarded-For: 192.0.2.200' \
    "http://127.0.0.1:$port/api/test" >"$tmp/load" 2>"$tmp/load.err"
check "rl-load exits 0" test $? -eq 0
for l in 'Total requests: ' 'Duration: [0-9.]+s$' 'Throughput: [0-9.]+ req/s$' \
    'Average latency: [0-9.]+ms$' '99th percentile: [0-9.]+ms$' 'Error rate: [0-9.]+%$' \
    'Allowed \(2xx\): ' 'Denied \(429\): '; do
    check "rl-load prints /^$l/" grep -qE "^$l" "$tmp/load"
done
num() { grep -E "^$1" "$tmp/load" | sed -E 's/^[^:]*: //; s/,//g'; }
total=$(num 'Total requests')
sum=$(($(num 'Allowed') + $(num 'Denied') + $(num 'Errors')))
check "total = $n" test "$total" = "$n"
check "allowed + denied + errors = $n (got $sum)" test "$sum" -eq "$n"
# The rule "*/api/*" holds one client to a bucket of 150 (refilled at 100 per minute: a slow
# run may see a few more): the rest is denied.
allowed=$(num 'Allowed')
check "allowed is the bucket of 150 (got $allowed)" test "$allowed" -ge 150 -a "$allowed" -le 155
"$load" -n 50 -c 2 --json "http://127.0.0.1:$port/api/users" >"$tmp/load.json" 2>/dev/null
check "rl-load --json" python3 -c '
import json, sys
b = json.load(open(sys.argv[1]))
assert b["total"] == 50 and b["allowed"] + b["denied"] + b["errors"] == 50, b' "$tmp/load.json"

# --- shutdown -------------------------------------------------------------------------------
kids=$(pgrep -P "$server_pid" | tr '\n' ' ')
kill -TERM "$server_pid"
rc=0
for _ in $(seq 100); do
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.05
done
wait "$server_pid" || rc=$?
server_pid=""
check "SIGTERM: rl-demo exits 0" test $rc -eq 0
left=0
for k in $kids; do
    kill -0 "$k" 2>/dev/null && left=$((left + 1))
done
check "no worker left behind" test $left -eq 0
check "--unlink removed the segment" test ! -e "/dev/shm${shm}"
check "rl-demo prints the limiter's time per request, and says it is wall time" grep -qE \
    '^rl-demo: [0-9]+ requests, [0-9]+ ns per request in rl.*wall time.*upper bound' \
    "$tmp/server.log"

# --- --no-limiter ---------------------------------------------------------------------------
start_server --no-limiter
check "rl-demo --no-limiter listens" test $up -eq 1
if ((up == 1)); then
    check "... and says so" grep -q -- '--no-limiter' "$tmp/server.log"
    for i in 1 2 3 4 5 6 7; do
        http POST /auth/login 'X-Forwarded-For: 192.0.2.77' >"$tmp/nl-login"
    done
    check "--no-limiter: a 7th login is still 200" test "$(status_of "$tmp/nl-login")" = 200
    check "--no-limiter: no X-RateLimit headers" bash -c "! grep -qi '^X-RateLimit-' '$tmp/nl-login'"
    http GET /rate-limits/health >"$tmp/nl-rlh"
    check "--no-limiter: /rate-limits/health says limiter off" python3 -c '
import json, sys
b = json.loads(sys.stdin.read())
assert b["limiter"] == "off" and b["checks"] == 0 and b["requests"] >= 7, b' \
        < <(body_of "$tmp/nl-rlh")
    kill -TERM "$server_pid"
    rc=0
    wait "$server_pid" || rc=$?
    server_pid=""
    check "--no-limiter: SIGTERM, exit 0" test $rc -eq 0
fi

if ((failed > 0)); then
    echo "--- server log"
    cat "$tmp/server.log"
    echo "--- rl-load output"
    cat "$tmp/load" "$tmp/load.err" 2>/dev/null
fi
finish
