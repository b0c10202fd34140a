#!/usr/bin/env bash
# What do metering and policy cost per request? (issue 5's end-to-end check:
# the data plane's CPU per request must not grow by more than 10%.)
#
# Starts, from release builds, the mock provider and three standalone data
# planes in front of it, identical but for what they do per request:
#   off:   no policy, no rate limits, no credits, no local token counting
#          (auth, routing and records stay on: they are the proxy itself);
#   meter: token counting (prompt at admission, completion inline), cost,
#          prepaid credits (reserve + settle), rate limits per tenant and
#          per key (GCRA); no policy;
#   on:    meter plus the full policy of benches/benches/policy.rs
#          (allow-list, max_tokens cap, 10 rules, every PII detector).
# Then runs the same streaming load (open loop, fixed rate, a ~2 KB prompt)
# against them in interleaved rounds (off, meter, on, off, ...) and reads each
# data plane's CPU (/proc/PID/task/*/schedstat) around every round:
# CPU per request = CPU seconds / requests served.
#
#   benches/overhead.sh
#
# Environment: BIN (a directory with the release binaries, used as they
# are; default: build them into target/release), OUT (results directory, default target/overhead), RATE (req/s,
# default 500), ROUND (seconds per round, default 5s), ROUNDS (default 4),
# TOKENS (per response, default 50), WORKERS (data plane workers, default 1),
# ORDER (the sides' order within a round, default "off meter on").
set -euo pipefail
cd "$(dirname "$0")/.."

out="${OUT:-target/overhead}"
rate="${RATE:-500}"
round="${ROUND:-5s}"
rounds="${ROUNDS:-4}"
tokens="${TOKENS:-50}"
workers="${WORKERS:-1}"
# The order of the sides within a round (a check on order effects).
order="${ORDER:-off meter on}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

. benches/lib.sh
bench_bins sluice-dataplane sluice-loadtest
bench_workdir overhead

bench_mock

# The three sides' snapshots and the request body (benches/lib.sh).
overhead_sides "$mock" "$sha" "$tokens"

declare -A url pid
for side in off meter on; do
    extra=()
    if [ "$side" = off ]; then
        # [limits] count_tokens = false is what --no-token-count sets; the
        # file form is given too in case a build parses the flag but does
        # not apply it.
        printf '[limits]\ncount_tokens = false\n' >"$work/off-config.toml"
        extra=(--config "$work/off-config.toml" --no-token-count)
    fi
    SLUICE_BENCH_PROVIDER_KEY=sk-mock-provider-key RUST_LOG=warn "$bin/sluice-dataplane" \
        --listen 127.0.0.1:0 --admin 127.0.0.1:0 --snapshot "$work/$side.toml" \
        --records "$work/$side-records.jsonl" --workers "$workers" --no-pin "${extra[@]}" \
        >"$work/$side.out" 2>"$work/$side.err" &
    pid[$side]=$!
    pids+=($!)
    url[$side]="$(wait_line "$work/$side.out" "listening on ")"
done

