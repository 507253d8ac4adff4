'use strict';
// The `url` canonical form of PROTOCOL.md §5.3 (rules 1 and 2), step by step. Percent-decoding works on
// bytes; bytes that are not UTF-8 stay as bytes; decoded text is NFC-normalized;
// re-encoding escapes every byte outside the component's safe set, in uppercase hex.
const { domainToASCII } = require('node:url');
const { ProtocolError } = require('./errors');

const invalid = (m) => new ProtocolError('invalid-value', m);
const ALWAYS_SAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~";
const RESERVED = ":/?#[]@!$&'()*+,;=";

// Decode UTF-8 where valid; return tokens: strings (runs of text) and numbers (raw bytes).
function decodeBytes(bytes) {
  const out = [];
  let text = '';
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i];
    let n = 0;
    let min = 0;
    if (b < 0x80) n = 1;
    else if (b >= 0xc2 && b <= 0xdf) { n = 2; min = 0x80; }
    else if (b >= 0xe0 && b <= 0xef) { n = 3; min = 0x800; }
    else if (b >= 0xf0 && b <= 0xf4) { n = 4; min = 0x10000; }
    let cp = -1;
    if (n === 1) cp = b;
    else if (n > 1 && i + n <= bytes.length) {
      cp = b & (0xff >> (n + 1));
      for (let k = 1; k < n; k++) {
        const c = bytes[i + k];
        if ((c & 0xc0) !== 0x80) { cp = -1; break; }
        cp = (cp << 6) | (c & 0x3f);
      }
      if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) cp = -1;
    }
    if (cp >= 0) { text += String.fromCodePoint(cp); i += n; } else {
      if (text) out.push(text);
      text = '';
      out.push(b);
      i += 1;
    }
  }
  if (text) out.push(text);
  return out.map((t) => (typeof t === 'string' ? t.normalize('NFC') : t));
}

function unquote(s) {
  const bytes = [];
  for (let i = 0; i < s.length;) {
    if (s[i] === '%' && /^[0-9A-Fa-f]{2}$/.test(s.slice(i + 1, i + 3))) {
      bytes.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 3;
    } else {
      const cp = s.codePointAt(i);
      const ch = String.fromCodePoint(cp);
      bytes.push(...Buffer.from(ch, 'utf8'));
      i += ch.length;
    }
  }
  return decodeBytes(bytes);
}

function quote(tokens, safe) {
  let out = '';
  for (const t of tokens) {
    const bytes = typeof t === 'string' ? Buffer.from(t, 'utf8') : [t];
    for (const b of bytes) {
      const c = String.fromCharCode(b);
      out += b < 0x80 && (ALWAYS_SAFE.includes(c) || safe.includes(c)) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
    }
  }
  return out;
}

