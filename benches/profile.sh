#!/usr/bin/env bash
# Where does the data plane spend its CPU under streaming load?
#
# Starts, from release builds, the mock provider and one standalone data plane
# with the snapshot `sluice-loadtest compare` uses (one tenant, one gateway
# key, the mock as an OpenAI upstream, one route; token counting and records
# on), runs open-loop streaming load against it and records the data plane
# with perf, using the software clock event (this VM has no hardware
# counters). Writes the flat profile (self time), the profile with children,
# and the data plane's CPU per request.
#
#   benches/profile.sh
#
# Environment: BIN (a directory with the release binaries, used as they are;
# default: build them into target/release), OUT (default target/profile), RATE
# (req/s, default 1000), DURATION (default 10s), TOKENS (per response, default
# 50), WORKERS (data plane workers, default 1), COUNT=0 (no local token
# counting), EPOLL=1 (MONOIO_FORCE_LEGACY_DRIVER=1).
set -euo pipefail
cd "$(dirname "$0")/.."

out="${OUT:-target/profile}"
rate="${RATE:-1000}"
duration="${DURATION:-10s}"
tokens="${TOKENS:-50}"
workers="${WORKERS:-1}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

. benches/lib.sh
bench_bins sluice-dataplane sluice-loadtest
bench_workdir profile

bench_mock
bench_snapshot "$mock" "$sha" >"$work/snapshot.toml"
if [ "${COUNT:-1}" = 0 ]; then
    printf '[limits]\ncount_tokens = false\n' >"$work/config.toml"
else
    : >"$work/config.toml"
fi
env_extra=()
[ -n "${EPOLL:-}" ] && env_extra=(MONOIO_FORCE_LEGACY_DRIVER=1)

env "${env_extra[@]}" SLUICE_BENCH_PROVIDER_KEY=sk-mock-provider-key RUST_LOG=warn "$bin/sluice-dataplane" \
    --config "$work/config.toml" --listen 127.0.0.1:0 --admin 127.0.0.1:0 --snapshot "$work/snapshot.toml" \
    --records "$work/records.jsonl" --workers "$workers" --no-pin >"$work/dp.out" 2>"$work/dp.err" &
dp=$!
pids+=($dp)
gw="$(wait_line "$work/dp.out" "listening on ")"

load() {
    "$bin/sluice-loadtest" run --url "http://$gw" --api-key "$key" --model gpt-4o-mini --stream \
        --rate "$rate" --duration "$1" --header "x-mock-tokens: $tokens" --max-tokens "$tokens" \
        --workers 1 -q --json "$2" >/dev/null
}
cpu_ns() {
    cat /proc/"$1"/task/*/schedstat | awk '{ s += $1 } END { printf "%.0f\n", s }'
}

load 1s "$work/warmup.json"
perf record -q -F 1999 -e cpu-clock -g -p "$dp" -o "$work/perf.data" &
perf_pid=$!
sleep 0.5
c0="$(cpu_ns "$dp")"
load "$duration" "$out/run.json"
c1="$(cpu_ns "$dp")"
kill -INT "$perf_pid"
wait "$perf_pid" || true
perf report -i "$work/perf.data" --no-children --percent-limit 0.5 --stdio -g none \
    >"$out/profile.txt" 2>/dev/null || true
perf report -i "$work/perf.data" --children --percent-limit 2 --stdio -g none \
    >"$out/profile-children.txt" 2>/dev/null || true
python3 - "$out/run.json" "$c0" "$c1" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
ok = r["requests"]["ok"]
cpu = (int(sys.argv[3]) - int(sys.argv[2])) / 1e9
t = r["latency_us"]["ttft"] or {}
print(f"{ok} ok, {r['requests']['errors']} errors; data plane CPU {cpu:.2f} s, "
      f"{cpu / max(ok, 1) * 1e6:.1f} µs per request; TTFT p50 {t.get('p50')} µs, p99 {t.get('p99')} µs")
EOF
echo "profiles: $out/profile.txt (self), $out/profile-children.txt (with children)"
