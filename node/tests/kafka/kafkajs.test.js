// kafkajs 2.2.x against a Weir node's Kafka listener (KAFKA_BOOTSTRAP): admin, a producer with
// keys and headers, and a consumer group that reads everything and commits. Run by
// node/tests/kafka_clients.rs under `node --test`.
'use strict';

const test = require('node:test');
const assert = require('node:assert');
const { Kafka, logLevel } = require('kafkajs');

const kafka = new Kafka({
  clientId: 'weir-test',
  brokers: [process.env.KAFKA_BOOTSTRAP],
  logLevel: logLevel.WARN,
  retry: { retries: 10 },
});

const TOPIC = 'kjs';
const COUNT = 500;

test('admin creates, lists, describes and deletes topics', async () => {
  const admin = kafka.admin();
  await admin.connect();
  try {
    assert.strictEqual(await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: 3 }, { topic: 'kjs-gone', numPartitions: 1 }], waitForLeaders: true }), true);
    const topics = await admin.listTopics();
    assert.ok(topics.includes(TOPIC) && topics.includes('kjs-gone'), topics.join(','));
    const meta = await admin.fetchTopicMetadata({ topics: [TOPIC] });
    assert.strictEqual(meta.topics[0].partitions.length, 3);
    await admin.deleteTopics({ topics: ['kjs-gone'] });
    assert.ok(!(await admin.listTopics()).includes('kjs-gone'));
  } finally {
    await admin.disconnect();
  }
});

test('a producer writes keyed records with headers that a consumer group reads back and commits', async () => {
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const sent = new Map();
  for (let batch = 0; batch < 5; batch++) {
    const messages = [];
    for (let i = batch * (COUNT / 5); i < (batch + 1) * (COUNT / 5); i++) {
      const key = `key-${i}`;
      const value = Buffer.from(Array.from({ length: i % 200 }, (_, j) => (i + j) % 256));
      sent.set(key, value);
      messages.push({ key, value, headers: { n: `${i}`, kind: 'test' }, timestamp: `${1700000000000 + i}` });
    }
    await producer.send({ topic: TOPIC, acks: -1, messages });
  }
  await producer.disconnect();

  const consumer = kafka.consumer({ groupId: 'kjs-group', sessionTimeout: 10000, heartbeatInterval: 500 });
  await consumer.connect();
  await consumer.subscribe({ topic: TOPIC, fromBeginning: true });
  const seen = new Map();
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`read ${seen.size} of ${COUNT}`)), 60000);
    consumer.run({
      autoCommit: true,
      autoCommitInterval: 100,
      eachMessage: async ({ message }) => {
        const key = message.key.toString();
        assert.strictEqual(message.headers.n.toString(), key.slice(4));
        assert.strictEqual(message.headers.kind.toString(), 'test');
        assert.strictEqual(message.timestamp, `${1700000000000 + Number(key.slice(4))}`);
        seen.set(key, message.value);
        if (seen.size === COUNT) {
          clearTimeout(timer);
          resolve();
        }
      },
    }).catch(reject);
  });
  for (const [key, value] of sent) {
    assert.ok(seen.get(key).equals(value), key);
  }
  await consumer.disconnect();

  const admin = kafka.admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchOffsets({ groupId: 'kjs-group', topics: [TOPIC] });
    const ends = await admin.fetchTopicOffsets(TOPIC);
    for (const p of offsets[0].partitions) {
      const end = ends.find((e) => e.partition === p.partition);
      assert.strictEqual(p.offset, end.high, `partition ${p.partition}`);
    }
    const groups = await admin.listGroups();
    assert.ok(groups.groups.some((g) => g.groupId === 'kjs-group'), JSON.stringify(groups));
  } finally {
    await admin.disconnect();
  }
});
