#!/bin/sh
# rlctl as an operator runs it, against a segment that tests/rlctl_worker.c fills.
#
#   sh tests/test_rlctl.sh RLCTL WORKER CONFIGS_DIR
#
# Hermetic: its own segment /rl-ctl-<pid> and a temporary directory, both removed on exit (also
# on failure). Parses --json with python3. Prints one line per check, then "N passed, N failed";
# exits 1 on any failure. Sanitizer reports in any stderr of rlctl or the worker fail the check.
set -u

RLCTL=$1
WORKER=$2
CONFIGS=$3
# RL_TEST_TAG (scripts/test): this run's segments are told apart from a concurrent run's.
TAGP=${RL_TEST_TAG:+$RL_TEST_TAG-}
SEG=/rl-ctl-$TAGP$$
MISSING=/rl-ctl-$TAGP$$-missing
TMP=$(mktemp -d "${TMPDIR:-/tmp}/rlctl-test.XXXXXX") || exit 1
# ok, fail, run, start_serve, stop_serve, finish
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/lib.sh"
fail_files() {
    show "$TMP/out" "$TMP/err"
}

cleanup() {
    stop_serve
    rm -f "/dev/shm/rl-ctl-$TAGP$$" "/dev/shm/rl-ctl-$TAGP$$-missing" "/dev/shm/rl-ctl-$TAGP$$-bad" \
        "/dev/shm/rl-ctl-$TAGP$$-rate"
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_mapped PID SEGMENT: until process PID maps SEGMENT (it has attached), at most 10 s; a
# poll, not a guess at how long an attach takes on a loaded machine.
wait_mapped() {
    i=0
    while [ "$i" -lt 200 ]; do
        grep -qs "/dev/shm$2\$" "/proc/$1/maps" && return 0
        kill -0 "$1" 2>/dev/null || return 1
        sleep 0.05
        i=$((i + 1))
    done
    return 1
}

# expect_rc WHAT CODE CMD...: runs CMD and checks its exit code.
expect_rc() {
    what=$1
    code=$2
    shift 2
    run "$@"
    if [ "$rc" -eq "$code" ]; then
        ok "$what (exit $rc)"
    else
        fail "$what: exit $rc, expected $code"
    fi
}

# expect_err WHAT PATTERN: the last command's stderr matches the extended regex PATTERN.
expect_err() {
    if grep -qE "$2" "$TMP/err"; then
        ok "$1"
    else
        fail "$1: stderr does not match '$2'"
    fi
}

# expect_out WHAT PATTERN: the last command's stdout matches the extended regex PATTERN.
expect_out() {
    if grep -qE "$2" "$TMP/out"; then
        ok "$1"
    else
        fail "$1: stdout does not match '$2'"
    fi
}

# expect_json WHAT PYTHON: the last command's stdout is one JSON document `d` for which the
# python expression holds.
expect_json() {
    if python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(0 if eval(sys.argv[2]) else 1)' "$TMP/out" "$2" 2>"$TMP/pyerr"; then
        ok "$1"
    else
        cat "$TMP/pyerr"
        fail "$1: JSON check failed: $2"
    fi
}

# The worker's GET /api/x requests fall under the rule /api/* (its endpoint in the counters).
# An hour's window: the checks below read the worker's counts seconds later, and a window
# boundary in between would refill them (a 1 min window made that a few-percent flake).
cat >"$TMP/rules.yaml" <<'EOF'
version: 1
endpoints:
  - pattern: "/api/*"
    limits: [{requests: 5, window: 1h, algorithm: fixed_window, scope: per_ip}]
EOF
cat >"$TMP/rules2.yaml" <<'EOF'
version: 1
defaults:
  - {requests: 7, window: 1m, algorithm: fixed_window, scope: per_ip}
EOF

# --- the docs name only commands that exist (configuration.md once sent readers to `rlctl audit`)
ROOT=$CONFIGS/../..
bad_refs=""
for c in $(cat "$ROOT"/docs/*.md "$ROOT"/README.md "$ROOT"/examples/*.yaml 2>/dev/null |
    grep -oE '[`(]rlctl [a-z]+' | sed 's/^.rlctl //' | sort -u); do
    "$RLCTL" "$c" --help >/dev/null 2>&1 || bad_refs="$bad_refs $c"
done
if [ -z "$bad_refs" ] && ls "$ROOT"/docs/*.md >/dev/null 2>&1; then
    ok "every rlctl command the docs and examples name exists"
else
    fail "the docs or examples name rlctl commands that do not exist:$bad_refs"
fi

# --- no segment yet: usage and missing-segment errors -----------------------------------------
expect_rc "--version" 0 "$RLCTL" --version
expect_out "--version names rlctl" '^rlctl [0-9]'
expect_rc "--help" 0 "$RLCTL" --help
expect_rc "keys --help" 0 "$RLCTL" keys --help
expect_rc "no command" 2 "$RLCTL"
expect_rc "unknown command" 2 "$RLCTL" frobnicate
expect_rc "bad flag" 2 "$RLCTL" status --bogus --shm "$SEG"
expect_err "bad flag message" "unknown option '--bogus'.*--help"
expect_rc "bad --sort" 2 "$RLCTL" keys --sort size --shm "$SEG"
expect_rc "bad --limit" 2 "$RLCTL" keys --limit x --shm "$SEG"
expect_rc "--cluster is for stats only" 2 "$RLCTL" status --cluster --shm "$SEG"
expect_err "--cluster message" "unknown option '--cluster'"
expect_rc "stats --since without --cluster" 2 "$RLCTL" stats --since 1h --shm "$SEG"
expect_rc "bad --since" 2 "$RLCTL" stats --cluster --since 5x --shm "$SEG"
expect_err "bad --since says what" 'a duration: 90s, 30m, 1h, 7d'
expect_rc "get without KEY" 2 "$RLCTL" get --shm "$SEG"
expect_rc "missing segment: status" 1 "$RLCTL" status --shm "$MISSING"
expect_err "missing segment message" "no segment $MISSING \\(is a worker running\\? --shm NAME\\)"
expect_rc "missing segment: health is down" 2 "$RLCTL" health --shm "$MISSING"
expect_rc "bad segment name is a usage error" 2 "$RLCTL" status --shm 'no-slash'
expect_err "bad segment name says what a name is" "A-Za-z0-9"
expect_rc "bad segment name: health is a usage error too" 2 "$RLCTL" --shm bad health
expect_err "health with a bad name says so" "'bad' is not a segment name"
expect_rc "top --for nan" 2 "$RLCTL" top --for nan --shm "$SEG"
expect_err "top --for nan points to top's help" "see rlctl top --help"
expect_rc "serve --for 0" 2 "$RLCTL" serve --for 0 --shm "$SEG"
expect_err "serve --for 0 points to serve's help" "see rlctl serve --help"
expect_rc "missing segment: health text" 2 "$RLCTL" health --shm "$MISSING"
expect_out "missing segment: health says why" "^$MISSING: down \\(no segment $MISSING"
expect_rc "missing segment: health --json" 2 "$RLCTL" health --json --shm "$MISSING"
expect_json "missing segment: health --json has a reason" \
    "d['status'] == 'down' and 'no segment' in d['reason']"
if [ -e "/dev/shm/rl-ctl-$TAGP$$-missing" ]; then
    fail "rlctl created a segment"
else
    ok "rlctl never creates a segment"
fi

# A file in /dev/shm that is not an rl segment: a failure that says what to do.
{
    printf 'not an rl segment'
    head -c 8192 /dev/zero
} >"/dev/shm/rl-ctl-$TAGP$$-bad"
expect_rc "garbage segment: status" 1 "$RLCTL" status --shm "$SEG-bad"
expect_err "garbage segment message" "not an rl segment.*rm /dev/shm/rl-ctl-$TAGP$$-bad"
expect_rc "garbage segment: health is degraded" 1 "$RLCTL" health --shm "$SEG-bad"
rm -f "/dev/shm/rl-ctl-$TAGP$$-bad"

# A zero-filled file (a creator that died before its header, or a stray file): named at once,
# not blamed on "another process" after 5 s.
head -c 65536 /dev/zero >"/dev/shm/rl-ctl-$TAGP$$-bad"
expect_rc "zero-filled segment: status" 1 "$RLCTL" status --shm "$SEG-bad"
expect_err "zero-filled segment message" "all zeros and no process is initialising it"
expect_rc "zero-filled segment: health is degraded" 1 "$RLCTL" health --json --shm "$SEG-bad"
expect_json "zero-filled segment: health's reason" "'all zeros' in d['reason']"
rm -f "/dev/shm/rl-ctl-$TAGP$$-bad"

# --- fill a segment --------------------------------------------------------------------------
run "$WORKER" "$SEG" "$TMP/rules.yaml"
if [ "$rc" -eq 0 ] && grep -q '^allowed=8 denied=3$' "$TMP/out"; then
    ok "worker: 8 allowed, 3 denied"
else
    fail "worker (exit $rc)"
    echo "$passed passed, $failed failed"
    exit 1
fi
# An invalid REDIS_URL is named as such, never blamed on the segment, and its password is not
# repeated.
REDIS_URL='redis://:pw-secret@127.0.0.1:99999/0' run "$RLCTL" status --shm "$SEG"
if [ "$rc" -eq 1 ] && grep -q "REDIS_URL is invalid: .*port" "$TMP/err" &&
    ! grep -q "cannot attach\|segment name\|pw-secret" "$TMP/err"; then
    ok "invalid REDIS_URL: the message names REDIS_URL (exit 1)"
elif [ "$rc" -eq 1 ] && grep -q "REDIS_URL) is set, but this librl was built without Redis" \
    "$TMP/err" && ! grep -q "pw-secret" "$TMP/err"; then
    ok "REDIS_URL with a librl built without Redis (-Dredis=disabled): refused, says so (exit 1)"
else
    fail "invalid REDIS_URL message (exit $rc)"
fi

# RL_SHM selects the segment.
expect_rc "status via RL_SHM" 0 env RL_SHM="$SEG" "$RLCTL" status
expect_out "status table" "^segment +$SEG\$"
expect_out "status says redis is not configured" '^redis +not configured for rlctl'
expect_rc "status --json" 0 "$RLCTL" --shm "$SEG" status --json
expect_json "status fields" "d['segment'] == '$SEG' and d['keys_in_use'] == 2 and \
d['capacity'] >= 1024 and d['slots'] >= d['capacity'] and d['layout_version'] >= 1 and \
d['enospc'] == 0 and d['config_generation'] >= 1 and d['creator_pid'] > 0 and \
d['reclaimable'] == 0 and \
d['birth'].endswith('Z') and 'redis' in d"

expect_rc "stats --json" 0 "$RLCTL" stats --json --interval 0 --shm "$SEG"
expect_json "stats counts match the worker" "d['total_requests'] == 11 and \
d['allowed_requests'] == 8 and d['denied_requests'] == 3 and \
abs(d['denial_rate'] - 3 / 11) < 1e-9 and d['bypassed_requests'] == 0 and \
d['requests_per_minute'] is None"
expect_json "stats per endpoint" "[(e['endpoint'], e['allowed_requests'], \
e['denied_requests'], e['total_requests']) for e in d['endpoints']] == [('/api/*', 8, 3, 11)] \
and abs(d['endpoints'][0]['denial_rate'] - 3 / 11) < 1e-9"
expect_json "stats top denied endpoints and keys" "d['top_denied_endpoints'] == \
[{'endpoint': '/api/*', 'denied': 3}] and len(d['top_denied_keys']) == 1 and \
d['top_denied_keys'][0]['key'].endswith(':192.0.2.1') and d['top_denied_keys'][0]['denied'] == 3"
expect_rc "stats table" 0 "$RLCTL" stats --shm "$SEG"
expect_out "stats table rows" '^denied +3$'
expect_out "stats table: the endpoint row" '^/api/\* +8 +3 +27\.27% +0$'
expect_out "stats table: requests per minute" '^requests/minute +0 \(over the last'
# Requests per minute: measured over --interval while a worker runs (on a segment of its own).
"$WORKER" "$SEG-rate" "$TMP/rules.yaml" >/dev/null 2>&1
"$RLCTL" stats --json --interval 2 --shm "$SEG-rate" >"$TMP/rate.json" 2>"$TMP/rate.err" &
stats_pid=$!
wait_mapped "$stats_pid" "$SEG-rate"
"$WORKER" "$SEG-rate" - >/dev/null 2>&1
wait "$stats_pid"
cp "$TMP/rate.json" "$TMP/out"
expect_json "stats --interval: the worker's 11 requests in the rate" \
    "d['rate_interval_ms'] >= 1900 and 11 * 60 / 2.5 <= d['requests_per_minute'] <= 11 * 60 / 1.9 \
and d['endpoints'][0]['requests_per_minute'] == d['requests_per_minute'] and \
d['total_requests'] == 22"
expect_rc "stats --cluster without REDIS_URL" 1 env -u REDIS_URL "$RLCTL" stats --cluster \
    --shm "$SEG"
expect_err "stats --cluster says what it needs" 'set REDIS_URL'

expect_rc "keys --json" 0 "$RLCTL" keys --json --shm "$SEG"
expect_json "keys: both clients" "d['total'] == 2 and \
sorted(k['remaining'] for k in d['keys']) == [0, 2] and \
any('192.0.2.1' in k['key'] for k in d['keys']) and \
any('192.0.2.2' in k['key'] for k in d['keys']) and \
all(k['algorithm'] == 'fixed_window' and k['requests'] == 5 and k['window_ms'] == 3600000 \
for k in d['keys'])"
expect_rc "keys --sort remaining --limit 1" 0 "$RLCTL" keys --json --sort remaining --limit 1 \
    --shm "$SEG"
expect_json "keys: the exhausted one first" "d['shown'] == 1 and \
d['keys'][0]['remaining'] == 0 and '192.0.2.1' in d['keys'][0]['key']"
expect_rc "keys --prefix" 0 "$RLCTL" keys --json --prefix 'no-such-prefix' --shm "$SEG"
expect_json "keys: prefix filters" "d['total'] == 0 and d['keys'] == []"
expect_rc "keys table" 0 "$RLCTL" keys --sort key --shm "$SEG"
expect_out "keys table header" '^KEY +KEYLEN +ALGORITHM.* DENIED\*$'
expect_out "keys table footer" '^2 of 2 keys \(\* recent denials'
expect_rc "keys --sort denied" 0 "$RLCTL" keys --json --sort denied --shm "$SEG"
expect_json "keys: the most denied first" "d['keys'][0]['key'].endswith(':192.0.2.1') and \
[k['recent_denials'] for k in d['keys']] == [3, 0]"
expect_rc "keys --rule" 0 "$RLCTL" keys --json --rule '/api/*' --shm "$SEG"
expect_json "keys --rule: the rule's keys" "d['total'] == 2"
expect_rc "keys --rule default" 0 "$RLCTL" keys --json --rule default --shm "$SEG"
expect_json "keys --rule default: none (it has no layers)" "d['total'] == 0"
expect_rc "keys --rule of no rule" 1 "$RLCTL" keys --rule '/nope' --shm "$SEG"
expect_err "keys --rule says how rules are named" 'no rule "/nope".*config show'
"$RLCTL" keys --json --rule '/api/*' --shm "$SEG" >"$TMP/keys.json" 2>/dev/null
KEYA=$(python3 -c '
import json, sys
print([k for k in json.load(open(sys.argv[1]))["keys"] if "192.0.2.2" in k["key"]][0]["key"])' \
    "$TMP/keys.json")
expect_rc "get KEY" 0 "$RLCTL" get "$KEYA" --json --shm "$SEG"
expect_json "get: that key only" "d['total'] == 1 and d['keys'][0]['key'] == '$KEYA' and \
d['keys'][0]['limit'] == 5"
expect_rc "get of an unknown key" 1 "$RLCTL" get no-such-key --shm "$SEG"
expect_err "get of an unknown key says so" 'no live key "no-such-key"'

expect_rc "check" 0 "$RLCTL" check --shm "$SEG"
expect_out "check says sound" 'sound'
expect_rc "check --json" 0 "$RLCTL" check --json --shm "$SEG"
expect_json "check --json" "d['sound'] is True and d['damaged_slots'] == 0"

expect_rc "health" 0 "$RLCTL" health --shm "$SEG"
expect_rc "health --json" 0 "$RLCTL" health --json --shm "$SEG"
expect_json "health --json" "d['status'] == 'ok'"

expect_rc "tail --json" 0 "$RLCTL" tail --json -n 10 --shm "$SEG"
expect_json "tail: the 3 denials" "len(d['records']) == 3 and \
all(not r['allowed'] and r['limit'] == 5 and r['algorithm'] == 'fixed_window' \
and r['scope'] == 'per_ip' for r in d['records']) and \
sum('192.0.2.1' in r['key'] for r in d['records']) == 3"
expect_rc "tail -n 1" 0 "$RLCTL" tail --json -n 1 --shm "$SEG"
expect_json "tail -n 1: one record" "len(d['records']) == 1"
expect_rc "tail table" 0 "$RLCTL" tail --shm "$SEG"
expect_out "tail table rows" ' deny '
t0=$(date +%s)
expect_rc "tail -f --for 1" 0 "$RLCTL" tail -f --for 1 --shm "$SEG"
t1=$(date +%s)
if [ $((t1 - t0)) -le 3 ]; then
    ok "tail -f --for 1 stops in time"
else
    fail "tail -f --for 1 took $((t1 - t0)) s"
fi

# -f sees what a worker decides while it follows: the worker denies at least 3 more (its limit
# of 5 per hour; at least 3 even when a window boundary falls between the two runs).
"$RLCTL" tail -f --for 2 --json -n 1 --shm "$SEG" >"$TMP/follow" 2>"$TMP/follow.err" &
tail_pid=$!
wait_mapped "$tail_pid" "$SEG"
run "$WORKER" "$SEG" "$TMP/rules.yaml"
wait "$tail_pid"
tail_rc=$?
cp "$TMP/follow" "$TMP/out"
cp "$TMP/follow.err" "$TMP/err"
if [ "$tail_rc" -eq 0 ] && ! grep -qE 'Sanitizer|runtime error:' "$TMP/err"; then
    ok "tail -f --json (exit 0)"
else
    fail "tail -f --json: exit $tail_rc"
fi
expect_json "tail -f: records written while following" "len(d['records']) >= 4 and \
all(not r['allowed'] for r in d['records'])"

# SIGTERM ends -f with exit 0.
"$RLCTL" tail -f --shm "$SEG" >"$TMP/out" 2>"$TMP/err" &
tail_pid=$!
wait_mapped "$tail_pid" "$SEG"
kill -TERM "$tail_pid"
wait "$tail_pid"
tail_rc=$?
if [ "$tail_rc" -eq 0 ]; then
    ok "tail -f stops on SIGTERM (exit 0)"
else
    fail "tail -f on SIGTERM: exit $tail_rc"
fi

expect_rc "config show" 0 "$RLCTL" config show --shm "$SEG"
expect_out "config show: the rule" 'fixed_window'
expect_rc "config show --json" 0 "$RLCTL" config show --json --shm "$SEG"
expect_json "config show --json" "'fixed_window' in d['yaml'] and d['config_generation'] >= 1"
gen1=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["config_generation"])' \
    "$TMP/out")
expect_rc "config check good file" 0 "$RLCTL" config check "$TMP/rules2.yaml"
expect_rc "config check typo" 1 "$RLCTL" config check "$CONFIGS/typo.yaml"
expect_err "config check: file:line:col" 'typo\.yaml:9:24: .*windw'
expect_rc "config check without FILE" 2 "$RLCTL" config check
expect_rc "config frob" 2 "$RLCTL" config frob
expect_rc "config reload bad file" 1 "$RLCTL" config reload "$CONFIGS/typo.yaml" --shm "$SEG"
expect_rc "config reload" 0 "$RLCTL" config reload "$TMP/rules2.yaml" --json --shm "$SEG"
expect_json "config reload: a new generation" "d['loaded'] and d['config_generation'] > $gen1"
expect_rc "config show after reload" 0 "$RLCTL" config show --shm "$SEG"
expect_out "config show: the new rule" 'requests: 7'

expect_rc "metrics" 0 "$RLCTL" metrics --shm "$SEG"
expect_out "metrics per endpoint" '^rl_endpoint_requests_total\{endpoint="/api/\*",result="denied"\} [1-9]'
if python3 - "$TMP/out" <<'EOF' >"$TMP/pyerr" 2>&1; then
import re, sys
lines = open(sys.argv[1]).read().split("\n")
assert lines[-1] == "", "no final newline"
helped, typed, values = {}, {}, {}
sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"'
                    r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*\})? '
                    r'(-?[0-9.eE+-]+|NaN|[+-]Inf)$')
for ln in lines[:-1]:
    if ln.startswith("# HELP "):
        name = ln.split(" ")[2]
        assert name not in helped, "two HELP for " + name
        helped[name] = True
    elif ln.startswith("# TYPE "):
        _, _, name, typ = ln.split(" ")
        assert typ in ("counter", "gauge"), ln
        assert name in helped, "TYPE before HELP: " + ln
        assert name not in typed, "two TYPE for " + name
        assert name not in values, "TYPE after samples: " + name
        typed[name] = typ
    else:
        m = sample.match(ln)
        assert m, "not a sample line: %r" % ln
        name = m.group(1)
        assert name in helped and name in typed, "sample before HELP/TYPE: " + name
        float(m.group(3))
        values[name] = float(m.group(3))
for name, typ in typed.items():
    assert name in values, "no sample for " + name
    assert (typ == "counter") == name.endswith("_total"), "counter naming: " + name
for name in ("rl_checks_total", "rl_allowed_total", "rl_denied_total", "rl_bypassed_total",
             "rl_table_keys", "rl_table_capacity", "rl_enospc_total"):
    assert name in values, "missing " + name
# Two worker runs of 11 checks each (the second one during tail -f).
assert values["rl_checks_total"] == 22, values["rl_checks_total"]
assert values["rl_allowed_total"] + values["rl_denied_total"] == 22
assert values["rl_denied_total"] >= 6 and values["rl_table_keys"] == 2
EOF
    ok "metrics: exposition format and values"
else
    cat "$TMP/pyerr"
    fail "metrics: exposition format and values"
fi

# reset: a key's counters, then everything (confirmation required).
expect_rc "reset without KEY" 2 "$RLCTL" reset --shm "$SEG"
expect_err "reset without KEY says what" 'one KEY, --rule RULE or --all'
expect_rc "reset --all without --yes" 2 "$RLCTL" reset --all --shm "$SEG"
expect_err "reset --all asks for --yes" 'add --yes'
"$RLCTL" keys --json --shm "$SEG" >"$TMP/keys.json" 2>/dev/null
KEY1=$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
k = [k for k in d["keys"] if "192.0.2.1" in k["key"]][0]
assert len(k["key"]) == k["key_length"], "the key is longer than a slot keeps"
print(k["key"])' "$TMP/keys.json")
expect_rc "reset KEY" 0 "$RLCTL" reset "$KEY1" --shm "$SEG"
expect_out "reset KEY says how many" '^reset 1 counter of '
expect_rc "keys after reset KEY" 0 "$RLCTL" keys --json --shm "$SEG"
expect_json "reset KEY removed that key only" "d['total'] == 1 and \
not any('192.0.2.1' in k['key'] for k in d['keys'])"
expect_rc "reset of an unknown key" 1 "$RLCTL" reset "no-such-key" --shm "$SEG"
expect_out "reset of an unknown key says so" 'no counter of "no-such-key"'
expect_rc "reset --all --yes --json" 0 "$RLCTL" reset --all --yes --json --shm "$SEG"
expect_json "reset --all counts" "d['reset'] == 1 and d['failed'] == 0"
expect_rc "keys after reset --all" 0 "$RLCTL" keys --json --shm "$SEG"
expect_json "reset --all emptied the table" "d['total'] == 0"

# top: one refresh under a pseudo-terminal, then q.
if python3 - "$RLCTL" "$SEG" >"$TMP/top.out" 2>&1 <<'PY'
import os, pty, select, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], [sys.argv[1], "top", "--shm", sys.argv[2], "-n", "5"])
buf, t0, sent = b"", time.time(), False
while time.time() - t0 < 10:
    r, _, _ = select.select([fd], [], [], 0.2)
    if r:
        try:
            buf += os.read(fd, 4096)
        except OSError:
            break
    if not sent and buf.count(b"REMAINING") >= 2:  # the first screen and one refresh
        os.write(fd, b"q")
        sent = True
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        break
else:
    os.kill(pid, 9)
    sys.exit("top did not quit on q within 10 s")
out = buf.decode(errors="replace")
assert "\033[2J" in out, "no screen clear under a tty"
assert "checks/s" in out and "KEY (least left first)" in out, out
assert "ENDPOINT (most denied first)" in out, out
sys.exit(0 if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 else 1)
PY
then
    ok "top: refreshes under a pty and quits on q"
else
    fail "top under a pty"
    sed 's/^/--- /' "$TMP/top.out"
fi

# explain: what a request would get, taking nothing.
expect_rc "explain without a path" 2 "$RLCTL" explain GET --shm "$SEG"
"$RLCTL" stats --json --shm "$SEG" >"$TMP/before.json" 2>/dev/null
expect_rc "explain --json" 0 "$RLCTL" explain GET /api/x --ip 192.0.2.1 --json --shm "$SEG"
expect_json "explain names the layer and its key" "len(d['layers']) >= 1 and \
d['layers'][0]['key'].endswith(':192.0.2.1') and d['layers'][0]['limiting'] and \
d['bypassed'] is False"
expect_rc "explain table" 0 "$RLCTL" explain GET /api/x --ip 192.0.2.9 --shm "$SEG"
expect_out "explain table names the key" 'key .*:192\.0\.2\.9$'
expect_rc "stats after explain" 0 "$RLCTL" stats --json --shm "$SEG"
expect_json "explain counted nothing" \
    "d['total_requests'] == json.load(open('$TMP/before.json'))['total_requests']"

# bypass: the emergency list changed at run time; the worker's next checks are bypassed.
expect_rc "bypass without action" 2 "$RLCTL" bypass --shm "$SEG"
expect_err "bypass says which actions" 'add, rm or ls'
expect_rc "bypass add without a value" 2 "$RLCTL" bypass add --shm "$SEG"
expect_rc "bypass add --ip" 0 "$RLCTL" bypass add --ip 192.0.2.0/24 --shm "$SEG"
expect_out "bypass add says so" '^added address 192.0.2.0/24 to the bypass list'
expect_rc "bypass add --user" 0 "$RLCTL" bypass add --user ops-admin --shm "$SEG"
expect_rc "bypass ls --json" 0 "$RLCTL" bypass ls --json --shm "$SEG"
expect_json "bypass ls lists both" "d['ips'] == ['192.0.2.0/24'] and d['users'] == ['ops-admin']"
expect_rc "bypass add of a bad address" 1 "$RLCTL" bypass add --ip 300.1.1.1 --shm "$SEG"
expect_err "bypass bad address message" '300\.1\.1\.1'
"$RLCTL" stats --json --shm "$SEG" >"$TMP/before.json" 2>/dev/null
run "$WORKER" "$SEG" - # keeps the rule set (and its bypass list)
expect_rc "stats after bypass" 0 "$RLCTL" stats --json --shm "$SEG"
expect_json "the worker's requests were bypassed" "d['bypassed_requests'] - \
json.load(open('$TMP/before.json'))['bypassed_requests'] == 11"
expect_rc "bypass rm --ip" 0 "$RLCTL" bypass rm --ip 192.0.2.0/24 --shm "$SEG"
expect_rc "bypass rm --user" 0 "$RLCTL" bypass rm --user ops-admin --shm "$SEG"
expect_rc "bypass rm of an absent entry" 1 "$RLCTL" bypass rm --user ops-admin --shm "$SEG"
expect_err "bypass rm says it is absent" 'not on the bypass list'
expect_rc "bypass ls (empty)" 0 "$RLCTL" bypass ls --shm "$SEG"
expect_out "bypass ls says empty" 'is empty'

# serve: the REST endpoints over real HTTP (python3's urllib: curl is not a dependency).
run "$WORKER" "$SEG" "$TMP/rules.yaml"
printf 's3cret-token\n' >"$TMP/token"
chmod 600 "$TMP/token" # serve refuses a token file others can read
start_serve --token-file "$TMP/token"
# http METHOD PATH [TOKEN [BODY]]: prints "STATUS" then the body into $TMP/out.
http() {
    python3 - "$PORT" "$@" >"$TMP/out" 2>"$TMP/pyerr" <<'PY'
import sys, urllib.request, urllib.error
port, method, path = sys.argv[1], sys.argv[2], sys.argv[3]
token = sys.argv[4] if len(sys.argv) > 4 else ""
body = sys.argv[5].encode() if len(sys.argv) > 5 else None
req = urllib.request.Request("http://127.0.0.1:%s%s" % (port, path), data=body, method=method)
if token:
    req.add_header("Authorization", "Bearer " + token)
try:
    r = urllib.request.urlopen(req, timeout=5)
    code, data = r.status, r.read()
except urllib.error.HTTPError as e:
    code, data = e.code, e.read()
sys.stdout.write("%d\n%s" % (code, data.decode()))
PY
}
# expect_http WHAT CODE METHOD PATH [TOKEN [BODY]]
expect_http() {
    local what=$1 code=$2
    shift 2
    http "$@"
    local got
    got=$(head -n 1 "$TMP/out")
    if [ "$got" = "$code" ]; then
        ok "$what (HTTP $code)"
        tail -n +2 "$TMP/out" >"$TMP/body" && mv "$TMP/body" "$TMP/out"
    else
        fail "$what: HTTP $got, expected $code"
        sed 's/^/--- /' "$TMP/out" "$TMP/pyerr"
    fi
}
expect_http "serve /health" 200 GET /health
expect_json "serve /health says ok" "d['status'] == 'ok' and d['segment'] == '$SEG'"
expect_http "serve /rate-limits/metrics" 200 GET /rate-limits/metrics
expect_json "serve metrics count the workers" "d['total_requests'] == 44 and \
d['allowed_requests'] + d['denied_requests'] == 44 and d['denied_requests'] >= 9"
expect_http "serve real-time" 200 GET /rate-limits/metrics/real-time
expect_json "serve real-time fields" "'requests_per_minute' in d and d['total_requests'] == 44"
expect_http "serve /rate-limits/config" 200 GET /rate-limits/config
expect_json "serve config is the rule set" "'version: 1' in d['yaml']"
expect_http "serve /metrics" 200 GET /metrics
expect_out "serve /metrics is Prometheus text" '^rl_checks_total 44$'
# An endpoint is a request path (resolved through the rules) or a rule's pattern. /api/* counted
# three worker runs of 11 (the bypassed run is not an endpoint's).
expect_http "serve endpoint URL-encoded" 200 GET /rate-limits/metrics/endpoint/%2Fapi%2Fusers
expect_json "serve decodes the endpoint and finds its rule" "d['endpoint'] == '/api/users' and \
d['rule'] == '/api/*' and d['total_requests'] == 33 and \
d['allowed_requests'] + d['denied_requests'] == 33 and d['denied_requests'] >= 9 and \
d['top_denied_keys'][0]['key'].endswith(':192.0.2.1')"
expect_http "serve endpoint by its pattern" 200 GET /rate-limits/metrics/endpoint/%2Fapi%2F%2A
expect_json "serve endpoint by pattern: the same counts" "d['rule'] == '/api/*' and \
d['total_requests'] == 33"
expect_http "serve endpoint with a method" 200 GET \
    /rate-limits/metrics/endpoint/POST%3A%2Fother
expect_json "serve endpoint: no rule, the defaults" "d['rule'] == '(default)'"
expect_http "serve endpoint that is no path" 404 GET /rate-limits/metrics/endpoint/nope
expect_json "serve endpoint 404 says what to give" "'request path' in d['error']"
expect_http "serve unknown path" 404 GET /nope
expect_http "serve reset without a token" 401 POST /rate-limits/reset "" '{"all": true}'
expect_http "serve reset with a wrong token" 403 POST /rate-limits/reset nope '{"all": true}'
expect_http "serve reset with a bad body" 400 POST /rate-limits/reset s3cret-token '{"x": 1}'
expect_http "serve reset all" 200 POST /rate-limits/reset s3cret-token '{"all": true}'
expect_json "serve reset all counts" "d['reset'] == 2 and d['failed'] == 0"
stop_serve
if grep -q 'reset from 127.0.0.1 refused: no bearer token' "$TMP/serve.err" &&
    grep -q 'reset from 127.0.0.1 refused: wrong token' "$TMP/serve.err" &&
    grep -q '127.0.0.1 reset every key' "$TMP/serve.err" && ! grep -q 's3cret' "$TMP/serve.err"; then
    ok "serve logs who reset what, never the token"
else
    fail "serve log"
    sed 's/^/--- /' "$TMP/serve.err"
fi
expect_rc "keys after serve reset" 0 "$RLCTL" keys --json --shm "$SEG"
expect_json "serve reset emptied the table" "d['total'] == 0"

# reset --rule: the keys of one rule's layers.
run "$WORKER" "$SEG" "$TMP/rules.yaml"
expect_rc "reset --rule" 0 "$RLCTL" reset --rule '/api/*' --json --shm "$SEG"
expect_json "reset --rule: both keys of /api/*" "d['reset'] == 2 and d['rule'] == '/api/*'"
expect_rc "keys after reset --rule" 0 "$RLCTL" keys --json --shm "$SEG"
expect_json "reset --rule emptied the rule's keys" "d['total'] == 0"
expect_rc "reset --rule and a KEY" 2 "$RLCTL" reset --rule '/api/*' some-key --shm "$SEG"

# tail --syslog: the records reach syslog. A private mount namespace puts a datagram socket of
# the test's own at /dev/log (the real /dev/shm bound inside), so nothing reaches the host's
# log; needs root and unshare(1), else skipped (said so).
run "$WORKER" "$SEG" "$TMP/rules.yaml"
python3 - "$RLCTL" "$SEG" "$TMP" >"$TMP/out" 2>"$TMP/err" <<'PY'
import os, socket, subprocess, sys
rlctl, seg, tmp = sys.argv[1:4]
dev = os.path.join(tmp, "dev")
os.makedirs(os.path.join(dev, "shm"))
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(os.path.join(dev, "log"))
script = 'mount --rbind /dev/shm "$1/shm" && mount --rbind "$1" /dev && exec "$2" tail -n 3 --syslog --shm "$3"'
try:
    r = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", dev, rlctl, seg],
                       capture_output=True, timeout=20)
except FileNotFoundError:
    print("skip: no unshare(1)")
    sys.exit(77)
if r.returncode != 0 and b"mount" in r.stderr + r.stdout or b"unshare" in r.stderr:
    print("skip: cannot make a mount namespace here:", r.stderr.decode(errors="replace").strip())
    sys.exit(77)
s.settimeout(2)
msgs = []
try:
    while len(msgs) < 3:
        msgs.append(s.recv(4096).decode(errors="replace"))
except socket.timeout:
    pass
print("\n".join(msgs))
sys.stderr.write(r.stderr.decode(errors="replace"))
ok = r.returncode == 0 and len(msgs) == 3 and all("rl-audit[" in m and " deny " in m and
                                                  "key=" in m for m in msgs)
sys.exit(0 if ok else 1)
PY
case $? in
0) ok "tail --syslog: three records reached syslog" ;;
77) ok "tail --syslog: $(cat "$TMP/out")" ;;
*) fail "tail --syslog" ;;
esac

# check --repair: a damaged slot (its key length zeroed in the segment file) is reported, the
# repair is refused while another process maps the segment, then removes the slot.
python3 - "/dev/shm$SEG" <<'PY'
import struct, sys
with open(sys.argv[1], "r+b") as f:
    data = f.read()
    p = data.rfind(b":i:192.0.2.2")  # the last copy: the slot table comes last
    slot = p - 8 - 40                # "<tag>" before it; the key prefix at offset 40
    assert slot % 64 == 0, slot
    meta, = struct.unpack_from("<Q", data, slot + 32)
    f.seek(slot + 32)
    f.write(struct.pack("<Q", meta & ~(0xffff << 32)))
PY
expect_rc "check finds the damaged slot" 1 "$RLCTL" check --json --shm "$SEG"
expect_json "check reports it" "d['sound'] is False and d['damaged_slots'] == 1 and \
'key length 0' in d['problems'][0]"
"$RLCTL" tail -f --for 10 --shm "$SEG" >/dev/null 2>&1 &
holder=$!
wait_mapped "$holder" "$SEG"
expect_rc "check --repair while a process maps it" 1 "$RLCTL" check --repair --shm "$SEG"
expect_err "check --repair names the process" "pid $holder"
kill "$holder" 2>/dev/null
wait "$holder" 2>/dev/null
expect_rc "check --repair" 0 "$RLCTL" check --repair --shm "$SEG"
expect_out "check --repair says it removed the slot" '\(removed\)'
expect_rc "check after the repair" 0 "$RLCTL" check --json --shm "$SEG"
expect_json "sound again" "d['sound'] is True"

finish
