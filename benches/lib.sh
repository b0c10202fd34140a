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
