#!/usr/bin/env bash
# Recovery time of a node holding BYTES of retained data: fills a real `weir serve` with
# weir-perf produce, then times two restarts until the node listens (every partition opened and
# recovered before it does): after a clean stop, and after kill -9 while a producer writes.
#
#   perf/scripts/recovery.sh                      # 10 GB, 8 partitions, in /tmp/weir-recovery
#   BYTES=2000000000 PARTITIONS=64 SEGMENT_BYTES=1073741824 perf/scripts/recovery.sh
#
# Needs release binaries (cargo build --release -p weir-node -p weir-perf) and 2 × BYTES free.
set -euo pipefail

BYTES=${BYTES:-10000000000}
PARTITIONS=${PARTITIONS:-8}
DIR=${DIR:-/tmp/weir-recovery}
PORT=${PORT:-17400}
WEIR=${WEIR:-target/release/weir}
PERF=${WEIR_PERF:-target/release/weir-perf}
RECORD=1024

rm -rf "$DIR"
mkdir -p "$DIR"
export WEIR_DATA_DIR="$DIR/data" WEIR_LISTEN="127.0.0.1:$PORT" WEIR_SEGMENT_BYTES=${SEGMENT_BYTES:-268435456}
node_pid=

start_node() {
    : >"$DIR/node.log"
    "$WEIR" serve >"$DIR/node.log" 2>&1 &
    node_pid=$!
}

# Seconds from now until the node says it listens. The script polls the node's log: a
# measuring script, not a test, and 10 ms is far below the figures it measures.
seconds_until_listening() {
    local start=$1
    until grep -q "weir: listening" "$DIR/node.log"; do
        kill -0 "$node_pid" 2>/dev/null || { cat "$DIR/node.log"; exit 1; }
        sleep 0.01
    done
    echo "$(date +%s.%N) - $start" | bc
}

produce() {
    "$PERF" produce --server "127.0.0.1:$PORT" --transport tcp --topic recovery \
        --partitions "$PARTITIONS" --record-size "$RECORD" "$@" >>"$DIR/produce.log" 2>&1
}

start_node
seconds_until_listening "$(date +%s.%N)" >/dev/null
echo "filling $BYTES bytes over $PARTITIONS partitions"
fill_start=$(date +%s)
produce --records $((BYTES / RECORD))
echo "filled in $(($(date +%s) - fill_start)) s; on disk: $(du -sh "$DIR/data" | cut -f1)"

kill -TERM "$node_pid"
wait "$node_pid" || true
t=$(date +%s.%N)
start_node
echo "restart after a clean stop: $(seconds_until_listening "$t") s"

# A producer writes while the node is killed: the active segments end in unsynced, torn data.
produce --duration 30 &
producer=$!
sleep 3
kill -KILL "$node_pid"
wait "$node_pid" 2>/dev/null || true
wait "$producer" 2>/dev/null || true
t=$(date +%s.%N)
start_node
echo "restart after kill -9 under load: $(seconds_until_listening "$t") s"
grep -E "WARN|ERROR" "$DIR/node.log" | head -5 || true

# The scrubber's rate: with no client, what the node reads is the scrubber's checking of
# sealed segments (read_bytes of /proc/PID/io counts what the process had the device read).
read_bytes() { awk '/^read_bytes/ {print $2}' "/proc/$node_pid/io"; }
before=$(read_bytes)
sleep "${SCRUB_SECONDS:-30}"
after=$(read_bytes)
echo "scrubber, idle node: $(( (after - before) / ${SCRUB_SECONDS:-30} / 1048576 )) MiB/s read over ${SCRUB_SECONDS:-30} s"

kill -TERM "$node_pid"
wait "$node_pid" || true
rm -rf "$DIR"
