'use strict';
// DSSE envelopes (PROTOCOL.md §3) and ledger records (§9).
const { decodeCanonical } = require('./canonical');
const { ProtocolError } = require('./errors');
const ed = require('./ed25519');

const MAX_ENVELOPE = 64 * 1024;

function pae(payloadType, payload) {
  const t = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([Buffer.from(`DSSEv1 ${t.length} `), t, Buffer.from(` ${payload.length} `), payload]);
}

function decodeEnvelope(raw) {
  const bad = (m) => new ProtocolError('malformed-envelope', m);
  if (raw.length > MAX_ENVELOPE) throw bad('envelope over 64 KiB');
  const env = decodeCanonical('Envelope', raw, 'malformed-envelope');
  if (env.signatures.length !== 1) throw bad('exactly one signature');
  if (!env.payload_type || [...env.payload_type].length > 128) throw bad('payload_type missing or too long');
  const { sig, keyid } = env.signatures[0];
  if (!/^[0-9a-f]{64}$/.test(keyid)) throw bad('keyid is 64 lowercase hex');
  return { payloadType: env.payload_type, payload: env.payload, sig, keyid };
}

function verifyEnvelope(env, publicKey) {
  if (!ed.verify(publicKey, pae(env.payloadType, env.payload), env.sig)) {
    throw new ProtocolError('forged-signature', 'signature does not verify');
  }
}

function decodeRecord(raw) {
  const rec = decodeCanonical('LedgerRecord', raw, 'malformed-record');
  const bad = (m) => new ProtocolError('malformed-record', m);
  if (rec.envelope.length === 0) throw bad('no envelope');
  if (rec.accepted_at === undefined) throw bad('no accepted_at');
  if (rec.accepted_at.nanos % 1e6) throw bad('accepted_at below a millisecond');
  const acceptedAtMs = rec.accepted_at.seconds * 1000n + BigInt(rec.accepted_at.nanos / 1e6);
  return { index: rec.index, acceptedAtMs, envelope: rec.envelope, raw };
}

module.exports = { pae, decodeEnvelope, verifyEnvelope, decodeRecord, MAX_ENVELOPE };
