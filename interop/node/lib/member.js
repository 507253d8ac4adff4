'use strict';
// The verifying member: publish a signal, and read the whole visible stream verifying
// every checkpoint (log signature, consistency with the previous one), every page's
// batch inclusion proof, every record end to end, and each entry's own inclusion proof.
const ed = require('./ed25519');
const merkle = require('./merkle');
const note = require('./note');
const { Writer } = require('./wire');
const { Verifier } = require('./verifier');
const { decodeRecord } = require('./envelope');
const { ProtocolError } = require('./errors');
const { checkCommitted } = require('./keydir_commitment');

const hashes = (xs) => (xs || []).map((h) => Buffer.from(h));

function timestamp(ms) {
  return new Writer().uint(1, BigInt(Math.floor(ms / 1000))).uint(2, (ms % 1000) * 1e6).finish();
}

// Canonical Signal payload (fields in number order, defaults omitted).
function encodeSignal({ signalId, memberId, type, value, labels = [], confidence = 0, severity = 0, groups, tlp, createdAtMs }) {
  const w = new Writer().string(1, signalId).string(2, memberId).string(3, type).string(4, value);
  for (const l of labels) w.string(5, l);
  w.uint(6, confidence).uint(7, severity);
  const sharing = new Writer();
  for (const g of groups) sharing.string(1, g);
  sharing.uint(2, tlp);
  w.message(8, sharing.finish());
  w.message(13, timestamp(createdAtMs));
  return w.finish();
}

function signEnvelope(payloadType, payload, privateKey) {
  const { pae } = require('./envelope');
  const sig = ed.sign(privateKey, pae(payloadType, payload));
  const keyid = ed.keyId(ed.publicKeyOf(privateKey));
  const signature = new Writer().bytes(1, sig).string(2, keyid).finish();
  return new Writer().bytes(1, payload).string(2, payloadType).message(3, signature).finish();
}

async function publish(client, envelopes) {
  const body = new Writer();
  for (const e of envelopes) body.bytes(1, e);
  const reply = await client.unary('ExchangeService', 'Publish', body.finish());
  return reply.results.map((r) => (r.receipt ? { index: BigInt(r.receipt.index), leafHash: Buffer.from(r.receipt.leaf_hash) }
    : { error: r.error.reason, message: r.error.message }));
}

// A verified checkpoint covering ledger `index` (GetCheckpoint with covering_index), retried while pending.
async function waitForCheckpoint(client, logKey, index, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const body = new Writer().uintPresent(1, index).uint(2, Math.max(1, deadline - Date.now())).finish();
    try {
      const reply = await client.unary('AuditService', 'GetCheckpoint', body);
      const cp = note.openCheckpoint(reply.note, logKey);
      if (cp.size <= BigInt(index)) throw new ProtocolError('security-error', 'checkpoint does not cover the index');
      return cp;
    } catch (e) {
      if (e.reason !== 'checkpoint-pending' || Date.now() >= deadline) throw e;
    }
  }
}

class LogView {
  constructor(logKey) { this.logKey = logKey; this.trusted = null; this.checked = 0; }

  advance(noteText, oldSize, proof) {
    let cp;
    try {
      cp = note.openCheckpoint(noteText, this.logKey);
    } catch (e) {
      throw new ProtocolError('bad-checkpoint', e.message);
    }
    const old = this.trusted;
    if (old) {
      if (cp.size < old.size) throw new ProtocolError('log-fork', 'the log went back to a smaller tree');
      if (cp.size === old.size && !cp.root.equals(old.root)) throw new ProtocolError('log-fork', 'two roots for one size');
      if (cp.size > old.size) {
        if (BigInt(oldSize) !== old.size) throw new ProtocolError('log-fork', 'consistency proven from another size');
        if (!merkle.verifyConsistency(Number(old.size), Number(cp.size), old.root, cp.root, proof)) {
          throw new ProtocolError('log-fork', 'consistency proof fails');
        }
      }
    }
    this.trusted = cp;
    this.checked += 1;
    return cp;
  }
}

