# Plumbing shared by the benchmark scripts (overhead.sh, profile.sh,
# swap.sh): sourced, not run.

# bench_bins PACKAGE...: sets $bin to $BIN (binaries used as they are), or
# builds the packages in release and uses target/release.
bench_bins() {
    if [ -n "${BIN:-}" ]; then
        bin="$(cd "$BIN" && pwd)"
    else
        local args=() p
        for p in "$@"; do
            args+=(-p "$p")
        done
        cargo build --release "${args[@]}"
        bin="$(pwd)/target/release"
    fi
}

# bench_need COMMAND PACKAGE: exits, saying how to install it, when COMMAND
# is missing.
bench_need() {
    command -v "$1" >/dev/null || {
        echo "$1 not found: apt-get install -y $2" >&2
        exit 1
    }
}

# bench_workdir NAME: a scratch directory in $work. At exit every process in
# $pids (and $changer, when a script sets it) is stopped and $work removed.
bench_workdir() {
    work="$(mktemp -d "${TMPDIR:-/tmp}/sluice-$1.XXXXXX")"
    pids=()
    trap bench_cleanup EXIT
}

bench_cleanup() {
    local pid
    if [ -n "${changer:-}" ]; then
        kill "$changer" 2>/dev/null || true
    fi
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}

# wait_line FILE PREFIX: prints the first word after PREFIX on a line of FILE
# (scheme stripped), waiting up to 30 s for it to appear.
wait_line() {
    local file="$1" prefix="$2" i line
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

# bench_mock: starts the mock provider (one worker), sets $mock to its
# address, and $key and $sha to the benchmark's gateway key and its SHA-256.
bench_mock() {
    "$bin/sluice-loadtest" mock --listen 127.0.0.1:0 --workers 1 >"$work/mock.out" 2>"$work/mock.err" &
    pids+=($!)
    mock="$(wait_line "$work/mock.out" "listening on ")"
    key="sk-sluice-bench-3f9a1c0d2b7e4a6f8e5d1c2b3a4f5e6d"
    sha="$(printf %s "$key" | sha256sum | awk '{print $1}')"
}

# bench_snapshot MOCK_ADDR KEY_SHA256: a standalone snapshot on stdout: tenant
# "bench", gateway key k1, the mock as its OpenAI upstream (key from
# $SLUICE_BENCH_PROVIDER_KEY), a route for gpt-4o-mini.
bench_snapshot() {
    cat <<EOF
[[tenants]]
id = "bench"

[[api_keys]]
id = "k1"
tenant = "bench"
sha256 = "$2"

[[upstreams]]
name = "mock"
kind = "openai"
base_url = "http://$1"

[[provider_keys]]
id = "mockkey"
tenant = "bench"
api_key_env = "SLUICE_BENCH_PROVIDER_KEY"

[[routes]]
tenant = "bench"
model = "gpt-4o-mini"
targets = [{ upstream = "mock", provider_key = "mockkey" }]
EOF
}

# overhead_sides MOCK_ADDR KEY_SHA256 TOKENS: writes, in $work, the snapshots
# of overhead.sh's three sides (off.toml, meter.toml, on.toml) and its
# request body (body.json): see overhead.sh for what each side does.
overhead_sides() {
    local mock="$1" sha="$2" tokens="$3"
    # The snapshot both data planes share; "on" appends its extras below.
    bench_snapshot "$mock" "$sha" >"$work/off.toml"

    cp "$work/off.toml" "$work/meter.toml"
    cat >>"$work/meter.toml" <<'EOF'

    # Limits far above the load: every request pays for the check, none is refused.
    [[rate_limits]]
    tenant = "bench"
    rpm = 100000000
    tpm = 100000000000

    [[rate_limits]]
    tenant = "bench"
    key = "k1"
    rpm = 100000000
    tpm = 100000000000

    # $1M of credit: every request reserves and settles, none is refused.
    [[credits]]
    tenant = "bench"
    granted_micros = 1000000000000
EOF

    cp "$work/meter.toml" "$work/on.toml"
    # The policy of the criterion benchmark (benches/policy/*.toml).
    {
        printf "\n[[policies]]\ntenant = \"bench\"\ntoml = '''\n"
        cat benches/policy/head.toml
        echo
        cat benches/policy/pii.toml
        echo
        cat benches/policy/rules.toml
        printf "'''\n"
    } >>"$work/on.toml"

    # The request: a system message and a ~2 KB user prompt (the text of the
    # criterion policy benchmark), max_tokens = TOKENS.
    python3 - "$work/body.json" "$tokens" <<'EOF'
import json, sys
base = ("Please review the following function and explain what it does, step by step. "
        "The service handles about 1,200 requests per second at peak, with a p99 latency of 45 ms; "
        "we deploy it on 3 nodes behind a load balancer. Version 2.4 added retries.\n"
        "```rust\nfn backoff(attempt: u32) -> Duration {\n    let base = Duration::from_millis(50);\n    "
        "base * 2u32.saturating_pow(attempt.min(6))\n}\n```\n"
        "Is the cap reasonable, and what would you change for a batch job that runs at night? ")
prompt = (base * 20)[:2048]
body = {"model": "gpt-4o-mini", "max_tokens": int(sys.argv[2]), "temperature": 0.2,
        "messages": [{"role": "system", "content": "You are a careful senior engineer. Answer concisely."},
                     {"role": "user", "content": prompt}]}
json.dump(body, open(sys.argv[1], "w"))
EOF
}
