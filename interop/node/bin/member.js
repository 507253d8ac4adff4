#!/usr/bin/env node
'use strict';
// trustwire-node-member: an independent verifying member.
//   member.js verify  --target H:P --principal ID --seed-file F --operator-public-key HEX --log-key VKEY
//   member.js publish ... --signal-id ID --type md5 --value V --group G --tlp 3
// Prints one JSON object on stdout; exit 0 on success, 8 on a verification failure, 2 on bad usage.
const fs = require('node:fs');
const { parseArgs } = require('node:util');
const ed = require('../lib/ed25519');
const note = require('../lib/note');
const { ExchangeClient } = require('../lib/client');
const member = require('../lib/member');

async function main() {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: {
      target: { type: 'string' }, principal: { type: 'string' }, 'seed-file': { type: 'string' },
      'operator-public-key': { type: 'string' }, 'log-key': { type: 'string' },
      'call-auth': { type: 'string', default: 'v3' }, 'signal-id': { type: 'string' }, type: { type: 'string' },
      value: { type: 'string' }, group: { type: 'string', multiple: true }, tlp: { type: 'string', default: '2' },
    },
  });
  const [command] = positionals;
  for (const k of ['target', 'principal', 'seed-file', 'log-key']) {
    if (!values[k]) throw Object.assign(new Error(`--${k} is required`), { usage: true });
  }
  const logKey = note.parseVerifierKey(values['log-key']);
  const privateKey = ed.privateKeyFromSeed(Buffer.from(fs.readFileSync(values['seed-file'], 'utf8').trim(), 'hex'));
  const client = new ExchangeClient({
    target: values.target, principal: values.principal, privateKey, origin: logKey.name, callAuth: values['call-auth'],
  });
  try {
    if (command === 'verify') {
      if (!values['operator-public-key']) throw Object.assign(new Error('--operator-public-key is required'), { usage: true });
      return await member.verifyStream(client, { operatorPublicKey: Buffer.from(values['operator-public-key'], 'hex'), logKey });
    }
    if (command === 'publish') {
      const payload = member.encodeSignal({
        signalId: values['signal-id'], memberId: values.principal, type: values.type, value: values.value,
        groups: values.group || [], tlp: Number(values.tlp), confidence: 80, severity: 3, labels: ['spam'],
        createdAtMs: Date.now(),
      });
      const env = member.signEnvelope('application/vnd.trustwire.signal.v1+protobuf', payload, privateKey);
      const [result] = await member.publish(client, [env]);
      if (result.error) return { error: result.error, message: result.message };
      const cp = await member.waitForCheckpoint(client, logKey, result.index);
      return { index: Number(result.index), leaf_hash: result.leafHash.toString('hex'), checkpoint_size: Number(cp.size) };
    }
    throw Object.assign(new Error('command is verify or publish'), { usage: true });
  } finally {
    client.close();
  }
}

// Exit codes as the trustwire CLI: 0 ok, 1 refused, 2 usage, 7 unavailable, 8 security.
const SECURITY = new Set(['security-error', 'log-fork', 'bad-proof', 'bad-note', 'bad-checkpoint', 'untrusted-entry']);
main().then((out) => {
  process.stdout.write(`${JSON.stringify(out)}\n`);
  if (out && out.untrusted && out.untrusted.length) process.exit(8);
  if (out && out.keydir_error) process.exit(8); // a withheld or altered key event
  process.exit(out && out.error ? 1 : 0);
}, (err) => {
  process.stderr.write(`${err.message}\n`);
  if (err.usage) process.exit(2);
  if (err.reason === 'unavailable' || err.reason === 'checkpoint-pending') process.exit(7);
  process.exit(SECURITY.has(err.reason) || !err.reason ? 8 : 1);
});