# cpu_ns PID: CPU time of all the process's threads, ns (the first field of
# each /proc/PID/task/TID/schedstat; /proc/PID/stat has the same in 10 ms ticks,
# too coarse for a few-second round). The workers live as long as the process.
cpu_ns() {
    cat /proc/"$1"/task/*/schedstat | awk '{ s += $1 } END { printf "%.0f\n", s }'
}

load() {
    "$bin/sluice-loadtest" run --url "http://${url[$1]}" --api-key "$key" --model gpt-4o-mini \
        --body-file "$work/body.json" --stream --rate "$rate" --duration "$2" \
        --header "x-mock-tokens: $tokens" --workers 1 -q --json "$3" >/dev/null
}

echo "== data planes: off http://${url[off]}, meter http://${url[meter]}, on http://${url[on]}; mock http://$mock"
echo "== $rate req/s, streamed, $tokens tokens, ~2 KB prompt, $rounds rounds of $round each, interleaved"
for side in off meter on; do
    load "$side" 1s "$work/warmup-$side.json" # warm-up, not counted
done
: >"$out/rounds.tsv"
for r in $(seq 1 "$rounds"); do
    for side in $order; do
        t0="$(cpu_ns "${pid[$side]}")"
        load "$side" "$round" "$out/$side-$r.json"
        t1="$(cpu_ns "${pid[$side]}")"
        printf '%s\t%s\t%s\t%s\n' "$side" "$r" "$((t1 - t0))" "$out/$side-$r.json" >>"$out/rounds.tsv"
    done
done

# PROFILE=1: one more round against "on" under perf (software clock events:
# no hardware counters in this VM), the top of the flat profile kept.
# PROFILE_SIDE=off|meter|on chooses the side (default on); PERF_EVENTS
# what perf records (default "-F 1999 -e cpu-clock").
if [ -n "${PROFILE:-}" ]; then
    side="${PROFILE_SIDE:-on}"
    # PERF_EVENTS replaces the sampling (e.g. "-e probe_libc:malloc" after
    # `perf probe -x .../libc.so.6 malloc`, to count allocations).
    # shellcheck disable=SC2086
    perf record -q ${PERF_EVENTS:--F 1999 -e cpu-clock} -g -p "${pid[$side]}" -o "$work/perf.data" &
    perf_pid=$!
    sleep 0.5
    load "$side" "$round" "$out/$side-profiled.json"
    kill -INT "$perf_pid"
    wait "$perf_pid" || true
    perf report -i "$work/perf.data" --no-children --percent-limit 0.7 --stdio -g none \
        >"$out/profile-$side.txt" 2>/dev/null || true
    perf report -i "$work/perf.data" --children --percent-limit 2 --stdio -g none \
        >"$out/profile-$side-children.txt" 2>/dev/null || true
    perf report -i "$work/perf.data" --no-children --sort comm,dso --stdio -g none \
        >"$out/profile-$side-dso.txt" 2>/dev/null || true
    mv "$work/perf.data" "$out/perf-$side.data"
    echo "profile of '$side': $out/profile-$side.txt, $out/profile-$side-children.txt, $out/perf-$side.data"
fi

# Records written by "on" carry the counted tokens and the policy verdict.
head -c 600 "$work/on-records.jsonl" >"$out/on-record-sample.json" || true
head -c 600 "$work/off-records.jsonl" >"$out/off-record-sample.json" || true
head -c 600 "$work/meter-records.jsonl" >"$out/meter-record-sample.json" || true

python3 - "$out/rounds.tsv" <<'EOF'
import json, sys

rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1]) if line.strip()]
acc = {}
print(f"{'round':>5} {'side':>4} {'ok':>7} {'err':>5} {'cpu ms':>8} {'µs/req':>8} {'ttft p50':>9} {'ttft p99':>9}")
for side, rnd, ns, path in rows:
    rep = json.load(open(path))
    ok, err = rep["requests"]["ok"], rep["requests"]["errors"]
    cpu_s = int(ns) / 1e9
    t = rep["latency_us"]["ttft"] or {}
    print(f"{rnd:>5} {side:>4} {ok:>7} {err:>5} {cpu_s * 1000:>8.0f} {cpu_s / max(ok, 1) * 1e6:>8.1f}"
          f" {t.get('p50', 0) / 1000:>8.2f}ms {t.get('p99', 0) / 1000:>8.2f}ms")
    a = acc.setdefault(side, [0, 0, 0.0, []])
    a[0] += ok; a[1] += err; a[2] += cpu_s; a[3].append(cpu_s / max(ok, 1))
    if err:
        print(f"      error kinds: {rep['requests']['error_kinds']}")
print()
for side, (ok, err, cpu, per) in acc.items():
    print(f"{side:>4}: {ok} ok, {err} errors, {cpu:.2f} CPU s, {cpu / max(ok, 1) * 1e6:.1f} µs CPU per request "
          f"(rounds: {', '.join(f'{p * 1e6:.1f}' for p in per)})")
def per(side):
    return acc[side][2] / max(acc[side][0], 1)
if "off" in acc and "meter" in acc:
    print(f"metering alone: CPU per request {(per('meter') / per('off') - 1) * 100:+.1f}% of off")
if "off" in acc and "on" in acc:
    growth = (per("on") / per("off") - 1) * 100
    verdict = "PASS" if growth <= 10 else "FAIL"
    print(f"{verdict}: CPU per request with metering and policy on is {growth:+.1f}% of off (target <= +10%)")
EOF
echo "reports in $out/"
