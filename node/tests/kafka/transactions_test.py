"""confluent-kafka (librdkafka) transactions against a Weir node alone.

Usage: transactions_test.py BOOTSTRAP PHASE, PHASE one of:
- `main`: transactions commit and abort across two partitions, with offsets sent to a group;
  a read-committed consumer reads exactly the committed records, a read-uncommitted one all
  of them; a second producer of the same transactional id fences the first; a transaction left
  open by a producer that vanished is aborted at its timeout, and read-committed readers then
  move past it.
- `open`: begins a transaction, writes to it and exits without ending it (the node is then
  killed and restarted by the caller).
- `after`: the transaction left open before the restart is aborted at its timeout; a
  read-committed consumer reads what another producer committed after it, and nothing of it.

Prints "ok" and exits 0 on success; an assertion or an exception otherwise.
"""

import os
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

BOOTSTRAP, PHASE = sys.argv[1], sys.argv[2]
TOPIC = "tx"
# Short, so that the test waits little for an abandoned transaction to be aborted.
TIMEOUT_MS = 3000


def producer(txn_id, **extra):
    conf = {
        "bootstrap.servers": BOOTSTRAP,
        "transactional.id": txn_id,
        "transaction.timeout.ms": TIMEOUT_MS,
        "linger.ms": 0,
    }
    conf.update(extra)
    p = Producer(conf)
    p.init_transactions(30)
    return p


def send(p, values, partition):
    for v in values:
        p.produce(TOPIC, value=v.encode(), partition=partition)
    p.flush(30)


def read_all(isolation, until_value=None, timeout_s=60):
    """Every value of the topic from the start, as a consumer of `isolation` reads it: until
    it reads `until_value`, or until it has read to the end of both partitions."""
    c = Consumer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "group.id": f"reader-{isolation}-{time.monotonic_ns()}",
            "isolation.level": isolation,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
        }
    )
    c.assign([TopicPartition(TOPIC, p, 0) for p in (0, 1)])
    seen, at_end = [], set()
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == -191:  # _PARTITION_EOF
                at_end.add(m.partition())
                if until_value is None and at_end == {0, 1}:
                    break
                continue
            raise KafkaException(m.error())
        seen.append(m.value().decode())
        if m.value().decode() == until_value:
            break
    c.close()
    return seen


def main():
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    admin.create_topics([NewTopic(TOPIC, num_partitions=2, replication_factor=1)])[TOPIC].result(30)
    p = producer("txn-a")
    p.begin_transaction()
    send(p, [f"c1-{i}" for i in range(10)], 0)
    send(p, [f"c1-{i}" for i in range(10, 20)], 1)
    p.commit_transaction(30)
    p.begin_transaction()
    send(p, [f"a-{i}" for i in range(5)], 0)
    send(p, [f"a-{i}" for i in range(5, 8)], 1)
    p.abort_transaction(30)
    p.begin_transaction()
    send(p, [f"c2-{i}" for i in range(3)], 1)
    group = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "txn-group"})
    offsets = [TopicPartition(TOPIC, 0, 7)]
    p.send_offsets_to_transaction(offsets, group.consumer_group_metadata(), 30)
    p.commit_transaction(30)
    committed = sorted(v for v in read_all("read_committed") if not v.startswith("x"))
    want = sorted([f"c1-{i}" for i in range(20)] + [f"c2-{i}" for i in range(3)])
    assert committed == want, committed
    everything = read_all("read_uncommitted")
    assert sorted(everything) == sorted(want + [f"a-{i}" for i in range(8)]), everything
    got = group.committed([TopicPartition(TOPIC, 0)], timeout=30)
    assert got[0].offset == 7, got
    group.close()

    # A second producer of the same transactional id fences the first.
    p2 = producer("txn-a")
    p.begin_transaction()
    try:
        send(p, ["zombie"], 0)
        p.commit_transaction(30)
        raise AssertionError("a fenced producer committed")
    except KafkaException as e:
        assert e.args[0].fatal() or "fenced" in str(e).lower(), e
    p2.begin_transaction()
    send(p2, ["x-after-fence"], 0)
    p2.commit_transaction(30)
    assert "zombie" not in read_all("read_committed", until_value="x-after-fence")

    # A producer that vanishes with its transaction open: aborted at its timeout, after which
    # read-committed readers move past it.
    open_and_vanish("txn-gone", "gone")


def open_and_vanish(txn_id, prefix):
    p = producer(txn_id)
    p.begin_transaction()
    send(p, [f"{prefix}-{i}" for i in range(4)], 0)
    send(p, [f"{prefix}-{i}" for i in range(4, 6)], 1)
    if PHASE == "open":
        # Gone without a word: no abort, no close.
        print("ok", flush=True)
        os._exit(0)
    committed_after(prefix)


def committed_after(prefix):
    later = producer("txn-later")
    later.begin_transaction()
    send(later, [f"x-{prefix}-later"], 1)
    later.commit_transaction(30)
    seen = read_all("read_committed", until_value=f"x-{prefix}-later", timeout_s=TIMEOUT_MS / 1000 + 60)
    assert f"x-{prefix}-later" in seen, seen
    assert not any(v.startswith(f"{prefix}-") for v in seen), seen


if PHASE == "main":
    main()
elif PHASE == "open":
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    admin.create_topics([NewTopic(TOPIC, num_partitions=2, replication_factor=1)])[TOPIC].result(30)
    open_and_vanish("txn-crash", "crash")
elif PHASE == "after":
    committed_after("crash")
else:
    raise SystemExit(f"unknown phase {PHASE}")
print("ok")
