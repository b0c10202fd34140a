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
# and, when nginx is installed, nginx in front of the same mock
# (benches/nginx/nginx.conf.tmpl, the compare baseline, plus a TLS listener
# with the same certificate, as many worker processes as Sluice's workers):
#   nginx:     HTTP/1.1 on its plain listener;
#   nginx-tls: HTTP/1.1 over TLS 1.3 (OpenSSL);
# and reads each proxy's CPU (/proc/PID/task/*/schedstat) around every
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
# ORDER (default "h1 h1-tls h2-tls h2c", then "nginx nginx-tls" when nginx
# is installed).
set -euo pipefail
cd "$(dirname "$0")/.."

out="${OUT:-target/tls_h2}"
rate="${RATE:-500}"
round="${ROUND:-4s}"
rounds="${ROUNDS:-3}"
tokens="${TOKENS:-50}"
workers="${WORKERS:-1}"
if command -v nginx >/dev/null; then
    order="${ORDER:-h1 h1-tls h2-tls h2c nginx nginx-tls}"
else
    order="${ORDER:-h1 h1-tls h2-tls h2c}"
fi
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

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

if [[ " $order " == *" nginx"* ]]; then
    mkdir -p "$work/nginx"
    nginx_port="$(free_port)"
    nginx_tls_port="$(free_port)"
    sed -e "s|{{WORKERS}}|$workers|; s|{{UPSTREAM}}|$mock|; s|{{DIR}}|$work/nginx|g" \
        -e "s|listen {{LISTEN}} reuseport backlog=4096;|listen 127.0.0.1:$nginx_port reuseport backlog=4096;\n        listen 127.0.0.1:$nginx_tls_port ssl reuseport backlog=4096;\n        ssl_certificate $work/leaf.pem;\n        ssl_certificate_key $work/leaf.key;\n        ssl_protocols TLSv1.2 TLSv1.3;\n        ssl_session_cache shared:SSL:10m;|" \
        benches/nginx/nginx.conf.tmpl >"$work/nginx/nginx.conf"
    chmod 755 "$work"
    nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" -g 'daemon off;' \
        >"$work/nginx/out" 2>&1 &
    nginx_master=$!
    pids+=($!)
    for _ in $(seq 1 100); do
        if (exec 3<>/dev/tcp/127.0.0.1/"$nginx_tls_port") 2>/dev/null; then break; fi
        sleep 0.1
    done
fi

# cpu_ns PID...: CPU time of all the processes' threads, ns.
cpu_ns() {
    local p
    for p in "$@"; do
        cat /proc/"$p"/task/*/schedstat
    done | awk '{ s += $1 } END { printf "%.0f\n", s }'
}

# The processes that serve a side: the data plane, or nginx's master and
# workers.
servers() {
    case "$1" in
        nginx*) echo "$nginx_master" $(pgrep -P "$nginx_master") ;;
        *) echo "$dp" ;;
    esac
}

load() {
    local args
    case "$1" in
        h1) args=(--url "http://$plain") ;;
        h1-tls) args=(--url "https://localhost:$tls_port" --tls-ca "$work/ca.pem") ;;
        h2-tls) args=(--url "https://localhost:$tls_port" --tls-ca "$work/ca.pem" --http2) ;;
        h2c) args=(--url "http://$plain" --http2) ;;
        nginx) args=(--url "http://127.0.0.1:$nginx_port") ;;
        nginx-tls) args=(--url "https://localhost:$nginx_tls_port" --tls-ca "$work/ca.pem") ;;
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
        # shellcheck disable=SC2046
        t0="$(cpu_ns $(servers "$side"))"
        load "$side" "$round" "$out/$side-$r.json"
        # shellcheck disable=SC2046
        t1="$(cpu_ns $(servers "$side"))"
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
