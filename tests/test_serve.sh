#!/bin/sh
# rlctl serve under hostile clients, as a user runs it (real rlctl, real sockets from python3):
#   - 1,100 idle connections (more than select() can watch: descriptors above 1023) from 20
#     loopback addresses: /health still answers;
#   - 1,100 connections from one address: the per-address limit closes the excess at once,
#     /health from another address answers, and the refusals are logged a few lines only;
#   - an idle connection is closed well before 10 s;
#   - a reset key holding "\n" cannot forge a log line;
#   - --token-file readable by others is refused, readable by its group warned about;
#   - --listen with a port that is not all digits is a usage error (exit 2).
#
#   sh tests/test_serve.sh RLCTL WORKER
#
# Hermetic: its own segment and temporary directory, removed on exit; serve runs on a free
# loopback port and is stopped on exit (also on failure). Waits poll for conditions.
set -u

RLCTL=$1
WORKER=$2
SEG=/rl-srv-${RL_TEST_TAG:+$RL_TEST_TAG-}$$
TMP=$(mktemp -d "${TMPDIR:-/tmp}/rlctl-serve.XXXXXX") || exit 1
# ok, fail, free_port, start_serve, stop_serve, finish
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/lib.sh"
fail_files() {
    show "$TMP/out" "$TMP/err" "$TMP/serve.err"
}

cleanup() {
    stop_serve
    rm -f "/dev/shm$SEG"
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A segment with a rule set (the worker creates it and exits).
cat >"$TMP/rules.yaml" <<'EOF2'
version: 1
endpoints:
  - pattern: "/api/*"
    limits: [{requests: 5, window: 1h, algorithm: fixed_window, scope: per_ip}]
EOF2
"$WORKER" "$SEG" "$TMP/rules.yaml" >"$TMP/out" 2>"$TMP/err" || {
    fail "the worker could not fill $SEG"
    exit 1
}

# --- usage: --listen ---------------------------------------------------------------------------
for bad in "127.0.0.1:9x" ":+9091" "127.0.0.1:+9091" "127.0.0.1: 9091" "127.0.0.1:99999"; do
    "$RLCTL" serve --shm "$SEG" --listen "$bad" --for 1 >"$TMP/out" 2>"$TMP/err"
    rc=$?
    if [ "$rc" -eq 2 ] && grep -q "PORT 1 to 65535 in digits" "$TMP/err"; then
        ok "--listen '$bad' is a usage error (exit 2)"
    else
        fail "--listen '$bad': exit $rc, expected 2 with a message"
    fi
done

# --- --token-file permissions ----------------------------------------------------------------
printf 's3cret-token\n' >"$TMP/token"
chmod 644 "$TMP/token"
"$RLCTL" serve --shm "$SEG" --listen "127.0.0.1:$(free_port)" --token-file "$TMP/token" \
    --for 1 >"$TMP/out" 2>"$TMP/err"
rc=$?
if [ "$rc" -eq 1 ] && grep -q "readable by other users (mode 0644): refusing" "$TMP/err" &&
    grep -q "chmod 600" "$TMP/err"; then
    ok "--token-file readable by others is refused (exit 1, says chmod 600)"
else
    fail "--token-file 0644: exit $rc"
fi
chmod 640 "$TMP/token"
if start_serve --token-file "$TMP/token" &&
    grep -q "warning: --token-file .* readable by its group (mode 0640)" "$TMP/serve.err"; then
    ok "--token-file readable by its group: serve starts with a warning"
else
    fail "--token-file 0640"
fi
stop_serve
chmod 600 "$TMP/token"

# --- escaped log lines, idle timeout ---------------------------------------------------------
if ! start_serve --token-file "$TMP/token"; then
    fail "serve did not start"
    exit 1
fi
if grep -q "warning" "$TMP/serve.err"; then
    fail "--token-file 0600 warned"
else
    ok "--token-file 0600: no warning"
fi
python3 - "$PORT" >"$TMP/out" 2>"$TMP/err" <<'PY'
import json, sys, urllib.request, urllib.error
port = sys.argv[1]
body = json.dumps({"key": "k1\nrlctl serve: 10.0.0.1 reset every key (exit 0)\x1b[31m"}).encode()
req = urllib.request.Request("http://127.0.0.1:%s/rate-limits/reset" % port, data=body,
                             method="POST")
req.add_header("Authorization", "Bearer s3cret-token")
try:
    urllib.request.urlopen(req, timeout=10)
except urllib.error.HTTPError as e:
    print(e.code)
PY
# The reset's log line is written before the answer: it is there now.
if grep -q '^rlctl serve: 127.0.0.1 reset key "k1\\nrlctl serve: 10.0.0.1 reset every key (exit 0)\\x1b\[31m"' "$TMP/serve.err" &&
    ! grep -q '^rlctl serve: 10.0.0.1' "$TMP/serve.err"; then
    ok "a reset key holding a newline is escaped in the log (no forged line)"
else
    fail "reset key escaping"
fi

python3 - "$PORT" >"$TMP/out" 2>"$TMP/err" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port), 5)
t0 = time.monotonic()
s.settimeout(15)
try:
    data = s.recv(1)
