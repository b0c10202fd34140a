#!/usr/bin/env bash
# User-space instructions a request, per side of overhead.sh, counted by
# callgrind: a deterministic measure that the machine's noise cannot move
# (CPU time on this shared VM varies by 10% between identical rounds). It
# leaves out the kernel (loopback TCP, wake-ups: most of a request's CPU)
# and cache misses, so it measures what code changes do, not what a request
# costs in all.
#
# For each side (off, meter, on: see overhead.sh) it starts the mock and that
# data plane under valgrind (epoll driver: valgrind does not run io_uring),
# warms it up, zeroes the counts, sends REQUESTS streamed requests at a low
# rate, dumps the counts and prints the total a request. The annotated
# profiles stay in OUT for `callgrind_annotate`.
#
#   benches/callgrind.sh
#
# Environment: BIN (a directory with the release binaries, used as they
# are; default: build them into target/release), OUT (default
# target/callgrind), SIDES (default "off meter on"), REQUESTS (default 200),
# TOKENS (per response, default 50); sides "fill" and "hit" (issue 21) are
# "meter" with the tenant's response cache on: "fill" sends
# `cache-control: no-cache`, so every request computes its key and fills
# the entry from its events (no look-up), "hit" answers every measured
# request from the cache; USAGE (1: the requests ask for usage,
# `stream_options.include_usage`, as compare's load does, so each stream
# passes as it came instead of being re-framed without the usage event),
# DP_ARGS (more data plane flags, e.g. `--otlp-endpoint URL --trace-sample 0.01`).
set -euo pipefail
cd "$(dirname "$0")/.."

out="${OUT:-target/callgrind}"
sides="${SIDES:-off meter on}"
requests="${REQUESTS:-200}"
tokens="${TOKENS:-50}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

. benches/lib.sh
bench_need valgrind valgrind
bench_bins sluice-dataplane sluice-loadtest
bench_workdir callgrind

bench_mock
overhead_sides "$mock" "$sha" "$tokens"
printf '[limits]\ncount_tokens = false\n' >"$work/off-config.toml"
for side in fill hit; do
    cp "$work/meter.toml" "$work/$side.toml"
    printf '\n[[caches]]\ntenant = "bench"\nttl_s = 3600\n' >>"$work/$side.toml"
done
if [ "${USAGE:-0}" = 1 ]; then
    python3 - "$work/body.json" <<'EOF'
import json, sys
body = json.load(open(sys.argv[1]))
body["stream_options"] = {"include_usage": True}
json.dump(body, open(sys.argv[1], "w"))
EOF
fi

load() {
    "$bin/sluice-loadtest" run --url "http://$1" --api-key "$key" --model gpt-4o-mini \
        --body-file "$work/body.json" --stream --rate 20 "${@:3}" \
        --header "x-mock-tokens: $tokens" "${side_headers[@]}" --workers 1 -q --json "$2" >/dev/null
}

echo "== user-space instructions a request: $requests streamed requests of $tokens tokens, ~2 KB prompt$([ "${USAGE:-0}" = 1 ] && echo ", usage asked (raw output)")"
for side in $sides; do
    extra=()
    side_headers=()
    if [ "$side" = fill ]; then
        side_headers=(--header "cache-control: no-cache")
    fi
    if [ "$side" = off ]; then
        extra=(--config "$work/off-config.toml" --no-token-count)
    fi
    rm -f "$out/$side.callgrind"*
    MONOIO_FORCE_LEGACY_DRIVER=1 SLUICE_BENCH_PROVIDER_KEY=sk-mock-provider-key RUST_LOG=warn \
        valgrind --tool=callgrind --callgrind-out-file="$out/$side.callgrind" \
        "$bin/sluice-dataplane" --listen 127.0.0.1:0 --admin 127.0.0.1:0 \
        --snapshot "$work/$side.toml" --records "$work/$side-records.jsonl" --workers 1 --no-pin \
        "${extra[@]}" ${DP_ARGS:-} >"$work/$side.out" 2>"$work/$side.err" &
    dp=$!
    pids+=("$dp")
    # Slow under valgrind: wait_line's 30 s may not do.
    for _ in $(seq 1 600); do
        grep -q "^listening on " "$work/$side.out" 2>/dev/null && break
        sleep 0.2
    done
    url="$(wait_line "$work/$side.out" "listening on ")"
    load "$url" "$work/$side-warm.json" --duration 5s
    callgrind_control -z "$dp" >/dev/null 2>&1
    load "$url" "$out/$side-load.json" --requests "$requests"
    sleep 1
    callgrind_control -d "$dp" >/dev/null 2>&1
    kill "$dp"
    wait "$dp" 2>/dev/null || true
    ok="$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['requests']['ok'])" "$out/$side-load.json")"
    # The dump after the load is part 1 (the rest, up to exit, is part 2).
    total="$(callgrind_annotate "$out/$side.callgrind.1" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')"
    python3 -c 'import sys; side, ok, total, path = sys.argv[1:]
print(f"{side:>5}: {ok} ok, {int(total) / max(int(ok), 1) / 1000:.1f}k instructions a request ({path})")' \
        "$side" "$ok" "$total" "$out/$side.callgrind.1"
done
