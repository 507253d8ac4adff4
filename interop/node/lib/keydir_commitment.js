'use strict';
// The key directory committed in every checkpoint (PROTOCOL.md §10): the extension line
// `trustwire-keydir <count> <base64 digest>`, count = KeyEvent records below the
// checkpoint's size, digest = a hash chain over their leaf hashes in index order
// (h0 = 32 zero bytes, h(k+1) = SHA-256(h(k) || leaf_hash(record k))).
const crypto = require('node:crypto');
const { leafHash } = require('./merkle');
const { ProtocolError } = require('./errors');

const PREFIX = 'trustwire-keydir';

function commit(keyEventRecords) {
  let h = Buffer.alloc(32);
  for (const raw of keyEventRecords) h = crypto.createHash('sha256').update(Buffer.concat([h, leafHash(raw)])).digest();
  return { count: keyEventRecords.length, digest: h };
}

const line = (c) => `${PREFIX} ${c.count} ${c.digest.toString('base64')}`;

// The commitment a checkpoint carries; a security error if it has none, two, or a bad one.
function committedIn(cp) {
  const lines = (cp.extensions || []).filter((e) => e.split(' ')[0] === PREFIX);
  if (lines.length !== 1) throw new ProtocolError('security-error', `checkpoint ${cp.size} does not commit to the key directory exactly once`);
  const parts = lines[0].split(' ');
  const digest = parts.length === 3 ? Buffer.from(parts[2], 'base64') : Buffer.alloc(0);
  if (parts.length !== 3 || !/^[0-9]+$/.test(parts[1]) || digest.length !== 32 || digest.toString('base64') !== parts[2]) {
    throw new ProtocolError('security-error', `checkpoint ${cp.size}: malformed key directory line`);
  }
  return { count: Number(parts[1]), digest };
}

// Raise unless the checkpoint commits to exactly these key event records.
function checkCommitted(cp, keyEventRecords) {
  const signed = committedIn(cp);
  const mine = commit(keyEventRecords);
  if (signed.count !== mine.count || !signed.digest.equals(mine.digest)) {
    throw new ProtocolError('security-error', `the checkpoint of size ${cp.size} commits to ${signed.count} key events, this member verified ${mine.count} (or different ones): the exchange withheld or altered a key event`);
  }
}

module.exports = { PREFIX, commit, line, committedIn, checkCommitted };
