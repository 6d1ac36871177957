#!/usr/bin/env bash
# nginx with ngx_http_rl_module under wrk, in one run: the same nginx serving a small static file
# with no limiting, limit_req, rl_req mode=local and rl_req mode=global (a redis-server of its
# own), with 1 and 2 workers, one hot key and 100,000 keys. The rate is high enough that every
# request passes: the table measures what deciding costs on the served path. Prints a markdown
# table (requests/s, p99, and requests/s as a ratio of limit_req's in the same row). Each cell is
# measured ROUNDS times (default 3), the four limiters alternating within each round so that a
# noisy neighbour hits them alike; the table shows the median run of each cell.
#
#   bench/nginx-bench.sh BUILD_DIR [SECONDS] [ROUNDS]   (BUILD_DIR configured with -Dnginx=enabled)
#
# Everything lives in a temporary directory removed at exit (nginx, redis-server, segments).
set -euo pipefail

build=${1:?usage: bench/nginx-bench.sh BUILD_DIR [SECONDS]}
secs=${2:-5}
rounds=${3:-3}
module=$(cd "$build" && pwd)/nginx/ngx_http_rl_module.so
[[ -f "$module" ]] || {
    echo "no $module: configure the build with -Dnginx=enabled" >&2
    exit 1
}
for p in nginx wrk redis-server; do
    command -v "$p" >/dev/null || {
        echo "$p is not installed (scripts/setup installs it)" >&2
        exit 1
    }
done

dir=$(mktemp -d "${TMPDIR:-/tmp}/rl-nginx-bench.XXXXXX")
chmod 755 "$dir"
tag="rl-nginx-bench-$$"
redis_pid=""
cleanup() {
    if [[ -s "$dir/logs/nginx.pid" ]]; then
        nginx -p "$dir/" -c "$dir/nginx.conf" -s stop 2>/dev/null || true
    fi
    [[ -n "$redis_pid" ]] && kill "$redis_pid" 2>/dev/null
    rm -f /dev/shm/"$tag"-*
    rm -rf "$dir"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

port=$(free_port)
rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
    >/dev/null 2>&1 &
redis_pid=$!
for _ in $(seq 100); do
    [[ "$(redis-cli -p "$rport" ping 2>/dev/null)" == PONG ]] && break
    sleep 0.05
done

mkdir -p "$dir/html" "$dir/logs"
echo "hello from nginx" >"$dir/html/index.html"
cat >"$dir/keys.lua" <<'EOF'
math.randomseed(os.time())
request = function()
    return wrk.format(nil, "/index.html?k=" .. math.random(1, 100000))
end
EOF

# conf WORKERS LIMITER KEY
conf() {
    local workers=$1 limiter=$2 key=$3 zone="" loc=""
    case "$limiter" in
    none) ;;
    limit_req)
        zone="limit_req_zone $key zone=z:16m rate=10000000r/s;"
        loc="limit_req zone=z burst=1000 nodelay;"
        ;;
    rl_local)
        zone="rl_req_zone $key zone=z:16m rate=10000000r/s shm=/$tag-local;"
        loc="rl_req zone=z burst=1000 nodelay;"
        ;;
    rl_global)
        zone="rl_redis redis://127.0.0.1:$rport/0; rl_req_zone $key zone=z:16m rate=10000000r/s mode=global shm=/$tag-global;"
        loc="rl_req zone=z burst=1000 nodelay;"
        ;;
    esac
    local user=""
    ((EUID == 0)) && user="user nobody nogroup;"
    cat >"$dir/nginx.conf" <<EOF
load_module $module;
$user
worker_processes $workers;
error_log $dir/logs/error.log warn;
pid $dir/logs/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $dir/tmp; proxy_temp_path $dir/tmp; fastcgi_temp_path $dir/tmp;
    uwsgi_temp_path $dir/tmp; scgi_temp_path $dir/tmp;
    $zone
    server { listen 127.0.0.1:$port; root $dir/html; location / { $loc } }
}
EOF
}

# run -> "RPS P99"
run() {
    local out rps p99
    out=$(wrk -t2 -c32 -d"${secs}s" --latency "$@" 2>&1)
    rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
    p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
    echo "${rps:-0} ${p99:-?}"
}

echo "| workers | keys | limiter | requests/s | p99 | vs limit_req |"
echo "|---|---|---|---:|---:|---:|"
for workers in 1 2; do
    for keys in hot 100k; do
        # shellcheck disable=SC2016 # nginx variables, not shell ones
        if [[ $keys == hot ]]; then key='$server_name'; else key='$arg_k'; fi
        declare -A res=()
        for ((round = 0; round < rounds; round++)); do
            for limiter in none limit_req rl_local rl_global; do
                conf "$workers" "$limiter" "$key"
                nginx -p "$dir/" -c "$dir/nginx.conf"
                for _ in $(seq 100); do
                    curl -s -o /dev/null "http://127.0.0.1:$port/index.html" && break
                    sleep 0.05
                done
                if [[ $keys == hot ]]; then
                    r=$(run "http://127.0.0.1:$port/index.html")
                else
                    r=$(run -s "$dir/keys.lua" "http://127.0.0.1:$port/")
                fi
                res[$limiter]+="$r"$'\n'
                nginx -p "$dir/" -c "$dir/nginx.conf" -s stop 2>/dev/null
                for _ in $(seq 200); do
                    [[ -e "$dir/logs/nginx.pid" ]] || break
                    sleep 0.05
                done
                rm -f /dev/shm/"$tag"-*
            done
        done
        # The median run of each limiter (by requests/s).
        for limiter in none limit_req rl_local rl_global; do
            res[$limiter]=$(sed '/^$/d' <<<"${res[$limiter]}" | sort -n -k1,1 |
                awk '{ l[NR] = $0 } END { print l[int((NR + 1) / 2)] }')
        done
        base=${res[limit_req]%% *}
        for limiter in none limit_req rl_local rl_global; do
            read -r rps p99 <<<"${res[$limiter]}"
            ratio=$(awk -v a="$rps" -v b="$base" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
            printf '| %s | %s | %s | %.0f | %s | %s |\n' "$workers" "$keys" "$limiter" "$rps" \
                "$p99" "$ratio"
        done
        unset res
    done
done
