#!/usr/bin/env bash
# The Debian packages installed into a fresh Debian root, used there as an operator and a
# developer would: rlctl, rl-demo, the man pages, the rl user of sysusers.d, the admin token the
# postinst makes, rl-serve.service through `systemd-analyze verify`, a program built with
# `pkg-config --cflags --libs rl` (and one linked statically with --static) that fills a segment
# rlctl then reads, and `rlctl serve` run as the user rl answering / and /metrics.
#
#   tests/test_deb_install.sh DEBDIR
#
# DEBDIR holds the .debs of scripts/deb. The root is made by debootstrap (bookworm, minbase, with
# gcc, pkg-config, systemd and the libraries' packages) from the Debian mirror of apt's sources,
# and cached in $RL_DEBROOT_CACHE (default /var/cache/rl-debroot; about 500 MB, two minutes to
# make): each run copies the cached root into a temporary directory, installs there and deletes
# the copy. Everything runs in a mount namespace of its own (proc and a private /dev/shm tmpfs
# inside the root vanish with it). Needs root (chroot, mount): exits 77 ("skipped: ...") when it
# has neither root nor a user namespace to get it from. Prints one line per check, then
# "N passed, N failed".
set -euo pipefail

debdir=$(cd "${1:?usage: test_deb_install.sh DEBDIR}" && pwd)
suite=bookworm
include=systemd,gcc,libc6-dev,pkg-config,libyaml-dev,liburcu-dev,libhiredis-dev,libxxhash-dev
include+=,libjansson4,libmicrohttpd12,libjemalloc2,man-db,nginx,python3
cache=${RL_DEBROOT_CACHE:-/var/cache/rl-debroot}

if ((EUID != 0)); then
    if unshare -r true 2>/dev/null; then
        # Root in a user namespace is not enough for debootstrap's mknod nor for dpkg's chown.
        echo "skipped: needs root (chroot, debootstrap, dpkg); a user namespace cannot install packages"
    else
        echo "skipped: needs root (chroot, debootstrap, dpkg), and user namespaces are unavailable"
    fi
    exit 77
fi
for tool in debootstrap chroot unshare; do
    command -v "$tool" >/dev/null || {
        echo "$tool not found: run scripts/setup \$(scripts/deb --packages) debootstrap" >&2
        exit 1
    }
done
debs=()
for f in "$debdir"/*.deb; do
    case "$f" in *-dbgsym_*) ;; *) debs+=("$f") ;; esac
done
((${#debs[@]} >= 3)) || {
    echo "no packages in $debdir: run scripts/deb first" >&2
    exit 1
}

# The mirror apt uses here (deb822 URIs: or one-line deb entries), deb.debian.org otherwise.
mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
    2>/dev/null | awk '/^URIs:/ { for (i = 2; i <= NF; i++) print $i } /^deb / { print $2 }' |
    grep -E '/debian/?$' | head -n 1 || true)
mirror=${mirror:-http://deb.debian.org/debian}

key=$(printf '%s %s %s' "$suite" "$include" "$(dpkg --print-architecture)" | sha256sum | cut -c1-12)
base="$cache/$suite-$key"
if [[ ! -x "$base/usr/bin/systemd-analyze" ]]; then
    mkdir -p "$cache"
    tmp_base=$(mktemp -d "$cache/.new.XXXXXX")
    echo "debootstrap $suite from $mirror into $base (cached for later runs)"
    t0=$(date +%s)
    if ! debootstrap --variant=minbase --include="$include" "$suite" "$tmp_base" "$mirror" \
        >"$tmp_base.log" 2>&1; then
        tail -n 30 "$tmp_base.log" >&2
        rm -rf "$tmp_base" "$tmp_base.log"
        echo "debootstrap failed (mirror $mirror)" >&2
        exit 1
    fi
    rm -rf "$tmp_base/var/cache/apt/archives/"*.deb "$tmp_base.log"
    chmod 0755 "$tmp_base"
    rm -rf "$base"
    mv "$tmp_base" "$base"
    echo "debootstrap: $(($(date +%s) - t0)) s"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/rl-debroot.XXXXXX")
cleanup() {
    # Mounts live in the namespace of the unshare below and are gone with it.
    rm -rf "$work"
}
trap cleanup EXIT
R="$work/root"
cp -a "$base" "$R"
chmod 0755 "$R" # mktemp made the cached root 0700: the user rl must reach /
mkdir -p "$R/tmp/debs" "$R/tmp/t"
cp "${debs[@]}" "$R/tmp/debs/"
cat >"$R/tmp/t/use_rl.c" <<'C'
/* Built in the fresh root against librl-dev: opens a segment, checks requests, prints the
 * counts so that the test compares them with `rlctl stats --json`. */
