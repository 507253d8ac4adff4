'use strict';
// The key directory (PROTOCOL.md §8): a projection of operator-signed KeyEvents in
// ledger order, answering "may this publisher sign with this key at (index, time)?".
const ed = require('./ed25519');
const { ProtocolError } = require('./errors');
const { timestampMs } = require('./entries');

const MEMBER_ID = /^[a-z0-9][a-z0-9-]{1,62}$/;
const ROLE_MEMBER = 1;
const bad = (m) => new ProtocolError('invalid-key-event', m);
const tsMs = (ts) => (ts === undefined ? 0n : ts.seconds * 1000n + BigInt(Math.trunc(ts.nanos / 1e6)));
const earliest = (a, b) => (a === null ? b : b === null ? a : b < a ? b : a);

class KeyDirectory {
  constructor() {
    this.keys = new Map();
    this.members = new Map();
    this.groups = new Map();
    this.lastIndex = -1n;
  }

  liveGroups(ids) {
    const out = new Set();
    for (const id of ids) {
      const g = this.groups.get(id);
      if (!g) throw bad(`group ${id} does not exist`);
      if (g.retired) throw bad(`group ${id} is retired`);
      out.add(id);
    }
    return out;
  }

  member(id) {
    const m = this.members.get(id);
    if (!m) throw bad(`member ${id} is not enrolled`);
    return m;
  }

  apply(event, index) {
    if (index <= this.lastIndex) throw bad('key event out of order');
    const which = event.$event;
    const e = event[which];
    switch (which) {
      case 'member_enrolled': {
        if (!MEMBER_ID.test(e.member_id)) throw bad('bad member id');
        if (this.members.has(e.member_id) || e.member_id === 'operator') throw bad('already enrolled');
        if (![1, 2, 3].includes(e.role)) throw bad('member_enrolled needs a role');
        this.members.set(e.member_id, { role: e.role, groups: this.liveGroups(e.groups), suspended: false });
        break;
      }
      case 'key_added': {
        this.member(e.member_id);
        if (!ed.isValidPublicKey(e.public_key)) throw bad('public key is not acceptable');
        const keyid = ed.keyId(e.public_key);
        if (this.keys.has(keyid)) throw bad('key already in the directory');
        this.keys.set(keyid, {
          keyid, member: e.member_id, publicKey: e.public_key, validFrom: tsMs(e.valid_from), added: index,
          revoked: null, endIndex: null, revokedAt: null, compromised: false, sinceIndex: null, sinceMs: null,
        });
        break;
      }
      case 'key_revoked': {
        const k = this.keys.get(e.keyid);
        if (!k || k.member !== e.member_id) throw bad('key_revoked names a key the member does not hold');
        const hasIndex = e.compromised_since_index !== undefined; // presence-aware: 0 is "from index 0"
        const hasTime = e.compromised_since !== undefined;
        if (e.compromised && !hasIndex && !hasTime) throw bad('a compromised key needs a since point');
        if (!e.compromised && (hasIndex || hasTime)) throw bad('compromised_since is only for compromised keys');
        if (e.compromised && hasIndex && e.compromised_since_index > index) throw bad('compromised_since_index is after the revocation');
        // monotone tightening (PROTOCOL.md §8): each bound becomes the tighter of old and new
        const revokedAt = e.revoked_at === undefined ? null : tsMs(e.revoked_at);
        const after = {
          revoked: k.revoked === null ? index : k.revoked,
          endIndex: earliest(k.endIndex, e.compromised || revokedAt === null ? index : null),
          revokedAt: earliest(k.revokedAt, e.compromised ? null : revokedAt),
          compromised: k.compromised || !!e.compromised,
          sinceIndex: earliest(k.sinceIndex, e.compromised && hasIndex ? e.compromised_since_index : null),
          sinceMs: earliest(k.sinceMs, e.compromised && hasTime ? tsMs(e.compromised_since) : null),
        };
        const bounds = (x) => [x.endIndex, x.revokedAt, x.compromised, x.sinceIndex, x.sinceMs].join('|');
        if (k.revoked !== null && bounds(after) === bounds(k)) throw bad('key is already revoked at least this tightly');
        Object.assign(k, after);
        break;
      }
      case 'member_suspended':
      case 'member_reinstated': {
        const m = this.member(e.member_id);
        const suspend = which === 'member_suspended';
        if (m.suspended === suspend) throw bad('member is already in that state');
        m.suspended = suspend;
        break;
      }
      case 'groups_set':
        this.member(e.member_id).groups = this.liveGroups(e.groups);
        break;
      case 'group_created':
        if (!MEMBER_ID.test(e.group_id)) throw bad('bad group id');
        if (this.groups.has(e.group_id)) throw bad('group already exists');
        if (e.max_tlp < 1 || e.max_tlp > 5) throw bad('group_created needs max_tlp');
        this.groups.set(e.group_id, { maxTlp: e.max_tlp, retired: false });
        break;
      case 'group_retired': {
        const g = this.groups.get(e.group_id);
        if (!g) throw bad('group does not exist');
        g.retired = true;
        break;
      }
      default:
        throw bad('key event carries no event');
    }
    this.lastIndex = index;
  }

  static tainted(k, index, atMs) {
    if (!k.compromised) return false;
    return (k.sinceIndex !== null && index >= k.sinceIndex) || (k.sinceMs !== null && atMs >= k.sinceMs);
  }

  static usable(k, index, atMs) {
    if (index <= k.added || atMs < k.validFrom) return false;
    if (KeyDirectory.tainted(k, index, atMs)) return false;
    if (k.endIndex !== null && index >= k.endIndex) return false;
    return k.revokedAt === null || atMs < k.revokedAt;
  }

  signingKey(keyid, publisher, index, atMs) {
    const k = this.keys.get(keyid);
    if (!k) throw new ProtocolError('unknown-key', 'key is not in the directory');
    if (k.member !== publisher) throw new ProtocolError('wrong-member', `key belongs to ${k.member}`);
    if (!KeyDirectory.usable(k, index, atMs)) throw new ProtocolError('key-not-valid', 'key not valid at this index');
    const m = this.members.get(publisher);
    if (!m || m.suspended) throw new ProtocolError('member-suspended', `${publisher} is suspended`);
    if (m.role !== ROLE_MEMBER) throw new ProtocolError('permission-denied', 'only members publish');
    return k;
  }

  checkSharing(publisher, sharing) {
    const m = this.members.get(publisher);
    for (const id of sharing.groups) {
      const g = this.groups.get(id);
      if (!g || g.retired) throw new ProtocolError('group-not-allowed', `group ${id} does not exist`);
      if (!m || !m.groups.has(id)) throw new ProtocolError('group-not-allowed', `${publisher} is not in ${id}`);
      if (sharing.tlp > g.maxTlp) throw new ProtocolError('tlp-not-allowed', `group ${id} allows a lower TLP`);
    }
  }
}

module.exports = { KeyDirectory, tsMs, timestampMs };
