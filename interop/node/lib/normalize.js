'use strict';
// Signal value grammar and normalization (PROTOCOL.md §5). A verifier needs only
// check(type, value): the value must be valid and equal to normalize(type, value).
const { domainToASCII } = require('node:url');
const { ProtocolError } = require('./errors');
const { url: canonicalUrl } = require('./url');

// The whitespace set of §5 (Unicode White_Space plus FS, GS, RS, US, as the reference
// implementation's str.isspace/str.split use).
const WS = '\t\n\v\f\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000';
const WS_SET = new Set(WS);
const strip = (s) => {
  const cps = [...s];
  let a = 0;
  let b = cps.length;
  while (a < b && WS_SET.has(cps[a])) a++;
  while (b > a && WS_SET.has(cps[b - 1])) b--;
  return cps.slice(a, b).join('');
};
const splitWs = (s) => {
  const words = [];
  let cur = '';
  for (const c of s) {
    if (WS_SET.has(c)) { if (cur) words.push(cur); cur = ''; } else cur += c;
  }
  if (cur) words.push(cur);
  return words;
};
const cpLength = (s) => [...s].length;
const invalid = (m) => new ProtocolError('invalid-value', m);

// Full case folding (Unicode CaseFolding.txt, statuses C and F), code point by code
// point: lower(upper(c)) except where the folding differs from that.
function caseFoldChar(c) {
  const cp = c.codePointAt(0);
  if (cp === 0x0131) return c; // dotless i folds to itself
  if (cp === 0x1e9e) return 'ss'; // capital sharp s
  if ((cp >= 0x13a0 && cp <= 0x13f5) || cp === 0x13f8 || (cp >= 0x13f9 && cp <= 0x13fd) || (cp >= 0xab70 && cp <= 0xabbf)) {
    return c.toUpperCase(); // Cherokee folds to its uppercase letters
  }
  return c.toUpperCase().toLowerCase();
}
const caseFold = (s) => [...s].map(caseFoldChar).join('');

function hexDigest(digits) {
  return (raw) => {
    const v = strip(raw).toLowerCase();
    if (v.length !== digits || !/^[0-9a-f]*$/.test(v)) throw invalid(`${digits} hex characters expected`);
    return v;
  };
}

