// Subscribe to modelbus events with KafkaJS (Node.js), outside modelbus.
//
// Reads CloudEvents envelopes from one or more topics, keeps those whose `ce_type` Kafka header is one of
// --type (all when none is given) and prints each envelope as one JSON line. docs/subscribe.md explains it;
// tests/e2e/test_subscribe.py runs it, as written, against the embedded stack.
//
//   npm install kafkajs@2.2.4        (or `npm ci` in docs/examples, which pins it in package-lock.json)
//   node docs/examples/subscribe_kafkajs.js --bootstrap 127.0.0.1:9092 --topic modelbus.train.events \
//       --group my-service --from-beginning --type modelbus.train.job.completed
//
// Options: --bootstrap HOST:PORT[,HOST:PORT], --topic NAME (repeatable), --group ID (default: a new random
// one), --from-beginning (rewind every assigned partition to its first offset, for a new group and an
// existing one alike), --type CE_TYPE (repeatable), --max N (stop after N events), --idle-timeout SECONDS
// (stop after that long without a message), --session-timeout-ms MS (KafkaJS's default is 30000).
'use strict';

const crypto = require('node:crypto');
const { Kafka, logLevel } = require('kafkajs');

function parseArgs(argv) {
  const args = { topics: [], types: [], fromBeginning: false, sessionTimeout: 30000 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${flag} needs a value`);
      return argv[++i];
    };
    if (flag === '--bootstrap') args.bootstrap = value();
    else if (flag === '--topic') args.topics.push(value());
    else if (flag === '--group') args.group = value();
    else if (flag === '--from-beginning') args.fromBeginning = true;
    else if (flag === '--type') args.types.push(value());
    else if (flag === '--max') args.max = Number(value());
    else if (flag === '--idle-timeout') args.idleTimeout = Number(value());
    else if (flag === '--session-timeout-ms') args.sessionTimeout = Number(value());
    else throw new Error(`unknown option ${flag}`);
  }
  if (!args.bootstrap || args.topics.length === 0) throw new Error('--bootstrap and --topic are required');
  args.group = args.group || `subscriber-${crypto.randomBytes(4).toString('hex')}`;
  return args;
}

function header(message, name) {
  const value = message.headers && message.headers[name];
  return value === undefined || value === null ? null : value.toString();
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const kafka = new Kafka({
    clientId: `subscriber-${args.group}`,
    brokers: args.bootstrap.split(','),
    logLevel: logLevel.WARN,
  });
  const consumer = kafka.consumer({
    groupId: args.group,
    sessionTimeout: args.sessionTimeout,
    // the rebalance timeout must not be shorter than the session timeout
    rebalanceTimeout: Math.max(60000, args.sessionTimeout),
  });
  const admin = kafka.admin();
  const types = new Set(args.types);
  let seen = 0;
  let lastMessage = Date.now();
  let stopping = false;
  let done;
  const finished = new Promise((resolve) => { done = resolve; });
  const stop = () => { if (!stopping) { stopping = true; done(); } };

  await admin.connect();
  const lowOffsets = {};  // topic -> partition -> first offset still stored
  if (args.fromBeginning) {
    for (const topic of args.topics) {
      lowOffsets[topic] = {};
      for (const p of await admin.fetchTopicOffsets(topic)) lowOffsets[topic][p.partition] = p.low;
    }
  }
  await admin.disconnect();

  await consumer.connect();
  // the idle clock starts once the group has handed us partitions (joining can take seconds)
  consumer.on(consumer.events.GROUP_JOIN, () => { lastMessage = Date.now(); });
  if (args.fromBeginning) {
    // a new group starts at the first offset (fromBeginning below); an existing one has committed offsets,
    // so every partition the group hands us is moved back to its first offset
    consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
      for (const [topic, partitions] of Object.entries(payload.memberAssignment)) {
        for (const partition of partitions) {
          consumer.seek({ topic, partition, offset: String(lowOffsets[topic][partition] ?? 0) });
        }
      }
    });
  }
  await consumer.subscribe({ topics: args.topics, fromBeginning: args.fromBeginning });
  await consumer.run({
    eachMessage: async ({ topic, partition, message }) => {
      lastMessage = Date.now();
      if (stopping) return;
      const ceType = header(message, 'ce_type');
      if (types.size > 0 && !types.has(ceType)) return;  // filtered on the header: the value is not decoded
      if (header(message, 'content-type') !== 'application/cloudevents+json') return;  // dead letters
      const envelope = JSON.parse(message.value.toString());
      envelope._kafka = { topic, partition, offset: Number(message.offset) };
      process.stdout.write(JSON.stringify(envelope) + '\n');
      seen += 1;
      if (args.max !== undefined && seen >= args.max) stop();
    },
  });

  let timer;
  if (args.idleTimeout !== undefined) {
    timer = setInterval(() => {
      if (Date.now() - lastMessage > args.idleTimeout * 1000) stop();
    }, 200);
  }
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  await finished;
  if (timer) clearInterval(timer);
  await consumer.disconnect();  // commits the offsets of what was handled and leaves the group
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
