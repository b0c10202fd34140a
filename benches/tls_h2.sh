#!/usr/bin/env bash
# What do TLS and HTTP/2 cost per streamed request, against plaintext
# HTTP/1.1? (issue 20's benchmark.)
#
# Starts, from release builds, the mock provider and one standalone data
# plane with both listeners (plain, and TLS with a certificate from a
# throwaway CA made here by the openssl CLI). Then runs the same streaming
# load (open loop, fixed rate) through it four ways, in interleaved rounds:
#   h1:     HTTP/1.1 on the plain listener;
#   h1-tls: HTTP/1.1 over TLS 1.3;
#   h2-tls: HTTP/2 over TLS 1.3 (ALPN h2);
#   h2c:    HTTP/2 with prior knowledge on the plain listener;
# and reads the data plane's CPU (/proc/PID/task/*/schedstat) around every
# round: CPU per request = CPU seconds / requests served. The load tester
# keeps its connections (one request at a time on each, for every side), so
# handshakes are a small share; TTFT is the load tester's.
#
#   benches/tls_h2.sh
#
# Environment: BIN (a directory with the release binaries, used as they are;
# default: build them into target/release), OUT (default target/tls_h2),
# RATE (req/s, default 500), ROUND (default 4s), ROUNDS (default 3), TOKENS
# (per response, default 50), WORKERS (data plane workers, default 1),
# ORDER (default "h1 h1-tls h2-tls h2c").
set -euo pipefail
cd "$(dirname "$0")/.."

out="${OUT:-target/tls_h2}"
rate="${RATE:-500}"
round="${ROUND:-4s}"
rounds="${ROUNDS:-3}"
tokens="${TOKENS:-50}"
workers="${WORKERS:-1}"
order="${ORDER:-h1 h1-tls h2-tls h2c}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

. benches/lib.sh
bench_need openssl openssl
bench_bins sluice-dataplane sluice-loadtest
bench_workdir tls-h2

bench_mock
bench_snapshot "$mock" "$sha" >"$work/snapshot.toml"

# A throwaway CA and a certificate for localhost.
(
    cd "$work"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem \
        -days 1 -subj "/CN=bench CA" -addext basicConstraints=critical,CA:TRUE \
        -addext keyUsage=critical,keyCertSign 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout leaf.key -out leaf.csr \
        -subj "/CN=localhost" 2>/dev/null
    printf 'subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n' >leaf.ext
    openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out leaf.pem -days 1 \
        -extfile leaf.ext 2>/dev/null
)

SLUICE_BENCH_PROVIDER_KEY=sk-mock-provider-key RUST_LOG=warn "$bin/sluice-dataplane" \
    --listen 127.0.0.1:0 --listen-tls 127.0.0.1:0 --tls-cert "$work/leaf.pem" --tls-key "$work/leaf.key" \
    --admin 127.0.0.1:0 --snapshot "$work/snapshot.toml" --records "$work/records.jsonl" \
    --workers "$workers" --no-pin >"$work/dp.out" 2>"$work/dp.err" &
dp=$!
pids+=($!)
plain="$(wait_line "$work/dp.out" "listening on ")"
tls="$(wait_line "$work/dp.out" "tls listening on ")"
tls_port="${tls##*:}"

cpu_ns() {
    cat /proc/"$1"/task/*/schedstat | awk '{ s += $1 } END { printf "%.0f\n", s }'
}

load() {
    local args
    case "$1" in
        h1) args=(--url "http://$plain") ;;
        h1-tls) args=(--url "https://localhost:$tls_port" --tls-ca "$work/ca.pem") ;;
        h2-tls) args=(--url "https://localhost:$tls_port" --tls-ca "$work/ca.pem" --http2) ;;
        h2c) args=(--url "http://$plain" --http2) ;;
    esac
    "$bin/sluice-loadtest" run "${args[@]}" --api-key "$key" --model gpt-4o-mini --stream \
        --rate "$rate" --duration "$2" --header "x-mock-tokens: $tokens" --workers 1 -q --json "$3" >/dev/null
}

echo "== data plane: plain http://$plain, TLS https://localhost:$tls_port; mock http://$mock"
echo "== $rate req/s, streamed, $tokens tokens, $rounds rounds of $round each, interleaved: $order"
for side in $order; do
    load "$side" 1s "$work/warmup-$side.json" # warm-up, not counted
done
: >"$out/rounds.tsv"
for r in $(seq 1 "$rounds"); do
    for side in $order; do
        t0="$(cpu_ns "$dp")"
        load "$side" "$round" "$out/$side-$r.json"
        t1="$(cpu_ns "$dp")"
        printf '%s\t%s\t%s\t%s\n' "$side" "$r" "$((t1 - t0))" "$out/$side-$r.json" >>"$out/rounds.tsv"
    done
done

python3 - "$out/rounds.tsv" <<'EOF'
import collections, json, sys

# side -> [(round, CPU s, report)], in the order the rounds ran.
by_side = collections.defaultdict(list)
for line in open(sys.argv[1]):
    side, rnd, ns, path = line.split("\t")
    by_side[side].append((rnd, int(ns) / 1e9, json.load(open(path.strip()))))

def cpu_per_request(runs):
    served = sum(rep["requests"]["ok"] for _, _, rep in runs)
    return sum(cpu for _, cpu, _ in runs) / max(served, 1)

base = cpu_per_request(by_side["h1"]) if "h1" in by_side else None
for side, runs in by_side.items():
    per = cpu_per_request(runs)
    errors = sum(rep["requests"]["errors"] for _, _, rep in runs)
    ttft = [(rep["latency_us"]["ttft"] or {}) for _, _, rep in runs]
    detail = "; ".join(
        f"r{rnd} {cpu / max(rep['requests']['ok'], 1) * 1e6:.1f} µs, ttft p50/p99 "
        f"{t.get('p50', 0) / 1000:.2f}/{t.get('p99', 0) / 1000:.2f} ms"
        for (rnd, cpu, rep), t in zip(runs, ttft)
    )
    ratio = f" = {per / base:.2f}x h1" if base else ""
    print(f"{side:>6}: {per * 1e6:6.1f} µs CPU/request{ratio}, {errors} errors  [{detail}]")
EOF
echo "reports in $out/"
