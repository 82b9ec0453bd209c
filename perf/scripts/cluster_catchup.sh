#!/usr/bin/env bash
# Catch-up of a restarted replica: a node killed, 1 GB produced to the other two, the node
# restarted; prints the bytes copied and the seconds from its start to its return to the ISR.
set -u
W=${WEIR:-$PWD/target/release/weir}
P=${WEIR_PERF:-$PWD/target/release/weir-perf}
D=$(mktemp -d /tmp/perfk.XXXX)
cd $D
$W cluster ca --dir ca >/dev/null
PEERS=1@127.0.0.1:17610,2@127.0.0.2:17610,3@127.0.0.3:17610
start() { WEIR_LOG=warn $W serve --shards 1 --node-id $1 --peers $PEERS --listen 127.0.0.$1:17410 \
    --data-dir data-$1 --cluster-ca-cert ca/ca.pem --cluster-ca-key ca/ca.key > out$1 2> err$1 & echo $! > pid$1; }
for i in 1 2 3; do start $i; done
B=127.0.0.1:17410,127.0.0.2:17410
sleep 3
$W --server $B --transport tcp topic create cu --partitions 1 --replication-factor 3 --min-insync-replicas 2 >/dev/null
kill -9 $(cat pid3); sleep 2
$P produce --server $B --transport tcp --acks all --topic cu --partitions 1 --records 1000000 --producers 1 2>&1 | grep throughput
start 3
t0=$(date +%s.%N)
for t in $(seq 1 600); do
  if $W --server $B --transport tcp topic describe cu --json 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); p=d["partitions"][0]; sys.exit(0 if len(p["isr"])==3 else 1)'; then break; fi
  sleep 0.1
done
t1=$(date +%s.%N)
du -sb data-1/partitions/cu-0 | cut -f1
python3 -c "print('catch-up seconds', $t1-$t0)"
for i in 1 2 3; do kill $(cat pid$i) 2>/dev/null; done; wait
