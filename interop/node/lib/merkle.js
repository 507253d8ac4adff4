'use strict';
// RFC 6962 / RFC 9162 Merkle tree hashes and proof verification (PROTOCOL.md §9, §10).
const { sha256 } = require('./ed25519');

const leafHash = (data) => sha256(Buffer.concat([Buffer.from([0]), data]));
const nodeHash = (l, r) => sha256(Buffer.concat([Buffer.from([1]), l, r]));
const EMPTY_ROOT = sha256(Buffer.alloc(0));

function rootOf(leaves) {
  if (leaves.length === 0) return EMPTY_ROOT;
  if (leaves.length === 1) return leaves[0];
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return nodeHash(rootOf(leaves.slice(0, k)), rootOf(leaves.slice(k)));
}

const isHash = (h) => Buffer.isBuffer(h) && h.length === 32;
const allHashes = (hs) => hs.every(isHash);

// RFC 9162 §2.1.3.2
function rootFromInclusion(index, size, leaf, proof) {
  if (index >= size || !isHash(leaf) || !allHashes(proof)) return null;
  let fn = BigInt(index);
  let sn = BigInt(size) - 1n;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0n) return null;
    if ((fn & 1n) === 1n || fn === sn) {
      r = nodeHash(p, r);
      if ((fn & 1n) === 0n) {
        while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn >>= 1n; sn >>= 1n;
  }
  return sn === 0n ? r : null;
}

function verifyInclusion(index, size, leaf, proof, root) {
  const got = rootFromInclusion(index, size, leaf, proof);
  return got !== null && got.equals(root);
}

// RFC 9162 §2.1.4.2
function verifyConsistency(oldSize, newSize, oldRoot, newRoot, proof) {
  if (oldSize > newSize || !allHashes(proof)) return false;
  if (oldSize === newSize) return proof.length === 0 && oldRoot.equals(newRoot) && (oldSize > 0 || oldRoot.equals(EMPTY_ROOT));
  if (!isHash(oldRoot) || !isHash(newRoot)) return false;
  if (oldSize === 0) return proof.length === 0 && oldRoot.equals(EMPTY_ROOT);
  let path = proof.slice();
  let m = BigInt(oldSize);
  const n = BigInt(newSize);
  if ((m & (m - 1n)) === 0n) path = [oldRoot, ...path];
  if (path.length === 0) return false;
  let fn = m - 1n;
  let sn = n - 1n;
  while ((fn & 1n) === 1n) { fn >>= 1n; sn >>= 1n; }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0n) return false;
    if ((fn & 1n) === 1n || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if ((fn & 1n) === 0n) {
        while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn >>= 1n; sn >>= 1n;
  }
  return sn === 0n && fr.equals(oldRoot) && sr.equals(newRoot);
}

// Batch inclusion (PROTOCOL.md §10): walk [0, size) splitting at the largest power of
// two below the range's width; a range holding none of the leaves takes the next
// proof hash, a one-leaf range is that leaf, depth first, left before right.
function rootFromBatch(leaves, size, proof) {
  if (!allHashes(proof) || !allHashes(leaves.map((l) => l[1]))) return null;
  for (let i = 0; i < leaves.length; i++) {
    if (leaves[i][0] >= size || (i > 0 && leaves[i][0] <= leaves[i - 1][0])) return null;
  }
  if (leaves.length === 0) return null;
  let next = 0;
  const walk = (lo, hi, first, last) => {
    if (first === last) {
      if (next >= proof.length) throw new Error('short');
      return proof[next++];
    }
    if (hi - lo === 1) return leaves[first][1];
    let k = 1;
    while (k * 2 < hi - lo) k *= 2;
    const mid = lo + k;
    let cut = first;
    while (cut < last && leaves[cut][0] < mid) cut++;
    const left = walk(lo, mid, first, cut);
    return nodeHash(left, walk(mid, hi, cut, last));
  };
  try {
    const root = walk(0, size, 0, leaves.length);
    return next === proof.length ? root : null;
  } catch {
    return null;
  }
}

function verifyBatch(leaves, size, proof, root) {
  const got = rootFromBatch(leaves, size, proof);
  return got !== null && got.equals(root);
}

module.exports = { leafHash, nodeHash, rootOf, EMPTY_ROOT, verifyInclusion, verifyConsistency, verifyBatch };
