'use strict';
// Call authentication (PROTOCOL.md §4): the signed message and the five headers.
// The version and what it binds are one small function, callMessage(); v2 is the
// TEMPORARY path for exchanges that do not yet speak v3 (remove it once they all do).
const crypto = require('node:crypto');
const ed = require('./ed25519');

const HEADER_RULES = {
  'tw-principal': /^[a-z0-9][a-z0-9-]{1,62}$/,
  'tw-keyid': /^[0-9a-f]{64}$/,
  'tw-timestamp': /^[0-9]{1,15}$/,
  'tw-nonce': /^[0-9a-f]{32}$/,
};
const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function callMessage(version, { origin, method, principal, keyid, timestamp, nonce, body }) {
  const digest = ed.sha256(body).toString('hex');
  const lines = version === 'v2'
    ? ['trustwire-call-v2', method, principal, keyid, timestamp, nonce, digest] // TEMPORARY (pre-v3 exchanges)
    : ['trustwire-call-v3', origin, method, principal, keyid, timestamp, nonce, digest];
  return Buffer.from(lines.map((l) => `${l}\n`).join(''), 'utf8');
}

// Headers authenticating one call of `method` carrying the exact request `body` bytes.
function signCall({ version = 'v3', origin, method, principal, privateKey, body, nowMs = Date.now() }) {
  const keyid = ed.keyId(ed.publicKeyOf(privateKey));
  const fields = { origin, method, principal, keyid, timestamp: String(nowMs), nonce: crypto.randomBytes(16).toString('hex'), body };
  const signature = ed.sign(privateKey, callMessage(version, fields)).toString('base64');
  return {
    'tw-principal': principal, 'tw-keyid': keyid, 'tw-timestamp': fields.timestamp,
    'tw-nonce': fields.nonce, 'tw-signature': signature,
  };
}

// What an exchange concludes from a call's credentials (steps 1 and 4 of §4).
function checkCall({ origin, method, headers, body, publicKey }) {
  for (const [name, rule] of Object.entries(HEADER_RULES)) {
    if (!rule.test(headers[name] || '')) return 'missing-credentials';
  }
  if (!B64.test(headers['tw-signature'] || '')) return 'missing-credentials';
  const sig = Buffer.from(headers['tw-signature'], 'base64');
  if (sig.length !== 64) return 'missing-credentials';
  const message = callMessage('v3', {
    origin, method, principal: headers['tw-principal'], keyid: headers['tw-keyid'],
    timestamp: headers['tw-timestamp'], nonce: headers['tw-nonce'], body,
  });
  return ed.verify(publicKey, message, sig) ? null : 'bad-call-signature';
}

module.exports = { callMessage, signCall, checkCall };
