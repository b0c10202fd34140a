#!/usr/bin/env bash
# The response cache (issue 21): a hit's latency through the data plane
# against the mock answered directly, interleaved rounds on one machine.
# A standalone data plane (1 worker) with the tenant's cache on; one request
# fills the entry, then every measured request through the gateway is a
# hit: the gateway answers from memory without reaching the mock. "direct"
# is the same request to the mock itself (which answers at once: no
# `x-mock-*` delays). Both non-streamed and streamed, 50 tokens.
#
#   BIN=target/release benches/cache.sh
#
# Environment: BIN (release binaries; default: build them), ROUNDS (default
# 3), RATE (req/s, default 200), DURATION (per run, default 5s).
set -euo pipefail
cd "$(dirname "$0")/.."

. benches/lib.sh
bench_bins sluice-dataplane sluice-loadtest
bench_workdir cache
bench_mock
{
    bench_snapshot "$mock" "$sha"
    printf '\n[[caches]]\ntenant = "bench"\nttl_s = 3600\n'
} >"$work/cache.toml"
SLUICE_BENCH_PROVIDER_KEY=sk-mock RUST_LOG=warn "$bin/sluice-dataplane" --listen 127.0.0.1:0 \
    --admin 127.0.0.1:0 --snapshot "$work/cache.toml" --records "$work/records.jsonl" \
    --workers 1 --no-pin >"$work/dp.out" 2>"$work/dp.err" &
pids+=($!)
gw="$(wait_line "$work/dp.out" "listening on ")"
admin="$(wait_line "$work/dp.out" "admin on ")"

run() { # URL STREAM(0|1) OUT
    local s=()
    [ "$2" = 1 ] && s=(--stream)
    "$bin/sluice-loadtest" run --url "http://$1" --api-key "$key" --model gpt-4o-mini \
        --prompt "What is the capital of France? Answer in one sentence." --max-tokens 50 \
        --header "x-mock-tokens: 50" "${s[@]}" --rate "${RATE:-200}" --duration "${DURATION:-5s}" \
        --workers 1 -q --json "$3" >/dev/null
}
# Fill both forms' entry (one streamed request serves both), then check.
run "$gw" 1 "$work/fill.json" 2>/dev/null || true
for round in $(seq 1 "${ROUNDS:-3}"); do
    for stream in 0 1; do
        run "$mock" "$stream" "$work/direct-$stream-$round.json"
        run "$gw" "$stream" "$work/hit-$stream-$round.json"
    done
done
hits="$(curl -s "http://$admin/metrics" | awk '/^sluice_cache_hits_total/ {print $2}')"
misses="$(curl -s "http://$admin/metrics" | awk '/^sluice_cache_misses_total/ {print $2}')"
echo "== cache hits $hits, misses $misses (every measured gateway request must be a hit)"
python3 - "$work" "${ROUNDS:-3}" <<'PY'
import json, sys
work, rounds = sys.argv[1], int(sys.argv[2])
for stream in (0, 1):
    for r in range(1, rounds + 1):
        row = []
        for side in ("direct", "hit"):
            j = json.load(open(f"{work}/{side}-{stream}-{r}.json"))
            lat = j["latency_us"]["e2e"]
            row.append(f"{side}: ok {j['requests']['ok']}, e2e p50 {lat['p50']} µs p99 {lat['p99']} µs")
        print(f"{'streamed' if stream else 'non-streamed'} round {r}: " + " | ".join(row))
PY