#include <stdio.h>
#include <string.h>

#include <rl/rl.h>

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    rl_options o;
    rl_options_init(&o);
    o.shm_name = argv[1];
    o.config_path = argv[2];
    rl_t *rl = NULL;
    int rc = rl_open(&rl, &o);
    if (rc != 0) {
        fprintf(stderr, "rl_open: %s: %s\n", rl_strerror(rc), rl_errmsg());
        return 1;
    }
    unsigned allowed = 0, denied = 0;
    for (int i = 0; i < 9; i++) {
        rl_request req;
        memset(&req, 0, sizeof req);
        req.method = "GET";
        req.path = "/api/x";
        req.ip = "192.0.2.7";
        rl_decision d;
        if ((rc = rl_check(rl, &req, &d)) != 0) {
            fprintf(stderr, "rl_check: %s\n", rl_errmsg());
            return 1;
        }
        if (d.allowed)
            allowed++;
        else
            denied++;
    }
    printf("%s allowed=%u denied=%u\n", rl_version(), allowed, denied);
    rl_close(&rl);
    return 0;
}
C
# 5 per hour per IP on /api/*: the program's 9 checks are 5 allowed and 4 denied.
printf '%s\n' 'version: 1' 'endpoints:' '  - pattern: "/api/*"' \
    '    limits: [{requests: 5, window: 1h, algorithm: fixed_window, scope: per_ip}]' \
    >"$R/tmp/t/rules.yaml"

# The checks, run by bash inside the root (in the mount namespace).
cat >"$R/tmp/t/checks.sh" <<'SH'
set -u
export PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C DEBIAN_FRONTEND=noninteractive
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok: $1"; }
fail() { failed=$((failed + 1)); echo "FAIL: $1"; [ -s /tmp/t/out ] && head -n 40 /tmp/t/out; }
check() { # check WHAT CMD...: CMD exits 0
    what=$1; shift
    if "$@" >/tmp/t/out 2>&1; then ok "$what"; else fail "$what (exit $?: $*)"; fi
}
want_version=$1

