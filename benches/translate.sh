#!/usr/bin/env bash
# A translated stream against pass-through, in one run: an OpenAI chat
# client served by an Anthropic upstream (translated event by event) and an
# Anthropic client served by the same upstream (its bytes passed through).
# The upstream's stream is byte for byte the same on both sides (the mock,
# TOKENS tokens a stream), so the difference is the translation's.
#
# 1. Time to first token, seen by the load tester: ROUNDS interleaved rounds
#    of REQUESTS streamed requests each side at RATE/s (io_uring driver);
#    prints each round's p50 and the median of the per-round differences.
# 2. User-space instructions a request (callgrind, epoll driver: valgrind
#    does not run io_uring): one data plane serves both sides in turn, the
#    counts zeroed before and dumped after each side's load.
#
#   benches/translate.sh
#
# Environment: BIN (a directory with the release binaries, used as they
# are; default: build them into target/release), OUT (default
# target/translate), ROUNDS (default 5), REQUESTS (default 200), RATE
# (default 50), TOKENS (default 50), TIMING (0 skips part 1), CALLGRIND (0
# skips part 2).
set -euo pipefail
cd "$(dirname "$0")/.."

out="${OUT:-target/translate}"
rounds="${ROUNDS:-5}"
requests="${REQUESTS:-200}"
rate="${RATE:-50}"
tokens="${TOKENS:-50}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

. benches/lib.sh
bench_bins sluice-dataplane sluice-loadtest
bench_workdir translate
bench_mock
{
    bench_snapshot "$mock" "$sha"
    cat <<EOF2

[[upstreams]]
name = "mock-anthropic"
kind = "anthropic"
base_url = "http://$mock"

[[routes]]
tenant = "bench"
model = "claude-pass"
targets = [{ upstream = "mock-anthropic", provider_key = "mockkey" }]

[[routes]]
tenant = "bench"
model = "gpt-on-claude"
targets = [{ upstream = "mock-anthropic", provider_key = "mockkey", model = "claude-pass" }]
EOF2
} >"$work/snapshot.toml"

# load URL JSON SIDE ARGS...: one side's streamed requests.
load() {
    local api=anthropic model=claude-pass
    if [ "$3" = translated ]; then
        api=openai model=gpt-on-claude
    fi
    "$bin/sluice-loadtest" run --url "http://$1" --api-key "$key" --api "$api" --model "$model" \
        --stream --max-tokens "$tokens" --rate "$rate" "${@:4}" \
        --header "x-mock-tokens: $tokens" --workers 1 -q --json "$2" >/dev/null
}

# start_dp NAME [PREFIX...]: a data plane (under PREFIX, e.g. valgrind); sets $dp and $url.
start_dp() {
    local name="$1"
    shift
    SLUICE_BENCH_PROVIDER_KEY=sk-mock-provider-key RUST_LOG=warn "$@" \
        "$bin/sluice-dataplane" --listen 127.0.0.1:0 --admin 127.0.0.1:0 \
        --snapshot "$work/snapshot.toml" --records "$work/$name-records.jsonl" --workers 1 --no-pin \
        >"$work/$name.out" 2>"$work/$name.err" &
    dp=$!
    pids+=("$dp")
    for _ in $(seq 1 600); do
        grep -q "^listening on " "$work/$name.out" 2>/dev/null && break
        sleep 0.2
    done
    url="$(wait_line "$work/$name.out" "listening on ")"
}

p50() {
    python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(r['latency_us']['ttft']['p50'], r['requests']['ok'], r['requests']['sent'])" "$1"
}

if [ "${TIMING:-1}" != 0 ]; then
echo "== time to first token: $rounds interleaved rounds of $requests streamed requests a side at $rate/s, $tokens tokens"
start_dp timing
load "$url" "$work/warm.json" pass --duration 3s
load "$url" "$work/warm.json" translated --duration 3s
diffs=()
for r in $(seq 1 "$rounds"); do
    load "$url" "$out/pass-$r.json" pass --requests "$requests"
    load "$url" "$out/translated-$r.json" translated --requests "$requests"
    read -r pass pass_ok pass_sent <<<"$(p50 "$out/pass-$r.json")"
    read -r tr tr_ok tr_sent <<<"$(p50 "$out/translated-$r.json")"
    echo "round $r: ttft p50 pass-through ${pass} µs ($pass_ok/$pass_sent ok), translated ${tr} µs ($tr_ok/$tr_sent ok), +$((tr - pass)) µs"
    diffs+=("$((tr - pass))")
done
printf '%s\n' "${diffs[@]}" | sort -n | awk '{a[NR]=$1} END {print "median added ttft at p50: " a[int((NR+1)/2)] " µs"}'
kill "$dp"
wait "$dp" 2>/dev/null || true
fi

if [ "${CALLGRIND:-1}" = 0 ]; then
    exit 0
fi
bench_need valgrind valgrind
# Slow under valgrind: a low rate.
rate=20
echo "== user-space instructions a request: $requests streamed requests a side at $rate/s, $tokens tokens"
rm -f "$out/translate.callgrind"*
start_dp callgrind env MONOIO_FORCE_LEGACY_DRIVER=1 valgrind --tool=callgrind \
    --callgrind-out-file="$out/translate.callgrind"
load "$url" "$work/warm.json" pass --duration 5s
load "$url" "$work/warm.json" translated --duration 5s
part=0
for side in pass translated; do
    callgrind_control -z "$dp" >/dev/null 2>&1
    load "$url" "$out/$side-cg.json" "$side" --requests "$requests"
    sleep 1
    callgrind_control -d "$dp" >/dev/null 2>&1
    part=$((part + 1))
    ok="$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['requests']['ok'])" "$out/$side-cg.json")"
    total="$(callgrind_annotate "$out/translate.callgrind.$part" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')"
    python3 -c 'import sys; side, ok, total, path = sys.argv[1:]
print(f"{side:>10}: {ok} ok, {int(total) / max(int(ok), 1) / 1000:.1f}k instructions a request ({path})")' \
        "$side" "$ok" "$total" "$out/translate.callgrind.$part"
done
