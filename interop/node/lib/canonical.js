'use strict';
// Strict decoding of canonically encoded protobuf (PROTOCOL.md §2), rule by rule:
//   C1 fields appear in ascending field-number order; a repeated field's elements are contiguous;
//   C2 no unknown field numbers, and each field has the wire type of its declared type;
//   C3 a singular field appears at most once;
//   C4 a singular scalar field without presence is omitted when it holds its default
//      (0, false, empty string or bytes); fields with presence (message, oneof member,
//      `optional`) are written whenever set, even to a default value;
//   C5 varints and lengths use the fewest bytes; bools are 0 or 1; values fit their type;
//   C6 strings are valid UTF-8;
//   C7 every embedded message is itself canonical.
const { readFields, WireError } = require('./wire');
const { messageType } = require('./schema');
const { ProtocolError } = require('./errors');

const VARINT_TYPES = new Set(['int32', 'uint32', 'int64', 'uint64', 'bool', 'sint32', 'sint64']);
const utf8 = new TextDecoder('utf-8', { fatal: true });

function hasPresence(field) {
  if (field.resolvedType && !field.resolvedType.values) return true; // message
  if (field.partOf) return true; // oneof member, or proto3 `optional` (a synthetic oneof)
  return false;
}

function scalarValue(field, f) {
  const isEnum = field.resolvedType && field.resolvedType.values;
  const t = isEnum ? 'enum' : field.type;
  if (t === 'string') {
    if (f.wireType !== 2) throw new WireError(`field ${field.name} has the wrong wire type`);
    try { return utf8.decode(f.bytes); } catch { throw new WireError(`field ${field.name} is not UTF-8`); }
  }
  if (t === 'bytes') {
    if (f.wireType !== 2) throw new WireError(`field ${field.name} has the wrong wire type`);
    return Buffer.from(f.bytes);
  }
  if (f.wireType !== 0 || !(VARINT_TYPES.has(t) || t === 'enum')) {
    throw new WireError(`field ${field.name} has the wrong wire type`);
  }
  const v = f.value;
  switch (t) {
    case 'bool':
      if (v > 1n) throw new WireError(`bool field ${field.name} is not 0 or 1`);
      return v === 1n;
    case 'uint32':
      if (v >= (1n << 32n)) throw new WireError(`uint32 field ${field.name} out of range`);
      return Number(v);
    case 'int32':
    case 'enum': {
      const signed = BigInt.asIntN(64, v);
      if (signed < -(1n << 31n) || signed >= (1n << 31n)) throw new WireError(`int32 field ${field.name} out of range`);
      return Number(signed);
    }
    case 'int64': return BigInt.asIntN(64, v);
    case 'uint64': return v;
    default: throw new WireError(`unsupported type ${t}`);
  }
}

function isDefault(value) {
  if (typeof value === 'bigint') return value === 0n;
  if (typeof value === 'number') return value === 0;
  if (typeof value === 'boolean') return value === false;
  if (typeof value === 'string') return value.length === 0;
  if (Buffer.isBuffer(value)) return value.length === 0;
  return false;
}

function defaultOf(field) {
  if (field.repeated) return [];
  if (field.resolvedType && field.resolvedType.values) return 0;
  switch (field.type) {
    case 'string': return '';
    case 'bytes': return Buffer.alloc(0);
    case 'bool': return false;
    case 'int64': case 'uint64': return 0n;
    default: return 0;
  }
}

function decodeType(type, buf) {
  const out = {};
  for (const field of type.fieldsArray) {
    if (!hasPresence(field) || field.repeated) out[field.name] = defaultOf(field);
  }
  let last = 0;
  for (const f of readFields(buf)) {
    const field = type.fieldsById[f.number];
    if (!field) throw new WireError(`unknown field ${f.number} in ${type.name}`);
    if (f.number < last) throw new WireError(`field ${field.name} is out of field-number order`);
    if (f.number === last && !field.repeated) throw new WireError(`singular field ${field.name} is repeated`);
    last = f.number;
    let value;
    if (field.resolvedType && !field.resolvedType.values) {
      if (f.wireType !== 2) throw new WireError(`field ${field.name} has the wrong wire type`);
      value = decodeType(field.resolvedType, f.bytes);
    } else {
      value = scalarValue(field, f);
      if (!field.repeated && !hasPresence(field) && isDefault(value)) {
        throw new WireError(`field ${field.name} is written with its default value`);
      }
    }
    if (field.repeated) out[field.name].push(value);
    else out[field.name] = value;
    if (field.partOf && field.partOf.oneof.length > 1) {
      if (out[`$${field.partOf.name}`]) throw new WireError(`two members of oneof ${field.partOf.name}`);
      out[`$${field.partOf.name}`] = field.name;
    }
  }
  return out;
}

// Decode `buf` as the canonical encoding of message `typeName`, or throw a
// ProtocolError with `reason` (malformed-envelope, malformed-entry, malformed-record).
function decodeCanonical(typeName, buf, reason) {
  try {
    return decodeType(messageType(typeName), buf);
  } catch (e) {
    if (e instanceof WireError) throw new ProtocolError(reason, `${typeName} is not canonically encoded: ${e.message}`);
    throw e;
  }
}

module.exports = { decodeCanonical };
