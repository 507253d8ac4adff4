'use strict';
// C2SP signed-note, tlog-checkpoint and tlog-cosignature/v1 (PROTOCOL.md §9), for
// opening checkpoints: the log's Ed25519 signature is required, witness
// cosignatures count towards a quorum, signatures by other keys are ignored.
const ed = require('./ed25519');

const SIG_ED25519 = 0x01;
const SIG_COSIGNATURE = 0x04;

function parseVerifierKey(vkey) {
  const m = /^([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/=]+)$/.exec(vkey);
  if (!m) throw new Error('verifier key is name+hash+key');
  const [, name, hashHex, b64] = m;
  const raw = Buffer.from(b64, 'base64');
  if (raw.toString('base64') !== b64 || raw.length !== 33) throw new Error('verifier key is not base64 of type and key');
  const type = raw[0];
  const publicKey = raw.subarray(1);
  const hash = keyHash(name, type, publicKey);
  if (hash.toString('hex') !== hashHex) throw new Error('verifier key hash does not match');
  return { name, type, publicKey, hash };
}

function keyHash(name, type, publicKey) {
  return ed.sha256(Buffer.concat([Buffer.from(`${name}\n`, 'utf8'), Buffer.from([type]), publicKey])).subarray(0, 4);
}

// Split a note into its text and signature lines; throw if malformed.
function parseNote(note) {
  const cut = note.lastIndexOf('\n\n');
  if (cut < 0 || !note.endsWith('\n')) throw new Error('note has no signature block');
  const text = note.slice(0, cut + 1);
  const sigs = [];
  for (const line of note.slice(cut + 2, -1).split('\n')) {
    const m = /^\u2014 (\S+) (\S+)$/u.exec(line);
    if (!m) throw new Error('malformed signature line');
    const raw = Buffer.from(m[2], 'base64');
    if (raw.toString('base64') !== m[2] || raw.length < 5) throw new Error('signature is not base64');
    sigs.push({ name: m[1], hash: raw.subarray(0, 4), payload: raw.subarray(4) });
  }
  if (sigs.length === 0) throw new Error('note has no signatures');
  return { text, sigs };
}

function parseCheckpoint(text) {
  const lines = text.split('\n');
  if (lines.length < 4) throw new Error('checkpoint has fewer than three lines');
  const [origin, sizeText, rootB64] = lines;
  if (!origin || !/^(0|[1-9][0-9]{0,19})$/.test(sizeText)) throw new Error('checkpoint size is not decimal');
  const root = Buffer.from(rootB64, 'base64');
  if (root.length !== 32 || root.toString('base64') !== rootB64) throw new Error('checkpoint root is not base64 of 32 bytes');
  // C2SP extension lines: after the root, up to the final newline
  return { origin, size: BigInt(sizeText), root, extensions: lines.slice(3, -1) };
}

// Open a checkpoint note; return {origin, size (BigInt), root, note} or throw.
function openCheckpoint(note, logKey, witnessKeys = [], quorum = 0) {
  const log = typeof logKey === 'string' ? parseVerifierKey(logKey) : logKey;
  const witnesses = witnessKeys.map((w) => (typeof w === 'string' ? parseVerifierKey(w) : w));
  const { text, sigs } = parseNote(note);
  const body = Buffer.from(text, 'utf8');
  let logSigned = false;
  const cosigned = new Set();
  for (const s of sigs) {
    if (s.name === log.name && s.hash.equals(log.hash)) {
      if (!ed.verify(log.publicKey, body, s.payload)) throw new Error('log signature does not verify');
      logSigned = true;
    }
    for (const w of witnesses) {
      if (s.name === w.name && s.hash.equals(w.hash) && s.payload.length === 72) {
        const ts = s.payload.readBigUInt64BE(0);
        const msg = Buffer.concat([Buffer.from(`cosignature/v1\ntime ${ts}\n`, 'utf8'), body]);
        if (!ed.verify(w.publicKey, msg, s.payload.subarray(8))) throw new Error('cosignature does not verify');
        cosigned.add(w.name);
      }
    }
  }
  if (!logSigned) throw new Error('checkpoint is not signed by the log key');
  if (cosigned.size < quorum) throw new Error(`checkpoint has ${cosigned.size} cosignatures, quorum is ${quorum}`);
  const cp = parseCheckpoint(text);
  if (cp.origin !== log.name) throw new Error('checkpoint origin is not the log key name');
  return { ...cp, note };
}

module.exports = { parseVerifierKey, openCheckpoint, parseCheckpoint, keyHash, SIG_ED25519, SIG_COSIGNATURE };
