#!/usr/bin/env bash
# The Debian packages installed into a fresh Debian root, used there as an operator and a
# developer would: rlctl, rl-demo, the man pages, the rl user of sysusers.d, the admin token the
# postinst makes, rl-serve.service through `systemd-analyze verify`, a program built with
# `pkg-config --cflags --libs rl` (and one linked statically with --static) that fills a segment
# rlctl then reads, `rlctl serve` run as the user rl answering / and /metrics, Debian's nginx
# with the module libnginx-mod-http-rl enabled (`nginx -t`, then a real nginx whose rl_req zone
# answers 429 past its burst), and python3-rl's `import rl` deciding real requests.
#
#   tests/test_deb_install.sh DEBDIR
#
# DEBDIR holds the .debs of scripts/deb. The root is made by debootstrap (bookworm, minbase, with
# gcc, pkg-config, systemd, nginx, python3 and the libraries' packages) from the Debian mirror of apt's sources,
# and cached in $RL_DEBROOT_CACHE (default /var/cache/rl-debroot; about 550 MB, a few minutes to
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
# The root is used inside a private mount namespace (below). Inside a chroot whose / is not a
# mount point (../shared/tools/pristine-run, some containers) that cannot be made: say so, skip.
if ! unshare --mount --propagation private --fork true 2>/dev/null; then
    echo "skipped: cannot make a private mount namespace here (unshare --mount --propagation private fails: a chroot whose / is no mount point, or no CAP_SYS_ADMIN)"
    exit 77
fi
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
# No maintainer script may start a daemon here (the root shares the host's network): nginx's
# trigger and invoke-rc.d ask policy-rc.d, which refuses.
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d

check "apt installs librl0, librl-dev, rl-tools, libnginx-mod-http-rl, python3-rl from the .debs" \
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
    timeout 20 cat <&3 >/tmp/t/http
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

# libnginx-mod-http-rl: the nginx ABI it depends on is the one the root's nginx provides, and its
# postinst enabled the module the way Debian's libnginx-mod-* do (a link in modules-enabled).
abi=$(dpkg-query -W -f '${Depends}' libnginx-mod-http-rl | grep -o 'nginx-abi-[0-9a-z.+~-]*')
check "libnginx-mod-http-rl depends on $abi, which the root's nginx provides" \
    sh -c "[ -n '$abi' ] && dpkg-query -W -f '\${Provides}' nginx | grep -qw '$abi'"
check "the postinst enabled the module: modules-enabled/50-mod-http-rl.conf" \
    sh -c 'readlink /etc/nginx/modules-enabled/50-mod-http-rl.conf | grep -q "/usr/share/nginx/modules-available/mod-http-rl.conf$" &&
        grep -q "^load_module modules/ngx_http_rl_module.so;" /etc/nginx/modules-enabled/50-mod-http-rl.conf'
check "the module links the installed librl.so.0" \
    sh -c 'ldd /usr/lib/nginx/modules/ngx_http_rl_module.so | grep -Eq "librl.so.0 => (/usr)?/lib/"'
check "nginx -t loads the module with Debian's nginx.conf" nginx -t
# A real nginx on a free loopback port, loading the module through the package's enabled snippet:
# one zone of 1 request per minute with burst=2 answers 3 requests 200 and the 4th 429 (the
# location serves a static file: `return` would answer before rl_req's phase). The workers run as
# www-data and own the segment (mode 0600: rl refuses a world-writable 0666), so rlctl reads it
# as www-data.
nport=$3
nseg=/rl-debngx-$$
mkdir -p /tmp/t/www /tmp/t/ngx && echo hello >/tmp/t/www/hello.txt
cat >/tmp/t/nginx.conf <<NGX
user www-data;
worker_processes 1;
pid /tmp/t/ngx/nginx.pid;
error_log /tmp/t/ngx/error.log info;
include /etc/nginx/modules-enabled/*.conf;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path /tmp/t/ngx/body;
    rl_req_zone \$binary_remote_addr zone=one:1m rate=1r/m shm=$nseg;
    server {
        listen 127.0.0.1:$nport;
        root /tmp/t/www;
        location / { rl_req zone=one burst=2 nodelay; rl_req_status 429; }
    }
}
NGX
check "nginx -t -c nginx.conf (an rl_req zone)" nginx -t -c /tmp/t/nginx.conf
nginx -c /tmp/t/nginx.conf -g 'daemon off;' >/tmp/t/ngx/stdout 2>&1 &
ngx_pid=$!
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$nport") 2>/dev/null && break
    sleep 0.1
done
codes=
for _ in 1 2 3 4; do
    codes="$codes $(port=$nport get /hello.txt && sed -n '1s/^HTTP\/1.[01] \([0-9]*\).*/\1/p' /tmp/t/http)"
