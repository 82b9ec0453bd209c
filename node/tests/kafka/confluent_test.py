"""confluent-kafka (librdkafka) against a Weir node's Kafka listener.

Run by node/tests/kafka_clients.rs with the bootstrap address as its argument; exits non-zero
(an assertion or an exception) on any failure. Covers: admin create, describe configs, list and
delete topics; an idempotent producer with headers (duplicate keys included), explicit
timestamps and binary keys and values, read back exactly; a group of three consumers splitting
a 6-partition topic and committing, one leaving and the other two taking over without loss.
"""

import sys
import threading
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

BOOTSTRAP = sys.argv[1]
DEADLINE_S = 60


def until(what, done, timeout=DEADLINE_S):
    """Polls `done` until it holds; fails naming `what` after `timeout` seconds."""
    end = time.monotonic() + timeout
    while not done():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def admin_topics():
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    futures = admin.create_topics(
        [
            NewTopic("ck", num_partitions=6, replication_factor=1, config={"retention.ms": "3600000"}),
            NewTopic("ck-del", num_partitions=2, replication_factor=1),
            NewTopic("ck-exact", num_partitions=3, replication_factor=1),
        ]
    )
    for topic, f in futures.items():
        f.result(timeout=30)
    # A second create of the same topic is refused as Kafka refuses it.
    again = admin.create_topics([NewTopic("ck", num_partitions=1, replication_factor=1)])["ck"]
    try:
        again.result(timeout=30)
        raise AssertionError("creating an existing topic succeeded")
    except KafkaException as e:
        assert "TOPIC_ALREADY_EXISTS" in str(e) or e.args[0].name() == "TOPIC_ALREADY_EXISTS", e
    md = admin.list_topics(timeout=30)
    assert {"ck", "ck-del", "ck-exact"} <= set(md.topics), md.topics
    assert len(md.topics["ck"].partitions) == 6
    res = ConfigResource(ConfigResource.Type.TOPIC, "ck")
    configs = admin.describe_configs([res])[res].result(timeout=30)
    assert configs["retention.ms"].value == "3600000", configs["retention.ms"]
    assert configs["cleanup.policy"].value == "delete", configs["cleanup.policy"]
    admin.delete_topics(["ck-del"])["ck-del"].result(timeout=30)
    until("ck-del to go", lambda: "ck-del" not in admin.list_topics(timeout=30).topics)


def exact_round_trip():
    """Idempotent, keyed, with headers and explicit timestamps: read back field for field."""
    p = Producer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "partitioner": "murmur2_random",
            "compression.type": "zstd",
        }
    )
    sent = []
    errors = []
    base_ts = 1_700_000_000_000
    for i in range(3000):
        key = bytes([i % 256, (i * 7) % 256]) + b"k%d" % i
        value = bytes((i + j) % 256 for j in range(i % 300)) if i % 50 else None
        headers = [("h", b"one"), ("h", b"two"), ("empty", b""), ("n", str(i).encode())]
        ts = base_ts + (i * 37) % 5000
        p.produce("ck-exact", key=key, value=value, headers=headers, timestamp=ts,
                  on_delivery=lambda err, msg: errors.append(err) if err else None)
        sent.append((key, value, headers, ts))
        p.poll(0)
    assert p.flush(30) == 0
    assert not errors, errors[:3]
    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "exact-reader", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.assign([TopicPartition("ck-exact", p_, 0) for p_ in range(3)])
    got = {}
    by_partition = {}
    until("every record read", lambda: poll_into(c, got, by_partition) >= len(sent))
    c.close()
    for key, value, headers, ts in sent:
        m = got[key]
        assert m["value"] == value, (key, m["value"], value)
        assert m["headers"] == headers, (key, m["headers"], headers)
        assert m["ts"] == ts, (key, m["ts"], ts)
    # The same key always went to the same partition, and offsets are dense.
    for part, offsets in by_partition.items():
        assert offsets == list(range(len(offsets))), part


def poll_into(c, got, by_partition):
    for m in c.consume(num_messages=500, timeout=0.2):
        if m.error():
            raise KafkaException(m.error())
        got[m.key()] = {"value": m.value(), "headers": m.headers() or [], "ts": m.timestamp()[1]}
        by_partition.setdefault(m.partition(), []).append(m.offset())
    return len(got)


class Member(threading.Thread):
    """A consumer of group `cg` that records what it reads and commits as it goes."""

    def __init__(self, name):
        super().__init__(daemon=True)
        self.name = name
        self.seen = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.error = None
        self.assignment = []
        self.c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "cg", "auto.offset.reset": "earliest",
                           "enable.auto.commit": False, "session.timeout.ms": 6000,
                           "heartbeat.interval.ms": 500, "client.id": name})

    def run(self):
        try:
            self.c.subscribe(["ck"])
            while not self.stop.is_set():
                msgs = self.c.consume(num_messages=100, timeout=0.1)
                with self.lock:
                    for m in msgs:
                        if m.error():
                            raise KafkaException(m.error())
                        self.seen.append((m.partition(), m.offset(), m.key()))
                    self.assignment = [tp.partition for tp in self.c.assignment()]
                if msgs:
                    self.c.commit(asynchronous=False)
            self.c.close()
        except Exception as e:  # reported by the main thread
            self.error = e

    def keys(self):
        with self.lock:
            return {k for _, _, k in self.seen}


def produce_keys(start, count):
    p = Producer({"bootstrap.servers": BOOTSTRAP, "acks": "all", "enable.idempotence": True})
    for i in range(start, start + count):
        p.produce("ck", key=b"g%d" % i, value=b"v%d" % i)
        p.poll(0)
    assert p.flush(30) == 0


def group_of_three():
    produce_keys(0, 600)
    members = [Member(f"m{i}") for i in range(3)]
    for m in members:
        m.start()

    def check():
        for m in members:
            if m.error:
                raise m.error

    def balanced(ms, per):
        check()
        owned = [sorted(m.assignment) for m in ms]
        return all(len(o) == per for o in owned) and sorted(sum(owned, [])) == list(range(6))

    until("three members with two partitions each", lambda: balanced(members, 2))
    first = {b"g%d" % i for i in range(600)}
    until("the first 600 records", lambda: first <= set().union(*(m.keys() for m in members)))
    # One member leaves (LeaveGroup on close); the other two take over its partitions.
    members[2].stop.set()
    members[2].join(30)
    assert members[2].error is None, members[2].error
    until("two members with three partitions each", lambda: balanced(members[:2], 3))
    produce_keys(600, 600)
    everything = {b"g%d" % i for i in range(1200)}
    until("every record after the leave", lambda: everything <= set().union(*(m.keys() for m in members)))
    for m in members[:2]:
        m.stop.set()
        m.join(30)
        assert m.error is None, m.error
    # What they committed is the end of every partition.
    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "cg"})
    committed = c.committed([TopicPartition("ck", p_) for p_ in range(6)], timeout=30)
    for tp in committed:
        low, high = c.get_watermark_offsets(tp, timeout=30)
        assert tp.offset == high, (tp, high)
    c.close()


if __name__ == "__main__":
    admin_topics()
    exact_round_trip()
    group_of_three()
    print("ok")
