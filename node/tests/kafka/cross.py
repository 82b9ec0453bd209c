"""Writes or reads records through confluent-kafka, for the cross-protocol test in
node/tests/kafka_clients.rs. Records are JSON lines, bytes as hex:
{"partition", "offset", "key", "value", "headers": [[k, v], ...], "timestamp"}.

  cross.py read BOOTSTRAP TOPIC COUNT   prints the first COUNT records of TOPIC (every partition)
  cross.py write BOOTSTRAP TOPIC        reads records (no partition/offset) from stdin, produces
                                        them with Kafka's murmur2 partitioner, and prints each
                                        with the partition and offset it was acknowledged at
"""

import json
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition


def hexed(b):
    return None if b is None else b.hex()


def unhexed(s):
    return None if s is None else bytes.fromhex(s)


def read(bootstrap, topic, count):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "cross-reader", "enable.auto.commit": False})
    partitions = c.list_topics(topic, timeout=30).topics[topic].partitions
    c.assign([TopicPartition(topic, p, 0) for p in partitions])
    out = []
    end = time.monotonic() + 60
    while len(out) < count:
        if time.monotonic() > end:
            raise AssertionError(f"read {len(out)} of {count}")
        for m in c.consume(num_messages=500, timeout=0.2):
            if m.error():
                raise KafkaException(m.error())
            out.append({"partition": m.partition(), "offset": m.offset(), "key": hexed(m.key()),
                        "value": hexed(m.value()), "headers": [[k, hexed(v)] for k, v in (m.headers() or [])],
                        "timestamp": m.timestamp()[1]})
    c.close()
    for r in out:
        print(json.dumps(r))


def write(bootstrap, topic):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                  "partitioner": "murmur2_random", "compression.type": "lz4", "linger.ms": 5})
    acked = []
    failed = []

    def report(r):
        # A delivery report carries no headers: the record's own are printed with its place.
        def done(err, msg):
            if err:
                failed.append(err)
            else:
                acked.append(dict(r, partition=msg.partition(), offset=msg.offset(), timestamp=msg.timestamp()[1]))
        return done

    for line in sys.stdin:
        r = json.loads(line)
        p.produce(topic, key=unhexed(r["key"]), value=unhexed(r["value"]),
                  headers=[(k, unhexed(v)) for k, v in r["headers"]], timestamp=r["timestamp"], on_delivery=report(r))
        p.poll(0)
    assert p.flush(30) == 0
    assert not failed, failed[:3]
    for r in acked:
        print(json.dumps(r))


if __name__ == "__main__":
    if sys.argv[1] == "read":
        read(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        write(sys.argv[2], sys.argv[3])