const LDH = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;
function domain(raw) {
  let text = strip(raw);
  while (text.endsWith('.')) text = text.slice(0, -1);
  if (!text) throw invalid('domain is empty');
  if ([...text].some((c) => WS_SET.has(c)) || /[/\\?#@:[\]%<>^|*]/.test(text)) throw invalid('domain has a character no host may hold');
  // UTS #46 label by label (a whole-host parser would read "10" as an IPv4 address)
  const labels = text.split(/[.\u3002\uff0e\uff61]/).map((l) => (/^[\x00-\x7f]*$/.test(l) ? l.toLowerCase() : domainToASCII(l)));
  const value = labels.join('.');
  if (value.length > 253 || !labels.every((l) => LDH.test(l))) throw invalid('not a valid domain');
  return value;
}

const HASHED = new Set(['email', 'phone', 'username']);
function account(raw) {
  const text = strip(raw);
  const first = text.indexOf(':');
  const second = first < 0 ? -1 : text.indexOf(':', first + 1);
  if (second < 0) throw invalid('account is platform:kind:identifier');
  const platform = text.slice(0, first).toLowerCase();
  const kind = text.slice(first + 1, second).toLowerCase();
  let ident = text.slice(second + 1);
  if (!/^[a-z0-9][a-z0-9.-]{0,62}$/.test(platform)) throw invalid('bad platform');
  if (!HASHED.has(kind) && kind !== 'id') throw invalid('bad kind');
  if (HASHED.has(kind)) {
    ident = ident.toLowerCase();
    if (!/^[0-9a-f]{64}$/.test(ident)) throw invalid('hashed identifiers are HMAC-SHA256 hex');
  } else if (!/^[\x21-\x7e]{1,256}$/.test(ident)) {
    throw invalid('bad account id');
  }
  return `${platform}:${kind}:${ident}`;
}

// Words (§5.5): maximal runs of letters, marks and numbers; rule 2 needs 4 word code points.
const MIN_WORD_CHARS = 4;
const words = (value) => value.match(/[\p{L}\p{M}\p{N}]+/gu) || [];
function restrictText(value) {
  if (words(value).reduce((n, w) => n + cpLength(w), 0) < MIN_WORD_CHARS) {
    throw new ProtocolError('broad-value', `text needs at least ${MIN_WORD_CHARS} letters or digits`);
  }
}

function text(raw) {
  const folded = caseFold(raw.normalize('NFKC'));
  const value = splitWs(folded.normalize('NFKC')).join(' ');
  if (!value || cpLength(value) > 1024) throw invalid('text must be 1..1024 characters');
  return value;
}

const MAX_URL = 2048;
function url(raw, rule) {
  const t = strip(raw);
  if (!t || cpLength(t) > MAX_URL || /[\x00-\x1f\x7f-\x9f]/.test(t)) throw invalid('url must be 1..2048 printable characters');
  const sep = t.indexOf('://');
  if (sep < 0 || !['http', 'https'].includes(t.slice(0, sep).toLowerCase())) throw invalid('url must be absolute, with scheme http or https');
  return canonicalUrl(t, rule);
}

function opaque(raw) {
  if (!raw || cpLength(raw) > 4096) throw invalid('value must be 1..4096 characters');
  return raw;
}

// vPDQ (§5.6): distinct frame hashes of quality >= 50, sorted, comma-joined.
function vpdq(raw) {
  const t = strip(raw);
  const frame = (h) => {
    const v = strip(h).toLowerCase();
    if (v.length !== 64 || !/^[0-9a-f]*$/.test(v)) throw invalid('a vPDQ frame is a 64-hex-character PDQ hash');
    return v;
  };
  let frames;
  if (t.startsWith('[')) {
    let items;
    try { items = JSON.parse(t); } catch { throw invalid('a vPDQ JSON value is a list of strings'); }
    if (!Array.isArray(items) || !items.every((i) => typeof i === 'string')) throw invalid('a vPDQ JSON value is a list of strings');
    frames = [];
    for (const item of items) {
      const parts = item.split(',');
      if (parts.length !== 3) throw invalid('a vPDQ frame is "pdq_hex,quality,timestamp"');
      const q = strip(parts[1]);
      if (!/^[+-]?[0-9]+$/.test(q)) throw invalid("a vPDQ frame's quality is an integer 0..100");
      const quality = Number(q);
      if (quality < 0 || quality > 100) throw invalid("a vPDQ frame's quality is an integer 0..100");
      if (quality >= 50) frames.push(frame(parts[0]));
    }
  } else {
    frames = t ? t.split(',').map(frame) : [];
  }
  const distinct = [...new Set(frames)].sort();
  if (distinct.length === 0) throw invalid('a vPDQ hash needs at least one frame of quality >= 50');
  const value = distinct.join(',');
  if (value.length > 4096) throw invalid('a vPDQ value holds at most 63 distinct frames');
  return value;
}

const TYPES = {
  md5: hexDigest(32), sha1: hexDigest(40), sha256: hexDigest(64), pdq: hexDigest(64), video_md5: hexDigest(32),
  url, domain, account, text, vpdq,
};
const TYPE_NAME = /^[a-z][a-z0-9_]{0,31}$/;

// Value rules (§5): 2 is current; 1 is what a signal without value_rule was written under.
const CURRENT_RULE = 2;
const RESTRICT = { text: restrictText };

function normalize(type, raw, rule = CURRENT_RULE) {
  const fn = TYPES[type] || (TYPE_NAME.test(type) ? opaque : null);
  if (!fn) throw invalid('signal type names are 1..32 lowercase letters, digits and underscores');
  const value = fn(raw, rule);
  if (cpLength(value) > 4096) throw invalid('value is longer than 4096 characters');
  return value;
}

function check(type, value, rule = CURRENT_RULE) {
  if (normalize(type, value, rule) !== value) throw new ProtocolError('non-normalized-value', `${type} value is not in canonical form`);
  if (rule >= 2 && RESTRICT[type]) RESTRICT[type](value);
}

module.exports = { normalize, check, strip, caseFold, WS, CURRENT_RULE };
