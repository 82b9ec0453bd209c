"""kafka-python's idempotent producer against a Weir node, with 1, 2 and 5 requests in flight
and every codec (its batches are stored as sent, compressed).

Run by node/tests/kafka_clients.rs with the bootstrap address as its argument; exits non-zero
(an assertion or an exception) on any failure. Each record is acknowledged once; the offsets
acknowledged on a partition are 0, 1, 2... in the order the records were sent; a consumer
reads every record back exactly once, at the offset it was acknowledged at.

kafka-python's own test of this (test_idempotent_producer_max_in_flight) races inside the
client: its consumer subscribes while the consumer's first Metadata request is on its way, and
kafka-python 3.0 then loses the subscription now and then (the TODO in its cluster.py
`set_topics`; the Java client fixed the same race in KAFKA-7831), whatever the broker does.
kafka_clients.rs runs it on its own, a failure retried. This consumer is assigned its
partitions, which needs no Metadata of them.
"""

import sys

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.structs import TopicPartition

BOOTSTRAP = sys.argv[1]
PARTITIONS, RECORDS = 4, 300


def produce(topic, in_flight, codec):
    """Sends RECORDS keyed records in small batches; returns {value: (partition, offset)}."""
    producer = KafkaProducer(
        bootstrap_servers=BOOTSTRAP,
        enable_idempotence=True,
        max_in_flight_requests_per_connection=in_flight,
        compression_type=codec,
        # Small batches, so that several requests are in flight at once.
        batch_size=256,
        linger_ms=1,
    )
    values = [f"{in_flight}-{codec}-{i}".encode() for i in range(RECORDS)]
    futures = [producer.send(topic, key=str(i % 7).encode(), value=v) for i, v in enumerate(values)]
    acked = {v: f.get(timeout=30) for v, f in zip(values, futures)}
    producer.close()
    by_partition = {}
    for v in values:
        by_partition.setdefault(acked[v].partition, []).append(acked[v].offset)
    for partition, offsets in by_partition.items():
        assert offsets == list(range(len(offsets))), (partition, offsets)
    return {v: (m.partition, m.offset) for v, m in acked.items()}


def consume(topic):
    """Every record of `topic`, as {value: (partition, offset)}; fails on a record read twice."""
    consumer = KafkaConsumer(
        bootstrap_servers=BOOTSTRAP,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        consumer_timeout_ms=15000,
    )
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer.assign(partitions)
    # Nothing past what was acknowledged: a duplicate after the last record would show here.
    ends = consumer.end_offsets(partitions)
    assert sum(ends.values()) == RECORDS, ends
    seen = {}
    for record in consumer:
        assert record.value not in seen, ("read twice", record)
        seen[record.value] = (record.partition, record.offset)
        if len(seen) == RECORDS:
            break
    consumer.close()
    return seen


def main():
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    for in_flight, codec in ((1, None), (2, "lz4"), (5, "zstd"), (5, "snappy"), (2, "gzip")):
        topic = f"idempotent-{in_flight}-{codec}"
        admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
        acked = produce(topic, in_flight, codec)
        read = consume(topic)
        assert read == acked, (in_flight, codec, len(read), len(acked))
    admin.close()
    print("ok")


main()
