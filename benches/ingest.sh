#!/usr/bin/env bash
# Record ingest into redb through the real path (issue 4's target: at least
# 100,000 records/s on this 2-core machine).
#
# Runs control/examples/ingest_bench.rs: it starts `sluice-control serve` on a
# fresh data directory, enrolls a data plane, and posts pre-built record
# batches (the data planes' wire format: JSON, (data plane id, sequence)
# keys) to the sync API over keep-alive connections; each batch goes through
# the writer thread and is committed in one redb write transaction with
# immediate durability before it is acknowledged. One line per run.
#
#   benches/ingest.sh                      # 3 runs of 200,000 records
#   benches/ingest.sh --batch 1000         # extra arguments go to the example
#
# Environment: BIN (a directory holding sluice-control and ingest_bench, used
# as they are; default: build them into target/release), RUNS (default 3).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${BIN:-}" ]; then
    control="$BIN/sluice-control"
    example="$BIN/ingest_bench"
else
    cargo build --release -p sluice-control --bins --examples
    control=target/release/sluice-control
    example=target/release/examples/ingest_bench
fi

for i in $(seq 1 "${RUNS:-3}"); do
    "$example" --bin "$control" "$@"
done