except OSError as e:
    data = None
dt = time.monotonic() - t0
print("closed after %.1f s (%r)" % (dt, data))
# 5 s configured; 9 s leaves room for a loaded machine and is still under the old 10 s.
sys.exit(0 if data == b"" and dt < 9.0 else 1)
PY
if [ $? -eq 0 ]; then
    ok "an idle connection is closed before 10 s: $(cat "$TMP/out")"
else
    fail "idle timeout: $(cat "$TMP/out")"
fi
stop_serve

# --- 1,100 idle connections ------------------------------------------------------------------
# $1: how many source addresses (127.0.0.2 ...) the connections come from. Holds them open,
# then GET /health from 127.0.0.250; prints what it saw; exit 0 when /health answered 200.
flood() {
    python3 - "$PORT" "$1" <<'PY'
import json, resource, socket, sys, time
port, nsrc = int(sys.argv[1]), int(sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if soft < 1300:
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
socks = []
for i in range(1100):
    s = socket.socket()
    s.bind(("127.0.0.%d" % (2 + i % nsrc), 0))
    s.settimeout(5)
    try:
        s.connect(("127.0.0.1", port))
        socks.append(s)
    except OSError as e:
        print("connect %d: %s" % (i, e))
        s.close()
        break
# Let serve accept them all: it has when a connection it accepted last answers (or its
# refusal closed it). The probe below is the real check; this only orders things.
time.sleep(0)
def health():
    c = socket.socket()
    c.bind(("127.0.0.250", 0))
    c.settimeout(10)
    c.connect(("127.0.0.1", port))
    c.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        b = c.recv(65536)
        if not b:
            break
        data += b
    c.close()
    return data
t0 = time.monotonic()
try:
    data = health()
except OSError as e:
    data = ("error: %s" % e).encode()
# Which of the idle connections serve closed at once (refused by a limit).
closed = 0
for s in socks:
    s.setblocking(False)
    try:
        if s.recv(1) == b"":
            closed += 1
    except BlockingIOError:
        pass
    except OSError:
        closed += 1
print("held %d connections from %d addresses, %d closed by serve; /health: %s" %
      (len(socks), nsrc, closed, data.split(b"\r\n", 1)[0].decode(errors="replace")))
for s in socks:
    s.close()
sys.exit(0 if data.startswith(b"HTTP/1.1 200") else 1)
PY
}

if ! start_serve; then
    fail "serve did not start"
    exit 1
fi
if flood 20 >"$TMP/out" 2>"$TMP/err"; then
    ok "1,100 idle connections from 20 addresses: /health answers ($(tail -n 1 "$TMP/out"))"
else
    fail "1,100 idle connections from 20 addresses: $(tail -n 1 "$TMP/out")"
fi
stop_serve

if ! start_serve; then
    fail "serve did not start"
    exit 1
fi
t_flood=$(date +%s)
if flood 1 >"$TMP/out" 2>"$TMP/err"; then
    ok "1,100 connections from one address: /health from another answers ($(tail -n 1 "$TMP/out"))"
else
    fail "1,100 connections from one address: $(tail -n 1 "$TMP/out")"
fi
stop_serve
# About 1,036 refusals: one line per 10 s at most (then a count), however slow the machine.
most=$(((($(date +%s) - t_flood) / 10) + 2))
lines=$(grep -c "limit" "$TMP/serve.err")
if [ "$lines" -ge 1 ] && [ "$lines" -le "$most" ]; then
    ok "refused connections are logged rate-limited: $lines line(s), at most $most"
else
    fail "refused connections: $lines log lines (at most $most)"
fi

finish
