'use strict';
// End-to-end verification of ledger records in index order (PROTOCOL.md §10, "Verifying
// a record"): record, envelope, signature with a key the verifier's own key directory
// allows, entry rules, and the key events applied to that directory.
const { decodeRecord, decodeEnvelope, verifyEnvelope } = require('./envelope');
const { decodeEntry } = require('./entries');
const { KeyDirectory } = require('./keydir');
const { ProtocolError } = require('./errors');
const ed = require('./ed25519');

class Verifier {
  constructor(operatorPublicKey) {
    this.operatorKey = operatorPublicKey;
    this.operatorKeyId = ed.keyId(operatorPublicKey);
    this.directory = new KeyDirectory();
    this.lastIndex = -1n;
    this.accepted = []; // [{index, acceptedAtMs, keyid, kind}]
  }

  // Verify one record; return {index, kind, entry, publisher, keyid} or throw a ProtocolError.
  verify(raw) {
    const rec = decodeRecord(raw);
    if (rec.index <= this.lastIndex) throw new ProtocolError('ledger-gap', `record ${rec.index} delivered out of order`);
    this.lastIndex = rec.index; // a refused record still occupies its index
    const env = decodeEnvelope(rec.envelope);
    const byOperator = env.keyid === this.operatorKeyId;
    const key = byOperator ? this.operatorKey : this.directory.keys.get(env.keyid)?.publicKey;
    if (!key) throw new ProtocolError('unknown-key', 'key is not in the directory');
    verifyEnvelope(env, key);
    const { kind, entry, publisher } = decodeEntry(env.payloadType, env.payload);
    if (byOperator !== (publisher === 'operator')) throw new ProtocolError('wrong-member', 'only key events are signed by the operator');
    if (kind === 'keyevent') {
      if (entry.$event === 'key_added' && ed.keyId(entry.key_added.public_key) === this.operatorKeyId) {
        throw new ProtocolError('invalid-key-event', 'the operator key cannot be a member key');
      }
      this.directory.apply(entry, rec.index);
    } else {
      this.directory.signingKey(env.keyid, publisher, rec.index, rec.acceptedAtMs);
      if (kind === 'signal') this.directory.checkSharing(publisher, entry.sharing);
    }
    const out = { index: rec.index, acceptedAtMs: rec.acceptedAtMs, kind, entry, publisher, keyid: env.keyid };
    this.accepted.push(out);
    return out;
  }

  // Accepted entries signed by a key after the point its revocation says it was compromised.
  tainted() {
    return this.accepted.filter((v) => {
      const k = this.directory.keys.get(v.keyid);
      return v.kind !== 'keyevent' && k && KeyDirectory.tainted(k, v.index, v.acceptedAtMs);
    }).map((v) => v.index);
  }
}

module.exports = { Verifier };
