"""kafka-python's admin client against a Weir node: what kafka-python's own integration tests
do not check of ElectLeaders, DescribeLogDirs and AlterReplicaLogDirs.

Run by node/tests/kafka_clients.rs with the bootstrap address as its argument; exits non-zero
(an assertion or an exception) on any failure. Covers: a preferred election of a named
partition, of every partition (a null list) and of unknown ones; an unclean election refused;
the data dir as the one log dir, with the sizes of the partitions written to and the
filesystem's size; a move to the log dir a replica is in, to another dir, and of an unknown
partition.
"""

import sys

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import LogDirNotFoundError, NoError, UnknownTopicOrPartitionError
from kafka.structs import TopicPartitionReplica

BOOTSTRAP = sys.argv[1]
ELECTION_NOT_NEEDED, UNKNOWN_TOPIC_OR_PARTITION, INVALID_REQUEST = 84, 3, 42


def codes(response):
    """{(topic, partition): error code} of an ElectLeaders response."""
    return {
        (r.topic, p.partition_id): p.error_code
        for r in response.replica_election_results
        for p in r.partition_result
    }


def elections(admin):
    named = codes(admin.elect_leaders(0, {"la": [0, 2, 9], "la-none": [0]}, raise_errors=False))
    assert named == {
        ("la", 0): ELECTION_NOT_NEEDED,
        ("la", 2): ELECTION_NOT_NEEDED,
        ("la", 9): UNKNOWN_TOPIC_OR_PARTITION,
        ("la-none", 0): UNKNOWN_TOPIC_OR_PARTITION,
    }, named
    every = codes(admin.elect_leaders(0, None, raise_errors=False))
    assert {("la", p) for p in range(3)} <= set(every), every
    assert set(every.values()) == {ELECTION_NOT_NEEDED}, every
    unclean = codes(admin.elect_leaders(1, {"la": [1]}, raise_errors=False))
    assert unclean == {("la", 1): INVALID_REQUEST}, unclean


def log_dirs(admin):
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP)
    for _ in range(20):
        producer.send("la", b"v" * 500, partition=1)
    producer.flush()
    producer.close()
    (broker,) = admin.describe_log_dirs()
    (d,) = broker["log_dirs"]
    assert d["error_code"] == 0 and d["log_dir"].startswith("/"), d
    assert d["total_bytes"] >= d["usable_bytes"] > 0, d
    (topic,) = [t for t in d["topics"] if t["name"] == "la"]
    sizes = {p["partition_index"]: p["partition_size"] for p in topic["partitions"]}
    assert set(sizes) == {0, 1, 2} and sizes[0] == 0 and sizes[1] > 20 * 500, sizes
    # Only the partitions asked for.
    (asked,) = admin.describe_log_dirs({"la": [2]})
    assert [(t["name"], [p["partition_index"] for p in t["partitions"]]) for t in asked["log_dirs"][0]["topics"]] == [
        ("la", [2])
    ], asked
    return broker["broker"], d["log_dir"]


def moves(admin, broker, log_dir):
    here = TopicPartitionReplica("la", 1, broker)
    assert admin.alter_replica_log_dirs({here: log_dir}) == {here: NoError}
    assert admin.alter_replica_log_dirs({here: log_dir + "-elsewhere"}) == {here: LogDirNotFoundError}
    unknown = TopicPartitionReplica("la", 7, broker)
    assert admin.alter_replica_log_dirs({unknown: log_dir}) == {unknown: UnknownTopicOrPartitionError}


def main():
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    admin.create_topics([NewTopic("la", num_partitions=3, replication_factor=1)])
    elections(admin)
    broker, log_dir = log_dirs(admin)
    moves(admin, broker, log_dir)
    admin.close()
    print("ok")


main()
