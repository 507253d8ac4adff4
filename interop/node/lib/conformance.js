'use strict';
// Check every file of conformance/vectors/ against this implementation.
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const ed = require('./ed25519');
const merkle = require('./merkle');
const note = require('./note');
const { decodeEnvelope, verifyEnvelope, decodeRecord, pae } = require('./envelope');
const { decodeEntry } = require('./entries');
const { normalize, check } = require('./normalize');
const { commit: keydirCommit, line: keydirLine, checkCommitted } = require('./keydir_commitment');
const { Verifier } = require('./verifier');
const { checkCall, callMessage } = require('./callauth');
const { accountValue } = require('./accounts');

const VECTORS = path.resolve(__dirname, '..', '..', '..', 'conformance', 'vectors');
const hex = (s) => Buffer.from(s, 'hex');
const load = (name) => JSON.parse(fs.readFileSync(path.join(VECTORS, `${name}.json`), 'utf8'));

function reasonOf(fn) {
  try { fn(); return null; } catch (e) { if (e.reason) return e.reason; throw e; }
}
const okOf = (fn) => { try { fn(); return true; } catch { return false; } };

const CHECKS = {
  callauth(doc, fail) {
    const pk = hex(doc.keys.alice.public_key);
    for (const c of doc.cases) {
      const got = checkCall({ origin: c.origin, method: c.method, headers: c.headers, body: hex(c.body), publicKey: pk });
      if (got !== (c.valid ? null : c.reason)) fail(c.name, c.reason, got);
      if (c.valid) {
        const h = c.headers;
        const msg = callMessage('v3', { origin: c.origin, method: c.method, principal: h['tw-principal'], keyid: h['tw-keyid'],
          timestamp: h['tw-timestamp'], nonce: h['tw-nonce'], body: hex(c.body) }).toString('utf8');
        if (msg !== c.message) fail(c.name, 'message', msg);
      }
    }
    const w = doc.window;
    for (const t of w.timestamps) {
      const expired = Math.abs(Number(t.timestamp) - w.clock_ms) > w.replay_window_ms;
      if (expired !== (t.reason === 'expired-call')) fail(`window ${t.timestamp}`, t.reason, expired);
    }
  },
  envelopes(doc, fail) {
    for (const c of doc.cases) {
      let raw;
      if (c.envelope) raw = hex(c.envelope);
      else {
        const { Writer } = require('./wire');
        raw = new Writer().bytes(1, Buffer.alloc(64 * 1024)).string(2, 'application/vnd.trustwire.signal.v1+protobuf').finish();
        raw = Buffer.concat([raw, Buffer.alloc(0)]);
      }
      const got = reasonOf(() => verifyEnvelope(decodeEnvelope(raw), hex(c.public_key || '00')));
      if (got !== (c.valid ? null : c.reason)) fail(c.name, c.reason, got);
      if (c.valid && pae(c.payload_type, hex(c.payload)).toString('hex') !== c.pae) fail(c.name, 'pae', '');
    }
    for (const p of doc.pae_examples) {
      if (pae(p.payload_type, hex(p.payload)).toString('hex') !== p.pae) fail(`pae ${p.payload_type}`, p.pae, '');
    }
  },
  entries(doc, fail) {
    for (const c of doc.cases) {
      const got = reasonOf(() => decodeEntry(c.payload_type, hex(c.payload)));
      if (got !== (c.valid ? null : c.reason)) fail(c.name, c.reason, got);
    }
  },
  records(doc, fail) {
    for (const c of doc.cases) {
      const got = reasonOf(() => decodeRecord(hex(c.record)));
      if (got !== (c.valid ? null : c.reason)) fail(c.name, c.reason, got);
      if (c.valid && merkle.leafHash(hex(c.record)).toString('hex') !== c.leaf_hash) fail(c.name, 'leaf hash', '');
    }
  },
  normalization(doc, fail) {
    for (const c of doc.cases) {
      let got;
      try { got = { valid: true, value: normalize(c.type, c.input, c.rule) }; } catch (e) {
        if (!e.reason) throw e;
        got = { valid: false, reason: e.reason };
      }
      const ok = got.valid === c.valid && (c.valid ? got.value === c.normalized : got.reason === c.reason);
      if (!ok) fail(c.name, c.valid ? c.normalized : c.reason, got.valid ? got.value : got.reason);
      if (c.valid) {
        let signalReason;
        try { check(c.type, c.normalized, c.rule); } catch (e) {
          if (!e.reason) throw e;
          signalReason = e.reason;
        }
        if (signalReason !== c.signal_reason) fail(`${c.name} (as a signal)`, c.signal_reason, signalReason);
      }
    }
  },
  accounts(doc, fail) {
    const secret = hex(doc.secret);
    for (const c of doc.cases) {
      let got;
      try { got = accountValue(doc.platform, c.kind, c.identifier, secret); } catch (e) {
        if (!e.reason) throw e;
        got = e.reason;
      }
      if (got !== (c.valid ? c.value : c.reason)) fail(c.name, c.valid ? c.value : c.reason, got);
    }
    for (const c of doc.cases.filter((x) => x.valid)) {
      const mac = crypto.createHmac('sha256', secret).update(Buffer.from(c.hmac_message, 'utf8')).digest('hex');
      if (mac !== c.hmac) fail(c.name, c.hmac, mac);
      if (normalize('account', c.value) !== c.value) fail(c.name, 'account value canonical', '');
    }
  },
  merkle(doc, fail) {
    const leaves = doc.leaves.map(hex);
    for (const [n, r] of Object.entries(doc.roots)) {
      if (merkle.rootOf(leaves.slice(0, Number(n))).toString('hex') !== r) fail(`root ${n}`, r, '');
    }
    for (const c of doc.inclusion) {
      if (merkle.verifyInclusion(c.index, c.tree_size, hex(c.leaf_hash), c.proof.map(hex), hex(c.root)) !== c.valid) fail(c.name, c.valid, !c.valid);
    }
    for (const c of doc.consistency) {
      if (merkle.verifyConsistency(c.old_size, c.new_size, hex(c.old_root), hex(c.new_root), c.proof.map(hex)) !== c.valid) fail(c.name, c.valid, !c.valid);
    }
    for (const c of doc.batch) {
      const got = merkle.verifyBatch(c.indices.map((i, j) => [i, hex(c.leaf_hashes[j])]), c.tree_size, c.proof.map(hex), hex(c.root));
      if (got !== c.valid) fail(c.name, c.valid, got);
    }
  },
  checkpoints(doc, fail) {
    for (const c of doc.cases) {
      let got = null;
      const ok = okOf(() => { got = note.openCheckpoint(c.note, doc.log_verifier_key, [doc.witness_verifier_key], c.witness_quorum); });
      if (ok !== c.valid) fail(c.name, c.valid, ok);
      if (ok && (got.root.toString('hex') !== c.root || Number(got.size) !== c.size || got.origin !== c.origin)) fail(c.name, 'fields', '');
    }
  },
  keydir(doc, fail) {
    const v = new Verifier(hex(doc.operator_public_key));
    for (const c of doc.cases) {
      const got = reasonOf(() => v.verify(hex(c.record)));
      if (got !== (c.valid ? null : c.reason)) fail(c.name, c.reason, got);
    }
    const tainted = v.tainted().map(Number);
    if (JSON.stringify(tainted) !== JSON.stringify(doc.tainted_by_compromise)) fail('tainted', doc.tainted_by_compromise, tainted);
    // the trustwire-keydir checkpoint line over the accepted key events below each size
    const events = doc.cases.filter((c) => c.valid && v.accepted.some((a) => Number(a.index) === c.index && a.kind === 'keyevent'));
    for (const c of doc.keydir_commitments) {
      const got = keydirLine(keydirCommit(events.filter((e) => e.index < c.size).map((e) => hex(e.record))));
      if (got !== c.line) fail(`keydir-commitment-${c.size}`, c.line, got);
      const parsed = reasonOf(() => checkCommitted({ size: c.size, extensions: [c.line] }, events.filter((e) => e.index < c.size).map((e) => hex(e.record))));
      if (parsed !== null) fail(`keydir-commitment-${c.size} check`, null, parsed);
    }
  },
  keys(doc, fail) {
    for (const c of doc.cases) {
      if (ed.isValidPublicKey(hex(c.public_key)) !== c.valid) fail(c.name, c.valid, !c.valid);
      if (c.valid && ed.keyId(hex(c.public_key)) !== c.keyid) fail(c.name, 'keyid', '');
    }
    for (const c of doc.signatures) {
      if (ed.verify(hex(c.public_key), hex(c.message), hex(c.signature)) !== c.valid) fail(c.name, c.valid, !c.valid);
    }
  },
};

