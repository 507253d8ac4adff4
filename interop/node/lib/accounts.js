'use strict';
// Account indicators (PROTOCOL.md §6): identifier normalization and the HMAC value.
const crypto = require('node:crypto');
const { strip, caseFold, WS } = require('./normalize');
const { ProtocolError } = require('./errors');

const invalid = (m) => new ProtocolError('invalid-value', m);
const WS_SET = new Set(WS);
const PHONE_JUNK = new Set([...WS, '(', ')', '.', '-', '/']);

function normalizeIdentifier(kind, identifier) {
  const text = strip(identifier.normalize('NFKC'));
  if (kind === 'email') {
    const at = [...text].filter((c) => c === '@').length;
    if (at !== 1 || text.startsWith('@') || text.endsWith('@')) throw invalid('not an e-mail address');
    return caseFold(text);
  }
  if (kind === 'phone') {
    let digits = [...text].filter((c) => !PHONE_JUNK.has(c)).join('');
    if (digits.startsWith('00')) digits = `+${digits.slice(2)}`;
    if (!/^\+[1-9][0-9]{6,14}$/.test(digits)) throw invalid('phone numbers are shared in international form');
    return digits;
  }
  if (kind === 'username') {
    const name = caseFold(text.replace(/^@+/, ''));
    if (!name || [...name].some((c) => WS_SET.has(c))) throw invalid('usernames are a single word');
    return name;
  }
  throw invalid(`no identifier normalization for kind ${kind}`);
}

function accountValue(platform, kind, identifier, secret) {
  const message = `${kind}:${normalizeIdentifier(kind, identifier)}`;
  const mac = crypto.createHmac('sha256', secret).update(Buffer.from(message, 'utf8')).digest('hex');
  return `${platform}:${kind}:${mac}`;
}

module.exports = { normalizeIdentifier, accountValue };
