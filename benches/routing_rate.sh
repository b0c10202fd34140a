#!/usr/bin/env bash
# Streaming with three targets against one (issue 19): does health-aware
# choice cost the data plane anything measurable under load?
#
# Starts, from release builds, one mock and two data planes (one worker
# each): "one" routes gpt-4o-mini to a single target; "three" to three
# upstreams (all the same mock, so the provider is not what differs) with
# strategy "weighted", so every request draws an order and checks health.
# Runs the same streaming load at RATE against each in interleaved rounds
# and prints, per round, the data plane's CPU per request (from
# /proc/PID/stat) and TTFT p50/p99.
#
#   benches/routing_rate.sh
#
# Environment: BIN (release binaries, used as they are; default: build into
# target/release), OUT (default target/routing_rate), RATE (req/s, default
# 2000), DURATION (per round, default 5s), ROUNDS (default 3), TOKENS (per
# response, default 50).
set -euo pipefail
cd "$(dirname "$0")/.."

out="${OUT:-target/routing_rate}"
rate="${RATE:-2000}"
duration="${DURATION:-5s}"
rounds="${ROUNDS:-3}"
tokens="${TOKENS:-50}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

. benches/lib.sh
bench_bins sluice-dataplane sluice-loadtest
bench_workdir routing
bench_mock

bench_snapshot "$mock" "$sha" >"$work/one.toml"
sed '/^\[\[routes\]\]/,$d' "$work/one.toml" >"$work/three.toml"
cat >>"$work/three.toml" <<EOF
[[upstreams]]
name = "mock2"
kind = "openai"
base_url = "http://$mock"

[[upstreams]]
name = "mock3"
kind = "openai"
base_url = "http://$mock"

[[routes]]
tenant = "bench"
model = "gpt-4o-mini"
strategy = "weighted"
targets = [
  { upstream = "mock", provider_key = "mockkey", weight = 2 },
  { upstream = "mock2", provider_key = "mockkey", weight = 1 },
  { upstream = "mock3", provider_key = "mockkey", weight = 1 },
]
EOF

declare -A gw pid
for side in one three; do
    SLUICE_BENCH_PROVIDER_KEY=sk-mock-bench RUST_LOG=warn "$bin/sluice-dataplane" \
        --listen 127.0.0.1:0 --admin 127.0.0.1:0 --workers 1 \
        --snapshot "$work/$side.toml" --records "$work/$side.jsonl" \
        >"$work/$side.out" 2>"$work/$side.err" &
    pids+=($!)
    pid[$side]=$!
    gw[$side]="$(wait_line "$work/$side.out" "listening on ")"
done

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz="$(getconf CLK_TCK)"
: >"$out/rounds.tsv"
for round in $(seq 1 "$rounds"); do
    for side in one three; do
        before="$(ticks "${pid[$side]}")"
        "$bin/sluice-loadtest" run --url "http://${gw[$side]}" --api-key "$key" --model gpt-4o-mini --stream \
            --rate "$rate" --duration "$duration" --header "x-mock-tokens: $tokens" -q \
            --json "$out/$side-$round.json"
        after="$(ticks "${pid[$side]}")"
        printf '%s\t%s\t%s\t%s\n' "$side" "$round" "$((after - before))" "$out/$side-$round.json" >>"$out/rounds.tsv"
    done
done

python3 - "$out/rounds.tsv" "$hz" <<'EOF'
import json, sys

rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
hz = int(sys.argv[2])
print(f"{'side':<6}{'round':>6}{'ok':>8}{'err':>5}{'cpu µs/req':>12}{'ttft p50':>10}{'p99':>8}   (ms)")
per = {}
for side, rnd, ticks, path in rows:
    r = json.load(open(path))
    ok, err = r["requests"]["ok"], r["requests"]["errors"]
    t = r["latency_us"]["ttft"] or {}
    cpu = int(ticks) / hz * 1e6 / max(ok + err, 1)
    per.setdefault(side, []).append(cpu)
    print(f"{side:<6}{rnd:>6}{ok:>8}{err:>5}{cpu:>12.1f}{t.get('p50', 0) / 1000:>10.2f}{t.get('p99', 0) / 1000:>8.2f}")
for side, v in per.items():
    v = sorted(v)
    print(f"{side}: cpu µs/req median {v[len(v) // 2]:.1f}")
EOF
echo "reports in $out/"
