#!/bin/sh
# The node benchmark matrix of BENCHMARKS.md. Every run starts a fresh embedded node and measures
# the raw disk (fdatasync per block when the node syncs) in the same run.
#   perf/scripts/bench.sh [OUT_DIR]      (build first: cargo build --release)
# Environment: WEIR_PERF (the binary), DIR (filesystem for node data and the disk baseline),
# SECONDS_PER_RUN (measured seconds per run).
set -eu
P=${WEIR_PERF:-./target/release/weir-perf}
OUT=${1:-bench-results}
DIR=${DIR:-/tmp}
T=${SECONDS_PER_RUN:-5}
mkdir -p "$OUT"
run() { name=$1; shift; echo "== $name" >&2; "$P" "$@" --embedded --dir "$DIR" --json --label "$name" > "$OUT/$name.json"; }

for flush in fsync interval; do
  for transport in quic tcp; do
    for batch in 65536 1048576; do
      run "produce-$transport-$flush-$batch" produce --transport "$transport" --flush "$flush" \
        --batch-bytes "$batch" --duration "$T" --warmup 1 --baseline --baseline-bytes 1073741824
    done
  done
done
for transport in quic tcp; do
  run "consume-$transport" consume --transport "$transport" --fill-bytes 2147483648 --baseline \
    --baseline-bytes 1073741824
done
# e2e at 10 % and 50 % of the best produce throughput measured above (fsync, 1 MiB batches).
for transport in quic tcp; do
  max=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['mb_per_s'])" "$OUT/produce-$transport-fsync-1048576.json")
  for pct in 10 50; do
    rate=$(python3 -c "print(int($max * $pct / 100 * 1e6))")
    run "e2e-$transport-$pct" e2e --transport "$transport" --rate "${rate}B" --duration "$T" --warmup 1 \
      --batch-bytes 1048576 --hgrm "$OUT/e2e-$transport-$pct.hgrm"
  done
done
"$P" plot "$OUT"/e2e-*.json -o "$OUT/e2e.svg" --title "Weir e2e delivery latency (1 KiB records, fsync before ack)"
"$P" baseline net --bulk-bytes 1073741824 --rounds 5 --json > "$OUT/baseline-net.json"
python3 "$(dirname "$0")/table.py" "$OUT"
