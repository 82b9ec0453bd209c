"""confluent-kafka against a three-node Weir cluster, through a node failure.

Usage: cluster_test.py BOOTSTRAP. Creates a topic with three copies, checks that Metadata names
every node and a leader for each partition, produces with acks=all and idempotence, then prints
"kill" and waits for a line on stdin (the test kills a node meanwhile), produces again, and
reads everything back: every acknowledged record is there, none twice. The producer compresses
with zstd and the consumer checks every batch's CRC. Growing the topic is refused, as not served
in a cluster yet.
"""

import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

BOOTSTRAP = sys.argv[1]
TOPIC = "replicated"
PARTITIONS = 6


def until(what, done, timeout=60):
    """Polls `done` until it holds; an exception (a node still starting) counts as not yet."""
    end = time.monotonic() + timeout
    last = None
    while True:
        try:
            if done():
                return
        except KafkaException as e:
            last = e
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what} (last error: {last})")
        time.sleep(0.1)


def produce(p, start, count, acked):
    failed = []

    def report(err, msg):
        if err:
            failed.append(err)
        else:
            acked.append(msg.value())

    for i in range(start, start + count):
        p.produce(TOPIC, key=b"k%d" % i, value=b"v%d" % i, on_delivery=report)
        p.poll(0)
    assert p.flush(60) == 0
    assert not failed, failed[:3]


def main():
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    # A topic with three copies needs the three nodes registered: a cluster just started waits.
    until("three brokers", lambda: len(admin.list_topics(timeout=30).brokers) == 3)
    admin.create_topics([NewTopic(TOPIC, num_partitions=PARTITIONS, replication_factor=3)])[TOPIC].result(30)

    def described():
        md = admin.list_topics(timeout=30)
        t = md.topics.get(TOPIC)
        return len(md.brokers) == 3 and t is not None and len(t.partitions) == PARTITIONS and all(
            p.leader >= 0 and len(p.replicas) == 3 for p in t.partitions.values()
        )

    until("metadata naming three brokers and every partition's leader", described)
    # zstd: the batches are stored and replicated as sent, and served back as they were.
    p = Producer({"bootstrap.servers": BOOTSTRAP, "acks": "all", "enable.idempotence": True,
                  "message.timeout.ms": 60000, "linger.ms": 5, "compression.type": "zstd"})
    acked = []
    produce(p, 0, 2000, acked)
    print("kill", flush=True)
    assert sys.stdin.readline().strip() == "killed"
    produce(p, 2000, 2000, acked)
    # check.crcs: every batch served, rebuilt from what a replica stored, has its producer's CRC.
    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "cluster-reader", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "check.crcs": True})
    c.assign([TopicPartition(TOPIC, i, 0) for i in range(PARTITIONS)])
    seen = []
    end = time.monotonic() + 60
    while len(seen) < len(acked):
        if time.monotonic() > end:
            raise AssertionError(f"read {len(seen)} of {len(acked)}")
        for m in c.consume(num_messages=500, timeout=0.2):
            if m.error():
                raise KafkaException(m.error())
            seen.append(m.value())
    c.close()
    assert len(seen) == len(set(seen)), "a record was stored twice"
    assert set(acked) <= set(seen), "an acknowledged record is missing"
    # Growing a topic of a cluster is not served yet: refused, saying so, and nothing changes.
    try:
        admin.create_partitions([NewPartitions(TOPIC, PARTITIONS * 2)])[TOPIC].result(30)
        raise AssertionError("a topic of the cluster grew")
    except KafkaException as e:
        assert e.args[0].code() == KafkaError.INVALID_REQUEST, e
    assert len(admin.list_topics(TOPIC, timeout=30).topics[TOPIC].partitions) == PARTITIONS
    print(f"ok {len(acked)} acknowledged, {len(seen)} read", flush=True)


if __name__ == "__main__":
    main()