// Escapes of `preserve` characters are kept (uppercased); the rest is decoded and re-encoded.
function component(s, safe, preserve) {
  const protectedHex = new Set([...preserve].map((c) => c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')));
  let out = '';
  let run = '';
  for (let i = 0; i < s.length;) {
    const hex = s.slice(i + 1, i + 3).toUpperCase();
    if (s[i] === '%' && protectedHex.has(hex)) {
      out += quote(unquote(run), safe) + `%${hex}`;
      run = '';
      i += 3;
    } else {
      run += s[i];
      i += 1;
    }
  }
  return out + quote(unquote(run), safe);
}

function normalizePath(path) {
  path = component(path, "~:/[]@!$&'()*+,;=", RESERVED);
  const output = [];
  const parts = path.split('/');
  for (const part of parts) {
    if (part === '') { if (output.length === 0) output.push(part); } else if (part === '.') {
      // dropped
    } else if (part === '..') { if (output.length > 1) output.pop(); } else output.push(part);
  }
  if (['', '.', '..'].includes(parts[parts.length - 1])) output.push('');
  path = output.join('/');
  return path || '/';
}

function normalizeQuery(query) {
  const params = [];
  for (const param of query.split('&')) {
    if (!param) continue;
    const eq = param.indexOf('=');
    const key = eq < 0 ? param : param.slice(0, eq);
    const value = eq < 0 ? '' : param.slice(eq + 1);
    const q = (x) => (x ? component(x, "~:/?[]@!$'()*+,;", '+') : '');
    params.push(eq < 0 ? q(key) : `${q(key)}=${q(value)}`);
  }
  return params.join('&');
}

function normalizeHost(host) {
  if (host.startsWith('[') && host.endsWith(']')) {
    const pct = host.indexOf('%');
    return pct < 0 ? host.toLowerCase() : host.slice(0, pct).toLowerCase() + host.slice(pct);
  }
  host = host.toLowerCase().replace(/^\.+/, '').replace(/[.\u3002\uff0e\uff61]+$/, '');
  let labels = host.split('.').filter((l) => l);
  // A label IDNA2008 refuses (an ASCII one with "_" or misplaced hyphens) sends the whole
  // host through transitional processing instead: deviation characters mapped first.
  const strictAscii = (l) => /^(?!-)[a-z0-9-]{1,63}(?<!-)$/.test(l) && !(l.slice(2, 4) === '--' && !l.startsWith('xn'));
  const transitional = labels.some((l) => /^[\x00-\x7f]*$/.test(l) && !strictAscii(l));
  if (transitional) {
    labels = host.replace(/\u00df/g, 'ss').replace(/\u03c2/g, '\u03c3').replace(/[\u200c\u200d]/g, '')
      .split(/[.\u3002\uff0e\uff61]/).filter((l) => l);
  }
  return labels.map((l) => {
    if (/^[\x00-\x7f]*$/.test(l)) return l;
    const a = domainToASCII(l);
    if (!a) throw invalid('url host is not a valid IDNA name');
    return a;
  }).join('.');
}

// One pass of the canonicalization (the caller iterates it to a fixed point).
function pass(input) {
  let url = input.replace(/^[\x00-\x20\s]+/u, '').replace(/[\t\r\n]/g, '');
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):(.*)$/s.exec(url);
  if (!m) throw invalid('url must be absolute');
  const scheme = m[1].toLowerCase();
  url = `${m[1]}://${m[2].replace(/^\/+/, '')}`;
  const hash = url.indexOf('#');
  if (hash >= 0) url = url.slice(0, hash);
  const rest = url.slice(url.indexOf('://') + 3);
  const end = rest.search(/[/?]/);
  const netloc = end < 0 ? rest : rest.slice(0, end);
  let tail = end < 0 ? '' : rest.slice(end);
  const qpos = tail.indexOf('?');
  let path = qpos < 0 ? tail : tail.slice(0, qpos);
  let query = qpos < 0 ? '' : tail.slice(qpos + 1);
  query = query.split('&').filter((p) => p).join('&');
  const auth = netloc.trimEnd();
  const at = auth.lastIndexOf('@');
  let userinfo = at < 0 ? '' : auth.slice(0, at + 1);
  const hostPort = at < 0 ? auth : auth.slice(at + 1);
  let host;
  let port;
  if (hostPort.startsWith('[')) {
    const close = hostPort.indexOf(']');
    if (close < 0) throw invalid('url host is not a valid IPv6 address');
    host = hostPort.slice(0, close + 1);
    port = hostPort.slice(close + 1).replace(/^:/, '');
  } else {
    const colon = hostPort.indexOf(':');
    host = colon < 0 ? hostPort : hostPort.slice(0, colon);
    port = colon < 0 ? '' : hostPort.slice(colon + 1);
  }
  host = normalizeHost(host);
  if (userinfo === '@' || userinfo === ':@') userinfo = '';
  else if (userinfo) userinfo = `${component(userinfo.slice(0, -1), "!$&'()*+,;=:", RESERVED)}@`;
  query = normalizeQuery(query);
  if (/^[0-9]+$/.test(port)) {
    port = BigInt(port).toString();
    if ((scheme === 'http' && port === '80') || (scheme === 'https' && port === '443')) port = '';
  }
  path = normalizePath(path);
  return `${scheme}://${userinfo}${host}${port ? `:${port}` : ''}${path}${query ? `?${query}` : ''}`;
}

const HOST_LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;
const IPV6 = /^[0-9a-f:.]+$/;

// Value rule 2 (§5.3, rule-2 steps): no userinfo; a host that ends in a number is an
// IPv4 address (1..4 parts, each decimal, 0x-hex or 0-octal) written as dotted decimal.
const DEC = /^[0-9]+$/;
const HEXPART = /^0[xX][0-9a-fA-F]*$/;
function ipv4Host(host) {
  const last = host.split('.').pop();
  if (!host || !(DEC.test(last) || HEXPART.test(last))) return null;
  const parts = host.split('.');
  const bad = () => invalid('url host ends in a number but is not an IPv4 address');
  if (parts.length > 4 || parts.includes('')) throw bad();
  const nums = parts.map((p) => {
    if (HEXPART.test(p)) return BigInt(`0x${p.slice(2) || '0'}`);
    if (p.length > 1 && p.startsWith('0')) {
      if (!/^[0-7]+$/.test(p)) throw bad();
      return BigInt(`0o${p.slice(1)}`);
    }
    if (!DEC.test(p)) throw bad();
    return BigInt(p);
  });
  const lastNum = nums[nums.length - 1];
  if (nums.slice(0, -1).some((n) => n > 255n) || lastNum >= 256n ** BigInt(5 - nums.length)) {
    throw invalid('url host is an IPv4 address out of range');
  }
  let addr = lastNum;
  nums.slice(0, -1).forEach((n, i) => { addr += n << BigInt(8 * (3 - i)); });
  return [24n, 16n, 8n, 0n].map((s) => ((addr >> s) & 255n).toString()).join('.');
}

function rule2Step(u) {
  const sep = u.indexOf('://');
  const rest = u.slice(sep + 3);
  const cut = rest.search(/[/?]/);
  const authority = cut < 0 ? rest : rest.slice(0, cut);
  const tail = cut < 0 ? '' : rest.slice(cut);
  let hostport = authority.slice(authority.lastIndexOf('@') + 1);
  if (!hostport.startsWith('[')) {
    const colon = hostport.indexOf(':');
    const host = colon < 0 ? hostport : hostport.slice(0, colon);
    hostport = (ipv4Host(host) ?? host) + (colon < 0 ? '' : hostport.slice(colon));
  }
  return `${u.slice(0, sep)}://${hostport}${tail}`;
}

function url(text, rule = 2) {
  let value = text.split('#')[0];
  let stable = false;
  for (let i = 0; i < 4; i++) {
    let again = pass(value);
    if (again && rule >= 2) again = rule2Step(again);
    if (!again) throw invalid('url cannot be normalized');
    if (again === value) { stable = true; break; }
    value = again;
  }
  if (!stable) throw invalid('url has no stable canonical form');
  if (value.length > 2048) throw invalid('url must be at most 2048 characters once normalized');
  if (!/^[\x00-\x7f]*$/.test(value)) throw invalid('url must be ASCII once normalized');
  const authority = value.slice(value.indexOf('://') + 3).split(/[/?]/)[0];
  const hostport = authority.slice(authority.lastIndexOf('@') + 1);
  let host;
  let port;
  if (hostport.startsWith('[')) {
    const close = hostport.indexOf(']');
    host = hostport.slice(1, close < 0 ? undefined : close);
    const rest = close < 0 ? '' : hostport.slice(close + 1);
    if (close < 0 || !IPV6.test(host) || !host.includes(':')) throw invalid('url host is not a valid IPv6 address');
    if (rest && !rest.startsWith(':')) throw invalid('url must name a host');
    port = rest.slice(1);
  } else {
    const colon = hostport.indexOf(':');
    host = colon < 0 ? hostport : hostport.slice(0, colon);
    port = colon < 0 ? '' : hostport.slice(colon + 1);
    if (host && (host.length > 253 || !host.split('.').every((l) => HOST_LABEL.test(l)))) {
      throw invalid('url host must be a DNS name or an IP address');
    }
  }
  if (!host || value.includes(' ')) throw invalid('url must name a host');
  if (port && (!/^[0-9]+$/.test(port) || port.startsWith('0') || Number(port) > 65535)) throw invalid('url port must be 1..65535');
  return value;
}

module.exports = { url };
