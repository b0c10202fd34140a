#!/usr/bin/env bash
# Where a proxied request's added latency goes, segment by segment, for
# Sluice (io_uring and epoll) and nginx under the same load.
#
# At 1,000 req/s every process sleeps between requests, so a request's time
# to first token is a chain of wake-ups and work: the load generator wakes
# the proxy, the proxy works and wakes the mock, the mock works and wakes the
# proxy, the proxy works and wakes the load generator. The scheduler's trace
# (`perf sched record`, tracepoints: this VM has them) logs each wake-up and
# each switch-in, so critical_path.py can split every request into those
# seven segments and print their percentiles. A target that adds latency
# shows where: in its own work (the request side up to the upstream write,
# the response side up to the client write) or in the wake-ups it pays for.
# The trace costs every target the same few µs a wake-up; compare segments
# between targets, not with `compare`'s TTFT.
#
#   benches/critical_path.sh
#
# Environment: BIN (a directory with the release binaries, used as they are;
# default: build them into target/release), OUT (default
# target/critical-path), RATE (default 1000), TOKENS (default 50), ROUNDS
# (default 4; each traces every target for ROUND seconds, in turn), ROUND
# (default 4), TARGETS (default "sluice sluice-epoll nginx"; nginx is skipped
# when not installed). Needs perf and root (or perf_event_paranoid <= 1).
set -euo pipefail
cd "$(dirname "$0")/.."

out="${OUT:-target/critical-path}"
rate="${RATE:-1000}"
tokens="${TOKENS:-50}"
rounds="${ROUNDS:-4}"
secs="${ROUND:-4}"
targets="${TARGETS:-sluice sluice-epoll nginx}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

. benches/lib.sh
bench_need perf linux-perf
bench_bins sluice-dataplane sluice-loadtest
bench_workdir critical-path

bench_mock
bench_snapshot "$mock" "$sha" >"$work/snapshot.toml"

declare -A url proxy
start_sluice() { # NAME EXTRA_ENV...
    local name="$1"
    shift
    env "$@" SLUICE_BENCH_PROVIDER_KEY=sk-mock-provider-key RUST_LOG=warn "$bin/sluice-dataplane" \
        --listen 127.0.0.1:0 --admin 127.0.0.1:0 --snapshot "$work/snapshot.toml" \
        --records "$work/$name-records.jsonl" --workers 1 --no-pin >"$work/$name.out" 2>"$work/$name.err" &
    pids+=($!)
    url[$name]="$(wait_line "$work/$name.out" "listening on ")"
    proxy[$name]=sluice-worker-0
}
for t in $targets; do
    case "$t" in
    sluice) start_sluice sluice ;;
    sluice-epoll) start_sluice sluice-epoll MONOIO_FORCE_LEGACY_DRIVER=1 ;;
    nginx)
        nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"
        if [ ! -x "$nginx_bin" ]; then
            echo "nginx not found (apt-get install -y nginx-light): skipping it" >&2
            continue
        fi
        port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
        mkdir -p "$work/nginx"
        sed -e "s|{{WORKERS}}|1|; s|{{LISTEN}}|127.0.0.1:$port|; s|{{UPSTREAM}}|$mock|; s|{{DIR}}|$work/nginx|" \
            benches/nginx/nginx.conf.tmpl >"$work/nginx/nginx.conf"
        "$nginx_bin" -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" \
            -g 'daemon off;' 2>"$work/nginx.err" &
        pids+=($!)
        url[nginx]="127.0.0.1:$port"
        proxy[nginx]=nginx
        for _ in $(seq 1 50); do
            (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
            sleep 0.1
        done
        ;;
    *)
        echo "unknown target $t" >&2
        exit 2
        ;;
    esac
done

load() { # URL DURATION JSON
    "$bin/sluice-loadtest" run --url "http://$1" --api-key "$key" --model gpt-4o-mini --stream \
        --rate "$rate" --duration "$2" --header "x-mock-tokens: $tokens" --workers 1 -q --json "$3" >/dev/null
}

for t in "${!url[@]}"; do
    load "${url[$t]}" 2s "$work/warmup-$t.json"
done
echo "== critical path at $rate req/s, $tokens tokens, $rounds rounds of ${secs}s per target"
for r in $(seq 1 "$rounds"); do
    for t in $targets; do
        [ -n "${url[$t]:-}" ] || continue
        perf sched record -q -o "$work/sched.data" -- sleep "$secs" >/dev/null 2>&1 &
        rec=$!
        load "${url[$t]}" "$((secs + 1))s" "$work/load-$t-$r.json"
        wait "$rec" || true
        perf sched timehist -w -i "$work/sched.data" >"$work/timehist-$t-$r.txt" 2>/dev/null
        rm -f "$work/sched.data"
    done
done
for t in $targets; do
    [ -n "${url[$t]:-}" ] || continue
    echo "-- $t"
    python3 benches/critical_path.py "${proxy[$t]}" "$work"/timehist-"$t"-[0-9]*.txt --json "$out/$t.json" |
        tee "$out/$t.txt"
done
echo "results in $out/"
