#!/usr/bin/env bash
# Does a snapshot swap under streaming load stall the workers?
#
# Starts, from release builds, `sluice-control serve`, the mock provider and a
# data plane in control mode, configured with the CLI; then runs the same
# streaming load twice:
#   A. nothing changes;
#   B. a background loop changes the configuration every second (an upstream
#      added, then removed, ...), so control publishes a new snapshot version
#      each time and the data plane's agent compiles it and swaps it in under
#      the running streams;
#   C. the same loop runs a read-only CLI command instead (no new snapshot):
#      on a 2-core machine the CLI process and control's work compete with
#      the load for CPU, and C separates that from the swap itself;
# in interleaved rounds (A, B, C, A, ...), and prints TTFT p50/p99/p99.9/max,
# e2e p99 and the load generator's lag per round, the error counts, and how
# many snapshot versions the data plane went through in each round (from its
# /metrics sluice_snapshot_version).
#
#   benches/swap.sh
#
# Environment: BIN (a directory with the release binaries, used as they
# are; default: build them into target/release), OUT (results directory, default target/swap), RATE (req/s,
# default 500), DURATION (per round and phase, default 10s), ROUNDS (default 3), TOKENS (per response, default 50),
# WORKERS (data plane workers, default 2), CHANGE_EVERY (seconds between
# changes, default 1).
set -euo pipefail
cd "$(dirname "$0")/.."

out="${OUT:-target/swap}"
rate="${RATE:-500}"
duration="${DURATION:-10s}"
rounds="${ROUNDS:-3}"
tokens="${TOKENS:-50}"
workers="${WORKERS:-2}"
every="${CHANGE_EVERY:-1}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

. benches/lib.sh
bench_bins sluice-control sluice-dataplane sluice-loadtest
bench_workdir swap
changer=""

bench_mock

RUST_LOG=warn "$bin/sluice-control" serve --data "$work/control" --admin 127.0.0.1:0 --sync 127.0.0.1:0 \
    >"$work/control.out" 2>"$work/control.err" &
pids+=($!)
admin="$(wait_line "$work/control.out" "admin listening on ")"
sync="$(wait_line "$work/control.out" "sync listening on ")"

cli() { "$bin/sluice-control" "$@" --admin "http://$admin" --data "$work/control"; }
cli tenant create bench >/dev/null
key="$(cli apikey create --tenant bench --id k1 2>/dev/null)"
cli upstream add mock --kind openai --base-url "http://$mock" >/dev/null
printf %s sk-mock-bench | cli provider-key add --tenant bench pk >/dev/null
cli route set --tenant bench --model gpt-4o-mini --target upstream=mock,key=pk >/dev/null
cli dataplane enroll bench 2>/dev/null >"$work/dataplane.token"

RUST_LOG=warn "$bin/sluice-dataplane" --listen 127.0.0.1:0 --admin 127.0.0.1:0 \
    --control "http://$sync" --token-file "$work/dataplane.token" --spool-dir "$work/spool" \
    --workers "$workers" >"$work/dataplane.out" 2>"$work/dataplane.err" &
pids+=($!)
gw="$(wait_line "$work/dataplane.out" "listening on ")"
gw_admin="$(wait_line "$work/dataplane.out" "admin on ")"

version() {
    curl -fsS "http://$gw_admin/metrics" | awk '$1 == "sluice_snapshot_version" {print $2}'
}

# load JSON [DURATION]
load() {
    "$bin/sluice-loadtest" run --url "http://$gw" --api-key "$key" --model gpt-4o-mini --stream \
        --rate "$rate" --duration "${2:-$duration}" --header "x-mock-tokens: $tokens" -q --json "$1"
}

# changer MODE: every $every seconds, either change the configuration
# (swap: an upstream added, then removed, so control publishes a new snapshot
# version and the data plane compiles and swaps it in under the running
# streams) or run a read-only CLI command (noop: the same process spawn,
# admin round trip and control CPU, but no new snapshot).
changer_loop() {
    local mode="$1" i=0
    while true; do
        sleep "$every"
        if [ "$mode" = noop ]; then
            cli upstream list >/dev/null 2>&1 || true
        elif [ $((i % 2)) -eq 0 ]; then
            cli upstream add "tmp$i" --kind openai --base-url "http://$mock" >/dev/null 2>&1 || true
        else
            cli upstream remove "tmp$((i - 1))" >/dev/null 2>&1 || true
        fi
        i=$((i + 1))
    done
}

echo "== gateway http://$gw (control http://$sync), $rate req/s, $tokens tokens, $workers workers"
echo "== $rounds rounds of $duration per phase, interleaved: A steady, B a snapshot change every ${every}s,"
echo "== C the same CLI call rate without a change (upstream list)"
load "$out/warmup.json" 2s >/dev/null
: >"$out/rounds.tsv"
for r in $(seq 1 "$rounds"); do
    for phase in A B C; do
        v0="$(version)"
        case "$phase" in
            B) changer_loop swap & changer=$! ;;
            C) changer_loop noop & changer=$! ;;
        esac
        load "$out/$phase-$r.json" >"$out/$phase-$r.txt"
        if [ -n "$changer" ]; then
            kill "$changer" 2>/dev/null || true
            wait "$changer" 2>/dev/null || true
            changer=""
        fi
        sleep 1
        v1="$(version)"
        printf '%s\t%s\t%s\t%s\n' "$phase" "$r" "$((v1 - v0))" "$out/$phase-$r.json" >>"$out/rounds.tsv"
    done
done

python3 - "$out/rounds.tsv" <<'EOF'
import json, sys

rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1]) if line.strip()]
names = {"A": "A steady", "B": "B swapping", "C": "C CLI, no swap"}

def ms(s, q):
    return "-" if not s else f"{s[q] / 1000:.2f}"

print()
print(f"{'round':>5} {'phase':<15}{'swaps':>6}{'ok':>7}{'err':>5}{'ttft p50':>10}{'p99':>8}{'p99.9':>8}{'max':>8}"
      f"{'e2e p99':>9}{'lag p99':>9}   (ms)")
per = {}
for phase, rnd, swaps, path in rows:
    r = json.load(open(path))
    t, e, lag = r["latency_us"]["ttft"], r["latency_us"]["e2e"], r["latency_us"]["schedule_lag"]
    print(f"{rnd:>5} {names[phase]:<15}{swaps:>6}{r['requests']['ok']:>7}{r['requests']['errors']:>5}"
          f"{ms(t, 'p50'):>10}{ms(t, 'p99'):>8}{ms(t, 'p999'):>8}{ms(t, 'max'):>8}{ms(e, 'p99'):>9}{ms(lag, 'p99'):>9}")
    if r["requests"]["errors"]:
        print(f"      error kinds: {r['requests']['error_kinds']}")
    per.setdefault(phase, []).append((t or {}).get("p99", 0) / 1000)
print()
for phase, v in sorted(per.items()):
    v = sorted(v)
    print(f"{names[phase]:<15} ttft p99 by round (ms): {', '.join(f'{x:.2f}' for x in v)}; median {v[len(v) // 2]:.2f}")
EOF
echo "reports in $out/"
