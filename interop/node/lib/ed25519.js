'use strict';
// Ed25519 with node:crypto, plus the acceptance rule of PROTOCOL.md §3: keys are
// canonical points of the prime-order subgroup (not of small order); signatures
// have a canonical S and an R not of small order (what libsodium accepts).
const crypto = require('node:crypto');

const P = (1n << 255n) - 19n;
const L = (1n << 252n) + 27742317777372353535851937790883648493n;
const mod = (a) => ((a % P) + P) % P;
function pow(b, e) {
  let r = 1n;
  b = mod(b);
  while (e > 0n) {
    if (e & 1n) r = (r * b) % P;
    b = (b * b) % P;
    e >>= 1n;
  }
  return r;
}
const inv = (a) => pow(a, P - 2n);
const D = mod(-121665n * inv(121666n));
const SQRT_M1 = pow(2n, (P - 1n) / 4n);

function leInt(bytes) {
  return BigInt(`0x${Buffer.from(bytes).reverse().toString('hex') || '0'}`);
}

// Decode a 32-byte point; null if not canonical or not on the curve.
function decodePoint(bytes) {
  if (bytes.length !== 32) return null;
  const b = Buffer.from(bytes);
  const sign = b[31] >> 7;
  b[31] &= 0x7f;
  const y = leInt(b);
  if (y >= P) return null;
  const u = mod(y * y - 1n);
  const v = mod(D * y * y + 1n);
  let x = mod(u * pow(v, 3n) * pow(u * pow(v, 7n), (P - 5n) / 8n));
  if (mod(v * x * x) !== u) {
    if (mod(v * x * x) === mod(-u)) x = mod(x * SQRT_M1);
    else return null;
  }
  if (x === 0n && sign === 1) return null;
  if (Number(x & 1n) !== sign) x = mod(-x);
  return [x, y, 1n, mod(x * y)];
}

function add([X1, Y1, Z1, T1], [X2, Y2, Z2, T2]) {
  const A = mod((Y1 - X1) * (Y2 - X2));
  const B = mod((Y1 + X1) * (Y2 + X2));
  const C = mod(2n * D * T1 * T2);
  const Dd = mod(2n * Z1 * Z2);
  const E = B - A; const F = Dd - C; const G = Dd + C; const H = B + A;
  return [mod(E * F), mod(G * H), mod(F * G), mod(E * H)];
}

function mul(point, k) {
  let r = [0n, 1n, 1n, 0n];
  let q = point;
  while (k > 0n) {
    if (k & 1n) r = add(r, q);
    q = add(q, q);
    k >>= 1n;
  }
  return r;
}

const isIdentity = ([X, Y, Z]) => mod(X) === 0n && mod(Y - Z) === 0n;

// Is `raw` an acceptable public key (canonical, prime-order subgroup, not small order)?
function isValidPublicKey(raw) {
  const pt = decodePoint(raw);
  if (!pt) return false;
  if (isIdentity(mul(pt, 8n))) return false;
  return isIdentity(mul(pt, L));
}

const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

// Encodings (sign bit ignored) of the points of small order, including the non-canonical
// encodings y = p and y = p + 1: what libsodium refuses as R or as a key.
const SMALL_ORDER = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
].map((h) => Buffer.from(h, 'hex'));
function hasSmallOrder(bytes) {
  const b = Buffer.from(bytes);
  b[31] &= 0x7f;
  return SMALL_ORDER.some((s) => s.equals(b));
}

const keyObjects = new Map();
function keyObject(publicKey) {
  const id = publicKey.toString('hex');
  let k = keyObjects.get(id);
  if (!k) {
    k = crypto.createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' });
    if (keyObjects.size > 10000) keyObjects.clear();
    keyObjects.set(id, k);
  }
  return k;
}

function verify(publicKey, message, signature) {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  if (leInt(signature.subarray(32)) >= L) return false;
  if (hasSmallOrder(signature.subarray(0, 32)) || hasSmallOrder(publicKey)) return false;
  const key = keyObject(publicKey);
  try {
    return crypto.verify(null, message, key, signature);
  } catch {
    return false;
  }
}

function privateKeyFromSeed(seed) {
  return crypto.createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

function publicKeyOf(privateKey) {
  return crypto.createPublicKey(privateKey).export({ format: 'der', type: 'spki' }).subarray(12);
}

function sign(privateKey, message) {
  return crypto.sign(null, message, privateKey);
}

const sha256 = (data) => crypto.createHash('sha256').update(data).digest();
const keyId = (publicKey) => sha256(publicKey).toString('hex');

module.exports = { isValidPublicKey, verify, privateKeyFromSeed, publicKeyOf, sign, sha256, keyId };