check "apt installs librl0, librl-dev, rl-tools from the .debs" \
    apt-get install -y --no-install-recommends /tmp/debs/*.deb
[ "$(dpkg-query -W -f '${Status}' rl-tools 2>/dev/null)" = "install ok installed" ] &&
    ok "dpkg: rl-tools installed" || fail "dpkg: rl-tools not installed"
out=$(rlctl --version 2>&1)
case "$out" in *"$want_version"*) ok "rlctl --version: $out" ;; *) fail "rlctl --version: '$out', expected $want_version" ;; esac
check "rl-demo --help" rl-demo --help
check "man pages rlctl(1), rl-demo(1)" test -s /usr/share/man/man1/rlctl.1.gz -a -s /usr/share/man/man1/rl-demo.1.gz
check "sysusers.d made the user rl" getent passwd rl
check "postinst made /etc/rl/admin-token: root, 0600, a 44-byte token" \
    sh -c '[ "$(stat -c "%U %a" /etc/rl/admin-token)" = "root 600" ] && [ "$(wc -c </etc/rl/admin-token)" -ge 44 ]'
check "librl.so.0 resolves through ldconfig" sh -c 'ldconfig -p | grep -q "librl.so.0 "'

cd /tmp/t
check "cc use_rl.c \$(pkg-config --cflags --libs rl)" \
    sh -c 'cc -Wall -Werror -o use_rl use_rl.c $(pkg-config --cflags --libs rl)'
check "the program links the installed librl.so.0" sh -c 'ldd ./use_rl | grep -Eq "librl.so.0 => (/usr)?/lib/"'
seg=/rl-debtest-$$
if ./use_rl "$seg" rules.yaml >/tmp/t/out 2>&1 && grep -q "allowed=5 denied=4" /tmp/t/out; then
    ok "the program fills $seg: $(cat /tmp/t/out)"
else
    fail "the program: expected allowed=5 denied=4"
fi
if rlctl --shm "$seg" stats --json >/tmp/t/stats.json 2>/tmp/t/out &&
    grep -Eq '^  "allowed_requests": 5,?$' /tmp/t/stats.json &&
    grep -Eq '^  "denied_requests": 4,?$' /tmp/t/stats.json; then
    ok "rlctl stats --json reads the program's counts (5 allowed, 4 denied)"
else
    cat /tmp/t/stats.json >>/tmp/t/out 2>/dev/null
    fail "rlctl stats --json on $seg"
fi
check "cc -static with \$(pkg-config --static --cflags --libs rl)" \
    sh -c 'cc -static -o use_rl_static use_rl.c $(pkg-config --static --cflags --libs rl)'
rm -f "/dev/shm/$seg"
if ./use_rl_static "$seg" rules.yaml >/tmp/t/out 2>&1 && grep -q "allowed=5 denied=4" /tmp/t/out; then
    ok "the static program: $(cat /tmp/t/out)"
else
    fail "the static program: expected allowed=5 denied=4"
fi
rm -f "/dev/shm/$seg"

# rlctl serve of the package, as the service's user rl, on a segment rl's program made: the
# dashboard at / and /metrics over HTTP (bash's /dev/tcp: the root has no HTTP client).
port=$2
seg=/rl-debserve-$$
get() { # get PATH: the whole HTTP/1.0 answer into /tmp/t/http
    exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$1" >&3
    cat <&3 >/tmp/t/http
    exec 3<&-
}
check "the program as user rl makes $seg" runuser -u rl -- ./use_rl "$seg" rules.yaml
runuser -u rl -- rlctl --shm "$seg" serve --listen "127.0.0.1:$port" --for 60 >/tmp/t/serve.log 2>&1 &
serve_pid=$!
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
if get / && grep -q '^HTTP/1.[01] 200' /tmp/t/http && grep -q '<title>rl dashboard</title>' /tmp/t/http; then
    ok "rlctl serve (user rl) answers / with the dashboard"
else
    cp /tmp/t/http /tmp/t/out 2>/dev/null; cat /tmp/t/serve.log >>/tmp/t/out
    fail "rlctl serve / (port $port)"
fi
if get /metrics && grep -q '^rl_checks_total 9' /tmp/t/http; then
    ok "rlctl serve /metrics counts the program's 9 checks"
else
    cp /tmp/t/http /tmp/t/out 2>/dev/null
    fail "rlctl serve /metrics"
fi
kill "$serve_pid" 2>/dev/null
wait "$serve_pid" 2>/dev/null
rm -f "/dev/shm/$seg"

# The unit as the package installed it: no warning at all (systemd-analyze prints nothing).
systemd-analyze verify /lib/systemd/system/rl-serve.service >/tmp/t/out 2>&1
rc=$?
if [ "$rc" -eq 0 ] && ! [ -s /tmp/t/out ]; then
    ok "systemd-analyze verify rl-serve.service: clean"
else
    fail "systemd-analyze verify rl-serve.service (exit $rc)"
fi
check "rl-serve.service installed disabled" sh -c '! systemctl is-enabled rl-serve.service'
check "systemd-analyze security rl-serve.service (offline) parses" \
    sh -c 'systemd-analyze security --offline=yes /lib/systemd/system/rl-serve.service >/tmp/t/sec 2>&1; tail -n 1 /tmp/t/sec; grep -q "Overall exposure level" /tmp/t/sec'
[ -s /tmp/t/sec ] && tail -n 1 /tmp/t/sec

check "apt purges the three packages" apt-get purge -y rl-tools librl-dev librl0
check "purge removed /etc/rl/admin-token" test ! -e /etc/rl/admin-token
check "nothing of rl is left in /usr" sh -c '! ls /usr/bin/rlctl /usr/include/rl /usr/lib/*/librl.so.0 2>/dev/null | grep -q .'
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
SH

version=$(dpkg-deb -f "$(ls "$debdir"/rl-tools_*.deb | head -n 1)" Version)
# A free loopback port for rlctl serve inside the root (the root shares this network).
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# A mount namespace of our own: proc and /dev/shm inside the root vanish when it exits.
unshare --mount --propagation private --fork bash -c '
    set -e
    R=$1
    mount -t proc proc "$R/proc"
    mkdir -p "$R/dev/shm"
    mount -t tmpfs -o mode=1777,size=64m tmpfs "$R/dev/shm"
    chroot "$R" /bin/bash /tmp/t/checks.sh "$2" "$3"
' sh "$R" "$version" "$port"
