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
#      the running streams.
# and prints TTFT and e2e p50/p99/p99.9 of both side by side, the error
# counts, and how many snapshot versions the data plane went through during B
# (from its /metrics sluice_snapshot_version).
#
#   benches/swap.sh
#
# Environment: OUT (results directory, default target/swap), RATE (req/s,
# default 500), DURATION (default 20s), TOKENS (per response, default 50),
# WORKERS (data plane workers, default 2), CHANGE_EVERY (seconds between
# changes, default 1).
set -euo pipefail
cd "$(dirname "$0")/.."

out="${OUT:-target/swap}"
rate="${RATE:-500}"
duration="${DURATION:-20s}"
tokens="${TOKENS:-50}"
workers="${WORKERS:-2}"
every="${CHANGE_EVERY:-1}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

cargo build --release -p sluice-control -p sluice-dataplane -p sluice-loadtest
bin="$(pwd)/target/release"

work="$(mktemp -d "${TMPDIR:-/tmp}/sluice-swap.XXXXXX")"
pids=()
changer=""
cleanup() {
    [ -n "$changer" ] && kill "$changer" 2>/dev/null || true
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

# wait_line FILE PREFIX: prints the first word after PREFIX on a line of FILE.
wait_line() {
    local file="$1" prefix="$2" i
    for i in $(seq 1 300); do
        if line="$(grep -m1 "^$prefix" "$file" 2>/dev/null)"; then
            echo "${line#"$prefix"}" | awk '{print $1}' | sed 's|^.*://||'
            return 0
        fi
        sleep 0.1
    done
    echo "no line '$prefix' in $file; its stderr:" >&2
    cat "${file%.out}.err" >&2 || true
    return 1
}

"$bin/sluice-loadtest" mock --listen 127.0.0.1:0 --workers 1 >"$work/mock.out" 2>"$work/mock.err" &
pids+=($!)
mock="$(wait_line "$work/mock.out" "listening on ")"

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

load() {
    "$bin/sluice-loadtest" run --url "http://$gw" --api-key "$key" --model gpt-4o-mini --stream \
        --rate "$rate" --duration "$duration" --header "x-mock-tokens: $tokens" -q --json "$1"
}

echo "== gateway http://$gw (control http://$sync), $rate req/s for $duration, $tokens tokens, $workers workers"
echo "== A: no snapshot changes"
load "$out/steady.json" >"$out/steady.txt"

echo "== B: a snapshot change every ${every}s"
v0="$(version)"
(
    i=0
    while true; do
        sleep "$every"
        if [ $((i % 2)) -eq 0 ]; then
            cli upstream add "tmp$i" --kind openai --base-url "http://$mock" >/dev/null 2>&1 || true
        else
            cli upstream remove "tmp$((i - 1))" >/dev/null 2>&1 || true
        fi
        i=$((i + 1))
    done
) &
changer=$!
load "$out/swapping.json" >"$out/swapping.txt"
kill "$changer" 2>/dev/null || true
wait "$changer" 2>/dev/null || true
changer=""
sleep 1
v1="$(version)"

python3 - "$out/steady.json" "$out/swapping.json" "$v0" "$v1" <<'EOF'
import json, sys

a, b = (json.load(open(p)) for p in sys.argv[1:3])
v0, v1 = int(sys.argv[3]), int(sys.argv[4])

def ms(report, metric, q):
    s = report["latency_us"].get(metric)
    return "-" if not s else f"{s[q] / 1000:.2f}"

print()
print(f"{'':16}{'A: steady':>14}{'B: swapping':>14}")
for metric in ("ttft", "e2e"):
    for q, name in (("p50", "p50"), ("p99", "p99"), ("p999", "p99.9")):
        print(f"{metric + ' ' + name + ' (ms)':16}{ms(a, metric, q):>14}{ms(b, metric, q):>14}")
for label, get in (
    ("requests sent", lambda r: r["requests"]["sent"]),
    ("ok", lambda r: r["requests"]["ok"]),
    ("errors", lambda r: r["requests"]["errors"]),
    ("lag p99 (ms)", lambda r: ms(r, "schedule_lag", "p99")),
):
    print(f"{label:16}{get(a):>14}{get(b):>14}")
for name, r in (("A", a), ("B", b)):
    if r["requests"]["errors"]:
        print(f"{name} error kinds: {r['requests']['error_kinds']}")
print(f"\nsnapshot versions served during B: {v0} -> {v1} ({v1 - v0} swaps)")
EOF
echo "reports in $out/"