done
if [ "$codes" = " 200 200 200 429" ]; then
    ok "nginx with the packaged module: 4 requests through rl_req burst=2 answer$codes"
else
    cat /tmp/t/ngx/error.log /tmp/t/ngx/stdout >/tmp/t/out 2>/dev/null
    fail "nginx rl_req: answers$codes, expected 200 200 200 429"
fi
kill "$ngx_pid" 2>/dev/null
wait "$ngx_pid" 2>/dev/null
rm -f "/dev/shm/$nseg"

# python3-rl: the binding of the package, byte-compiled by dh_python3's postinst, deciding real
# requests in a segment of its own: 3 per hour, so 3 allowed then 2 denied.
pseg=/rl-debpy-$$
cat >/tmp/t/use_rl.py <<'PY'
import sys
import rl

print(rl.__file__, rl.version())
with rl.Limiter(shm=sys.argv[1]) as lim:
    got = [bool(lim.acquire("user:42", requests=3, window=3600, algorithm="fixed_window"))
           for _ in range(5)]
    r = lim.acquire("user:42", requests=3, window=3600, algorithm="fixed_window")
print(got, r.remaining, r.retry_after > 0)
assert got == [True, True, True, False, False], got
assert not r and r.remaining == 0 and r.retry_after > 0
rl.unlink(sys.argv[1])
PY
check "python3: import rl (the package's, in dist-packages) and 5 acquires: 3 allowed, 2 denied" \
    sh -c "cd / && env -i PATH=\$PATH python3 /tmp/t/use_rl.py $pseg && grep -q '^/usr/lib/python3/dist-packages/rl/__init__.py ' /tmp/t/out"
[ -s /tmp/t/out ] && head -n 2 /tmp/t/out
rm -f "/dev/shm/$pseg"

check "apt purges the five packages" apt-get purge -y python3-rl libnginx-mod-http-rl rl-tools librl-dev librl0
check "purge removed /etc/rl/admin-token" test ! -e /etc/rl/admin-token
check "purge removed the module's link in modules-enabled" \
    sh -c '! ls /etc/nginx/modules-enabled/ | grep -q mod-http-rl'
check "nginx -t still passes without the module" nginx -t
check "nothing of rl is left in /usr" \
    sh -c '! ls /usr/bin/rlctl /usr/include/rl /usr/lib/*/librl.so.0 /usr/lib/nginx/modules/ngx_http_rl_module.so /usr/lib/python3/dist-packages/rl 2>/dev/null | grep -q .'
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
SH

version=$(dpkg-deb -f "$(ls "$debdir"/rl-tools_*.deb | head -n 1)" Version)
# A free loopback port for rlctl serve inside the root (the root shares this network).
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
nport=$(free_port)
# A mount namespace of our own: proc and /dev/shm inside the root vanish when it exits.
unshare --mount --propagation private --fork bash -c '
    set -e
    R=$1
    mount -t proc proc "$R/proc"
    mkdir -p "$R/dev/shm"
    mount -t tmpfs -o mode=1777,size=64m tmpfs "$R/dev/shm"
    chroot "$R" /bin/bash /tmp/t/checks.sh "$2" "$3" "$4"
' sh "$R" "$version" "$port" "$nport"
