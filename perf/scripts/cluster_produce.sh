#!/usr/bin/env bash
# RF=3 produce with acks=all on a 3-node loopback cluster, next to a single node, same sitting.
set -u
W=${WEIR:-$PWD/target/release/weir}
P=${WEIR_PERF:-$PWD/target/release/weir-perf}
D=$(mktemp -d /tmp/perfc.XXXX)
cd $D
$W cluster ca --dir ca >/dev/null
PEERS=1@127.0.0.1:17600,2@127.0.0.2:17600,3@127.0.0.3:17600
for i in 1 2 3; do
  WEIR_LOG=warn $W serve --shards 1 --node-id $i --peers $PEERS --listen 127.0.0.$i:17400 \
    --data-dir data-$i --cluster-ca-cert ca/ca.pem --cluster-ca-key ca/ca.key > out$i 2> err$i &
done
B=127.0.0.1:17400,127.0.0.2:17400,127.0.0.3:17400
for t in $(seq 1 100); do
  $W --server $B --transport tcp cluster status --json 2>/dev/null | grep -q '"up":false' || \
  { $W --server $B --transport tcp cluster status --json 2>/dev/null | grep -c '"up":true' | grep -q 3 && break; }
  sleep 0.2
done
$W --server $B --transport tcp topic create perf --partitions 3 --replication-factor 3 --min-insync-replicas 2
$W --server $B --transport tcp topic describe perf
$P produce --server $B --transport tcp --acks all --duration 5 --warmup 1 --producers 1 --label "rf3 acks=all" 2>&1 | tail -8
$P produce --server $B --transport tcp --acks leader --duration 5 --warmup 1 --producers 1 --label "rf3 acks=leader" 2>&1 | tail -8
kill %1 %2 %3; wait
# single node, same settings, same sitting
WEIR_LOG=warn $W serve --shards 1 --listen 127.0.0.1:17400 --data-dir single > outs 2> errs &
sleep 1
$W --server 127.0.0.1:17400 --transport tcp topic create perf --partitions 3
$P produce --server 127.0.0.1:17400 --transport tcp --acks all --duration 5 --warmup 1 --producers 1 --label "single acks=all" 2>&1 | tail -8
kill %1; wait
