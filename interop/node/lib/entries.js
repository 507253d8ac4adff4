'use strict';
// Entries (PROTOCOL.md §1): payload types, strict decoding and the stateless rules.
const { decodeCanonical } = require('./canonical');
const { check: checkValue } = require('./normalize');
const { ProtocolError } = require('./errors');

const KINDS = { signal: 'Signal', retraction: 'Retraction', opinion: 'Opinion', keyevent: 'KeyEvent' };
const PAYLOAD_TYPES = Object.fromEntries(
  Object.entries(KINDS).map(([k, t]) => [`application/vnd.trustwire.${k}.v1+protobuf`, { kind: k, type: t }]),
);

const MEMBER_ID = /^[a-z0-9][a-z0-9-]{1,62}$/;
const GROUP_ID = MEMBER_ID;
const SIGNAL_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const LABEL = /^[a-z0-9][a-z0-9_.:-]{0,63}$/;
const TYPE_NAME = /^[a-z][a-z0-9_]{0,31}$/;
const SEVERITIES = new Set([0, 1, 2, 3, 4]);
const TLPS = new Set([1, 2, 3, 4, 5]);

const malformed = (m) => new ProtocolError('malformed-entry', m);
const require_ = (ok, m) => { if (!ok) throw malformed(m); };
const memberId = (v) => { if (!MEMBER_ID.test(v)) throw new ProtocolError('invalid-value', 'bad member id'); };
const unique = (xs) => new Set(xs).size === xs.length;

// Timestamps: seconds and nanos, millisecond precision; "required" means seconds > 0.
function timestampMs(name, ts, required) {
  if (ts === undefined) {
    if (required) throw malformed(`${name} is required`);
    return null;
  }
  if (required && ts.seconds <= 0n) throw malformed(`${name} is required`);
  if (ts.nanos < 0 || ts.nanos >= 1e9) throw malformed(`${name} nanos out of range`);
  if (ts.nanos % 1e6) throw malformed(`${name} has sub-millisecond precision`);
  return ts.seconds * 1000n + BigInt(ts.nanos / 1e6);
}

function validateSignal(s) {
  require_(SIGNAL_ID.test(s.signal_id), 'bad signal_id');
  memberId(s.member_id);
  if (!TYPE_NAME.test(s.type)) throw new ProtocolError('invalid-value', 'bad signal type name');
  const rule = Number(s.value_rule || 0);
  if (rule !== 0 && rule !== 2) throw new ProtocolError('invalid-value', 'value_rule is 2, or omitted for rule 1');
  checkValue(s.type, s.value, rule || 1);
  require_(s.labels.length <= 32, 'at most 32 labels');
  require_(s.labels.every((l) => LABEL.test(l)), 'bad label');
  require_(unique(s.labels), 'labels must be unique');
  require_(s.confidence <= 100, 'confidence is 0..100');
  require_(SEVERITIES.has(s.severity), 'unknown severity');
  const sharing = s.sharing || { groups: [], tlp: 0 };
  require_(sharing.groups.length >= 1, 'sharing needs a group');
  for (const g of sharing.groups) if (!GROUP_ID.test(g)) throw new ProtocolError('invalid-value', 'bad group id');
  require_(unique(sharing.groups), 'sharing groups must be unique');
  require_(TLPS.has(sharing.tlp), 'sharing needs a TLP level');
  timestampMs('created_at', s.created_at, true);
  const from = timestampMs('valid_from', s.valid_from, false);
  const until = timestampMs('valid_until', s.valid_until, false);
  if (from !== null && until !== null) require_(until > from, 'valid_until must be after valid_from');
  require_(s.related.length <= 64, 'at most 64 related ids');
  require_(s.related.every((r) => SIGNAL_ID.test(r)), 'related entries are signal ids');
  require_([...s.description].length <= 512, 'description too long');
}

function validateRef(ref) {
  const r = ref || { member_id: '', signal_id: '' };
  memberId(r.member_id);
  require_(SIGNAL_ID.test(r.signal_id), 'bad signal_id');
}

function validate(kind, e) {
  try {
    if (kind === 'signal') validateSignal(e);
    else if (kind === 'retraction' || kind === 'opinion') {
      memberId(e.member_id);
      validateRef(e.signal);
      require_(kind === 'retraction' ? e.reason !== 0 : e.verdict !== 0,
        kind === 'retraction' ? 'retraction needs a reason' : 'opinion needs a verdict');
      timestampMs('created_at', e.created_at, true);
    } else {
      timestampMs('created_at', e.created_at, true);
      require_(e.$event, 'key event carries no event');
    }
  } catch (err) {
    if (err instanceof ProtocolError) throw err;
    throw err;
  }
}

// Decode and validate a verified payload: {kind, entry, publisher}.
function decodeEntry(payloadType, payload) {
  const pt = PAYLOAD_TYPES[payloadType];
  if (!pt) throw malformed('unknown payload_type');
  const entry = decodeCanonical(pt.type, payload, 'malformed-entry');
  validate(pt.kind, entry);
  return { kind: pt.kind, entry, publisher: pt.kind === 'keyevent' ? 'operator' : entry.member_id };
}

module.exports = { decodeEntry, PAYLOAD_TYPES, timestampMs };
