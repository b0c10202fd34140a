#!/usr/bin/env bash
# The standard comparison behind BENCHMARKS.md: the mock directly, Sluice and
# nginx, on this machine, in one run each (see loadtest/LOADTEST.md).
#
#   benches/compare.sh            # all three parts
#   benches/compare.sh latency    # or: rate, streams, itl, rates, apis (not in "all")
#
# Issue targets checked (printed as PASS/FAIL):
#   1. streaming, 50 tokens/response, no artificial delay, 1,000 req/s:
#      Sluice's added TTFT p99 over direct no higher than nginx's (Sluice on
#      io_uring and on epoll both measured, interleaved with the others);
#   2. highest sustained streaming rate, Sluice / nginx >= 1.0;
#   3. 10,000 open streams at one token a second: Sluice RSS <= 300 MiB.
#      The fd limit here is 20,000 per process and a proxy holds two sockets
#      per stream, so this is measured at 9,500 streams.
#
# Environment: BIN (a directory holding sluice-loadtest and sluice-dataplane,
# used as they are; default: build them into target/release), OUT (results
# directory, default target/compare), WORKERS (server workers, default 1),
# ROUNDS (default 30, ~5 minutes: the p99 of the 10,000 requests a target
# that 5 rounds gave turned on a few stalls of this VM), ROUND (seconds per
# round, default 2), STREAMS (default 9500). Extra arguments after the part
# name go to every compare command (e.g. --install-nginx).
set -euo pipefail
cd "$(dirname "$0")/.."

part="${1:-all}"
[ $# -gt 0 ] && shift
out="${OUT:-target/compare}"
workers="${WORKERS:-1}"
mkdir -p "$out"

if [ -n "${BIN:-}" ]; then
    bin="$BIN/sluice-loadtest"
else
    cargo build --release -p sluice-loadtest -p sluice-dataplane
    bin=target/release/sluice-loadtest
fi
# Two sockets per proxied stream: use the whole hard limit on open files.
ulimit -n "$(ulimit -Hn)"
common=(--workers "$workers" --tokens 50 "$@")

if [ "$part" = all ] || [ "$part" = latency ]; then
    echo "== 1. added TTFT at 1,000 req/s, 50 tokens, no delay"
    "$bin" compare "${common[@]}" --rate 1000 --rounds "${ROUNDS:-30}" --duration "${ROUND:-2}s" --drivers \
        --json "$out/latency.json" 2>&1 | tee "$out/latency.txt"
fi
if [ "$part" = itl ]; then
    # Not an issue target: the same, with the tokens spaced 5 ms apart as a
    # model would send them, so each event is its own read at the proxy.
    echo "== 1b. added TTFT at 1,000 req/s, 50 tokens 5 ms apart"
    "$bin" compare "${common[@]}" --rate 1000 --itl-ms 5 --rounds "${ROUNDS:-30}" --duration "${ROUND:-2}s" \
        --drivers --json "$out/latency-itl.json" 2>&1 | tee "$out/latency-itl.txt"
fi
if [ "$part" = rates ]; then
    # Not in "all" (~15 minutes): added latency under load, where a cost
    # that grows with the rate shows (issue 24): the latency comparison at
    # 1,000 and 3,000 req/s and at 70% of the highest rate every proxy
    # sustains (searched first), with both drivers.
    echo "== 1c. added TTFT by rate: ${RATES:-1000,3000,70%} req/s"
    "$bin" compare "${common[@]}" --rates "${RATES:-1000,3000,70%}" --rounds "${ROUNDS:-10}" --duration "${ROUND:-2}s" \
        --drivers --p99-bound-ms 50 --start-rate 3000 --step 1.25 --refine 2 \
        --json "$out/latency-rates.json" 2>&1 | tee "$out/latency-rates.txt"
fi
if [ "$part" = apis ]; then
    # Not in "all": the latency comparison (direct and Sluice only) for each
    # API the load tester speaks: chat, OpenAI Responses and Gemini streams
    # (TTFT: the first output text delta / first candidate text).
    for api in ${APIS:-openai responses gemini}; do
        echo "== 1d. added TTFT at 1,000 req/s, 50 tokens, --api $api"
        "$bin" compare "${common[@]}" --rate 1000 --rounds "${ROUNDS:-8}" --duration "${ROUND:-2}s" \
            --targets direct,sluice --api "$api" --json "$out/api-$api.json" 2>&1 | tee "$out/api-$api.txt"
    done
fi
if [ "$part" = all ] || [ "$part" = rate ]; then
    echo "== 2. highest sustained streaming rate (p99 TTFT <= 50 ms, errors <= 0.1%)"
    "$bin" compare "${common[@]}" --max-rate-search --p99-bound-ms 50 --start-rate 3000 --step 1.25 \
        --refine 3 --duration 3s --drivers --json "$out/max-rate.json" 2>&1 | tee "$out/max-rate.txt"
fi
if [ "$part" = all ] || [ "$part" = streams ]; then
    echo "== 3. memory with ${STREAMS:-9500} open streams, one token a second"
    "$bin" compare "${common[@]}" --open-streams "${STREAMS:-9500}" --ramp 5s --hold 10s \
        --targets sluice,nginx --json "$out/open-streams.json" 2>&1 | tee "$out/open-streams.txt"
fi
echo "results in $out/"
