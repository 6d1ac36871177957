# shellcheck shell=sh
# tests/lib.sh: what the shell suites share (test_rlctl.sh, test_serve.sh, test_rlctl_redis.sh,
# test_demo.sh). POSIX sh, sourced after the suite's `set -u`:
#
#   . "$(dirname "$0")/lib.sh"
#
#   ok WHAT, fail WHAT        count one check and print it ("ok: ..." or "FAIL: ..."); fail then
#                             calls fail_files, which the suite may redefine to show its files
#                             (show FILE...: the first 40 lines of each non-empty one)
#   run CMD...                CMD's stdout in $TMP/out, stderr in $TMP/err, exit code in $rc; a
#                             sanitizer report in that stderr counts as a failed check
#   free_port                 prints a free loopback TCP port (bound and closed again)
#   wait_listening PORT PID S until 127.0.0.1:PORT accepts a connection (0), or process PID has
#                             exited or S seconds have passed (1): one python3 polls, since
#                             starting one per try costs ~1 s on a loaded machine
#   wait_until S CMD...       runs CMD every 50 ms until it succeeds (0), at most S seconds'
#                             worth of tries (1)
#   start_serve [ARGS...]     `$RLCTL serve --shm $SEG` on a free port ($PORT, pid $SERVE_PID),
#                             stderr in $TMP/serve.err; waits until it accepts (at most 20 s);
#                             1 when it did not come up (its stderr is then shown)
#   stop_serve                stops it (if it runs); a sanitizer report from it fails a check
#   finish                    prints "N passed, N failed"; its status is 1 when a check failed
#
# The suite sets TMP (its temporary directory) before `run` and start_serve, RLCTL and SEG
# before start_serve, and calls stop_serve from its EXIT trap.

passed=0
failed=0
SERVE_PID=

ok() {
    passed=$((passed + 1))
    echo "ok: $1"
}

fail() {
    failed=$((failed + 1))
    echo "FAIL: $1"
    fail_files
}

fail_files() {
    :
}

show() {
    for f in "$@"; do
        if [ -s "$f" ]; then
            echo "--- ${f##*/}:"
            head -n 40 "$f"
        fi
    done
}

run() {
    "$@" >"$TMP/out" 2>"$TMP/err"
    # shellcheck disable=SC2034 # rc: the suite reads it
    rc=$?
    if grep -qE 'Sanitizer|runtime error:' "$TMP/err"; then
        echo "sanitizer report from: $*"
        cat "$TMP/err"
        failed=$((failed + 1))
    fi
}

free_port() {
    python3 -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

wait_listening() {
    python3 - "$1" "$2" "$3" <<'PY'
import os, socket, sys, time
port, pid, secs = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + secs
while time.monotonic() < deadline:
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
        sys.exit(0)
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            sys.exit(1)  # it exited
        time.sleep(0.05)
sys.exit(1)
PY
}

wait_until() {
    _wu_tries=$(($1 * 20))
    shift
    until "$@"; do
        [ "$_wu_tries" -gt 0 ] || return 1
        _wu_tries=$((_wu_tries - 1))
        sleep 0.05
    done
}

start_serve() {
    PORT=$(free_port)
    "$RLCTL" serve --shm "$SEG" --listen "127.0.0.1:$PORT" --for 120 "$@" \
        >"$TMP/serve.out" 2>"$TMP/serve.err" &
    SERVE_PID=$!
    if ! wait_listening "$PORT" "$SERVE_PID" 20; then
        sed 's/^/serve: /' "$TMP/serve.err"
        return 1
    fi
}

stop_serve() {
    [ -n "$SERVE_PID" ] || return 0
    kill "$SERVE_PID" 2>/dev/null
    wait "$SERVE_PID" 2>/dev/null
    SERVE_PID=
    if grep -qsE 'Sanitizer|runtime error:' "$TMP/serve.err"; then
        fail "a sanitizer report from rlctl serve"
    fi
}

finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
