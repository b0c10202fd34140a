#!/usr/bin/env bash
# Every measurement behind BENCHMARKS.md, one after the other, with what else
# the machine was running noted before each (uptime and the top of `top`).
#
#   benches/all.sh                 # build, then run everything (~15 minutes)
#   benches/all.sh latency rate    # only some parts
#
# Parts: latency rate streams overhead swap ingest criterion profile (the
# default set), and itl (latency with tokens 5 ms apart).
# Environment: BIN (a directory holding sluice-loadtest, sluice-dataplane,
# sluice-control, ingest_bench and, for `criterion`, the criterion bench
# executables codec, primitives, policy[, metering]; default: build all into
# target/release), OUT (results directory, default target/bench-results).
set -euo pipefail
cd "$(dirname "$0")/.."

out="${OUT:-target/bench-results}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(latency rate streams overhead swap ingest criterion profile)

if [ -z "${BIN:-}" ]; then
    cargo build --release -p sluice-loadtest -p sluice-dataplane -p sluice-control --bins --examples
    BIN="$out/bin"
    mkdir -p "$BIN"
    cp target/release/sluice-loadtest target/release/sluice-dataplane target/release/sluice-control \
        target/release/examples/ingest_bench "$BIN/"
    # The criterion executables, copied so that a rebuild meanwhile changes nothing.
    cargo bench -p sluice-benches --no-run --message-format=json 2>/dev/null |
        python3 -c '
import json, shutil, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and "bench" in m["target"]["kind"]:
        shutil.copy(m["executable"], sys.argv[1] + "/" + m["target"]["name"])
' "$BIN"
fi
BIN="$(cd "$BIN" && pwd)"
export BIN

# What else runs meanwhile: the busiest processes every 5 s.
(
    while true; do
        {
            date -u +%T
            top -bn1 -w 160 | sed -n '8,13p'
        } >>"$out/background.txt"
        sleep 5
    done
) &
sampler=$!
trap 'kill "$sampler" 2>/dev/null || true' EXIT

note() {
    {
        echo "=== $(date -u +%H:%M:%S) UTC, before: $1"
        uptime
        top -bn1 -w 160 | sed -n '7,14p'
    } | tee -a "$out/machine.txt"
}

for part in "${parts[@]}"; do
    note "$part"
    case "$part" in
        latency | rate | streams | itl)
            OUT="$out/compare" benches/compare.sh "$part" ;;
        overhead)
            OUT="$out/overhead" RATE="${OVERHEAD_RATE:-1000}" PROFILE=1 benches/overhead.sh |
                tee "$out/overhead.txt" ;;
        swap)
            OUT="$out/swap" benches/swap.sh | tee "$out/swap.txt" ;;
        ingest)
            {
                RUNS=3 benches/ingest.sh --batch 10000
                RUNS=3 benches/ingest.sh --batch 1000
            } | tee "$out/ingest.txt" ;;
        criterion)
            : >"$out/criterion.txt"
            for b in codec primitives policy metering; do
                [ -x "$BIN/$b" ] || continue
                "$BIN/$b" --bench --warm-up-time 1 --measurement-time 3 --noplot 2>&1 |
                    grep -E '^[a-z].*/|time:|thrpt:' | grep -v '%\]' | tee -a "$out/criterion.txt"
            done ;;
        profile)
            OUT="$out/profile" benches/profile.sh | tee "$out/profile.txt"
            OUT="$out/profile-nocount" COUNT=0 benches/profile.sh | tee "$out/profile-nocount.txt"
            OUT="$out/profile-epoll" EPOLL=1 benches/profile.sh | tee "$out/profile-epoll.txt" ;;
        *)
            echo "unknown part $part" >&2
            exit 2 ;;
    esac
done
note "end"
echo "results in $out/"
