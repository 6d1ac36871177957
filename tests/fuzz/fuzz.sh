#!/usr/bin/env bash
# scripts/test --fuzz: builds the libFuzzer targets (tests/fuzz/fuzz_*.c) with clang, ASan and
# UBSan in build-fuzz and runs each for RL_FUZZ_SECONDS seconds (default 20), starting from the
# seed corpus tests/fuzz/corpus/NAME/. New inputs, logs and crash inputs go to a temporary
# directory (printed), never into the repository. RL_FUZZ_TARGETS="yaml url" picks targets.
# Exits non-zero when a target crashed (or did not build), after printing the crash inputs.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

secs=${RL_FUZZ_SECONDS:-20}
read -r -a targets <<<"${RL_FUZZ_TARGETS:-yaml pattern ip url headers segment}"
dir=build-fuzz

# Longest input per target: rule files are a few KB, the rest is short text; the segment gets
# the header and the start of the tables.
max_len() {
    case "$1" in
    yaml) echo 8192 ;;
    segment) echo 16384 ;;
    headers) echo 2048 ;;
    *) echo 1024 ;;
    esac
}

command -v clang >/dev/null || {
    echo "fuzz: clang not found (scripts/setup installs it with libclang-rt-14-dev)" >&2
    exit 1
}

# The library too is instrumented for coverage (-fsanitize=fuzzer-no-link), so libFuzzer sees
# its branches; only the fuzz-* targets are built.
setup() {
    # shellcheck disable=SC2054 # the commas belong to the option's value
    local opts=(-Db_sanitize=address,undefined -Db_lundef=false --buildtype=debugoptimized
        -Dc_args=-fsanitize=fuzzer-no-link)
    # meson configure, not setup --reconfigure: meson 1.0 keeps the old c_args on the latter.
    if [[ -f "$dir/meson-private/coredata.dat" ]]; then
        meson configure "$dir" "${opts[@]}" >/dev/null ||
            CC=clang meson setup --wipe "$dir" "${opts[@]}" >/dev/null
    else
        rm -rf "$dir"
        CC=clang meson setup "$dir" "${opts[@]}" >/dev/null
    fi
    if ! grep -q "^C compiler for the host machine: clang" "$dir/meson-logs/meson-log.txt"; then
        echo "fuzz: $dir is not a clang build: remove it and run again" >&2
        exit 1
    fi
}
bins=()
for t in "${targets[@]}"; do
    bins+=("tests/fuzz/fuzz-$t")
done
setup
ninja -C "$dir" "${bins[@]}"

out=$(mktemp -d "${TMPDIR:-/tmp}/rl-fuzz.XXXXXX")
echo "fuzz: $secs s per target; new corpus, logs and crash inputs under $out"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1
failed=()
for t in "${targets[@]}"; do
    mkdir -p "$out/$t/corpus" "$out/$t/artifacts"
    t0=$(date +%s)
    rc=0
    "$dir/tests/fuzz/fuzz-$t" -max_total_time="$secs" -max_len="$(max_len "$t")" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$out/$t/artifacts/" \
        "$out/$t/corpus" "$root/tests/fuzz/corpus/$t" >"$out/$t/log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$t/log" | tail -n 1)
    ncorpus=$(find "$out/$t/corpus" -type f | wc -l)
    mapfile -t crashes < <(find "$out/$t/artifacts" -type f | sort)
    if ((rc != 0 || ${#crashes[@]} > 0)); then
        failed+=("$t")
        echo "fuzz-$t: FAILED (exit $rc) after $(($(date +%s) - t0)) s, ${execs:-?} runs;" \
            "log: $out/$t/log"
        for c in "${crashes[@]}"; do
            echo "    crash input: $c"
        done
        grep -a -E -m 1 -A 12 '==ERROR|runtime error|check failed|deadly signal' "$out/$t/log" |
            sed 's/^/    /' || true
    else
        echo "fuzz-$t: ok, $(($(date +%s) - t0)) s, ${execs:-?} runs, $ncorpus new inputs"
    fi
done
# The segments the targets create are removed by them; a crash may leave one (rl-fz-PID).
for f in /dev/shm/rl-fz-*; do
    [[ -e "$f" ]] || continue
    pid=${f##*-}
    if [[ "$pid" =~ ^[0-9]+$ ]] && ! kill -0 "$pid" 2>/dev/null; then
        rm -f "$f"
    fi
done

if ((${#failed[@]} > 0)); then
    echo "fuzz: failed targets: ${failed[*]} (reproduce: $dir/tests/fuzz/fuzz-NAME INPUT)"
    exit 1
fi
echo "fuzz: all ${#targets[@]} targets ok"