// Read the visible stream from 0 to the head; return a report (throws on a security error).
async function verifyStream(client, { operatorPublicKey, logKey }) {
  const verifier = new Verifier(operatorPublicKey);
  const view = new LogView(logKey);
  const report = { verified: [], untrusted: [], pages: 0, inclusion_proofs: 0, checkpoints: 0, keydir_checks: 0 };
  const keyEvents = [];
  const request = new Writer().uint(1, 0).bool(2, true).uint(3, 0).finish();
  const seen = [];
  for await (const page of client.stream('ExchangeService', 'Subscribe', request)) {
    report.pages += 1;
    const c = page.consistency || {};
    const cp = view.advance(page.checkpoint, c.old_size || '0', hashes(c.hashes));
    const records = page.records.map((r) => Buffer.from(r));
    if (records.length) {
      const leaves = records.map((r) => [Number(decodeRecord(r).index), merkle.leafHash(r)]);
      if (BigInt(page.proof.tree_size) !== cp.size) throw new ProtocolError('security-error', 'batch proof for another tree');
      if (!merkle.verifyBatch(leaves, Number(cp.size), hashes(page.proof.hashes), cp.root)) {
        throw new ProtocolError('security-error', 'batch inclusion proof fails');
      }
    }
    for (const raw of records) {
      try {
        const v = verifier.verify(raw);
        report.verified.push(Number(v.index));
        seen.push([v.index, raw]);
        if (v.kind === 'keyevent') keyEvents.push(raw);
      } catch (e) {
        if (!(e instanceof ProtocolError)) throw e;
        report.untrusted.push({ index: Number(decodeRecord(raw).index), reason: e.reason });
      }
    }
    // caught up with the page's checkpoint: it must commit to exactly the key events seen
    // (a mismatch is reported, and the member exits 8, keeping the rest of the report)
    if (BigInt(page.next_index || 0) === cp.size) {
      try {
        checkCommitted(cp, keyEvents);
        report.keydir_checks += 1;
      } catch (e) {
        if (!(e instanceof ProtocolError)) throw e;
        report.keydir_error = report.keydir_error || e.message;
      }
    }
  }
  const cp = view.trusted;
  for (const [index, raw] of seen) { // each entry's own RFC 6962 audit path, in the trusted tree
    const body = new Writer().uint(1, index).uint(2, cp.size).finish();
    const proof = await client.unary('AuditService', 'GetInclusionProof', body);
    if (!merkle.verifyInclusion(Number(index), Number(cp.size), merkle.leafHash(raw), hashes(proof.hashes), cp.root)) {
      throw new ProtocolError('security-error', `inclusion proof of ${index} fails`);
    }
    report.inclusion_proofs += 1;
  }
  // every checkpoint the log has signed: each opened and consistent with the one before
  const list = await client.unary('AuditService', 'ListCheckpoints', new Writer().uint(1, 0).finish());
  const history = new LogView(logKey);
  for (const n of list.notes) {
    const next = note.openCheckpoint(n, logKey);
    const old = history.trusted;
    let proof = [];
    if (old && next.size > old.size && old.size > 0n) {
      const body = new Writer().uint(1, old.size).uint(2, next.size).finish();
      proof = hashes((await client.unary('AuditService', 'GetConsistencyProof', body)).hashes);
    }
    history.advance(n, old ? old.size : 0n, proof);
  }
  if (history.trusted && cp && history.trusted.size >= cp.size && cp.size > 0n) {
    const body = new Writer().uint(1, cp.size).uint(2, history.trusted.size).finish();
    const proof = hashes((await client.unary('AuditService', 'GetConsistencyProof', body)).hashes);
    if (!merkle.verifyConsistency(Number(cp.size), Number(history.trusted.size), cp.root, history.trusted.root, proof)) {
      throw new ProtocolError('log-fork', 'stream checkpoint is not consistent with the history');
    }
  }
  report.checkpoints = history.checked;
  report.tainted = verifier.tainted().map(Number);
  report.checkpoint = cp ? { size: Number(cp.size), root: cp.root.toString('hex') } : null;
  return report;
}

module.exports = { encodeSignal, signEnvelope, publish, waitForCheckpoint, verifyStream };