const THIRD_PARTY = path.resolve(VECTORS, '..', 'third_party');

function jsonFiles(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const p = path.join(dir, d.name);
    if (d.isDirectory()) return jsonFiles(p);
    return d.name.endsWith('.json') ? [p] : [];
  });
}

// Vendored third-party vectors: RFC 6962 proofs (transparency-dev) and Wycheproof Ed25519.
function thirdParty(fail) {
  const b64 = (s) => Buffer.from(s, 'base64');
  let n = 0;
  const rfc = path.join(THIRD_PARTY, 'rfc6962-merkle');
  for (const file of jsonFiles(path.join(rfc, 'inclusion'))) {
    const c = JSON.parse(fs.readFileSync(file, 'utf8'));
    const ok = c.leafIdx >= 0 && c.treeSize >= 0 && c.leafHash !== null && c.root !== null &&
      merkle.verifyInclusion(c.leafIdx, c.treeSize, b64(c.leafHash || ''), (c.proof || []).map(b64), b64(c.root || ''));
    if (ok === c.wantErr) fail(path.relative(rfc, file), !c.wantErr, ok);
    n += 1;
  }
  for (const file of jsonFiles(path.join(rfc, 'consistency'))) {
    const c = JSON.parse(fs.readFileSync(file, 'utf8'));
    const ok = c.size1 >= 0 && c.size2 >= 0 &&
      merkle.verifyConsistency(c.size1, c.size2, b64(c.root1 || ''), b64(c.root2 || ''), (c.proof || []).map(b64));
    if (ok === c.wantErr) fail(path.relative(rfc, file), !c.wantErr, ok);
    n += 1;
  }
  const wy = JSON.parse(fs.readFileSync(path.join(THIRD_PARTY, 'ed25519-wycheproof', 'ed25519_test.json'), 'utf8'));
  for (const g of wy.testGroups) {
    const pk = hex((g.publicKey || g.key).pk);
    for (const t of g.tests) {
      const ok = ed.verify(pk, hex(t.msg), hex(t.sig));
      if (ok !== (t.result === 'valid')) fail(`wycheproof ${t.tcId}`, t.result, ok);
      n += 1;
    }
  }
  return n;
}

// Run every vector file; return {files: {name: cases}, failures: [...]}.
function runAll() {
  const failures = [];
  const files = {};
  for (const file of fs.readdirSync(VECTORS).filter((f) => f.endsWith('.json')).sort()) {
    const name = file.replace(/\.json$/, '');
    const check = CHECKS[name];
    if (!check) { failures.push({ file: name, case: '*', expected: 'a checker', got: 'none' }); continue; }
    const doc = load(name);
    check(doc, (kase, expected, got) => failures.push({ file: name, case: kase, expected, got }));
    files[name] = (doc.cases || []).length + (doc.inclusion || []).length + (doc.consistency || []).length + (doc.batch || []).length;
  }
  files['third_party'] = thirdParty((kase, expected, got) => failures.push({ file: 'third_party', case: kase, expected, got }));
  return { files, failures };
}

module.exports = { runAll, VECTORS };
