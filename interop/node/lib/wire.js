'use strict';
// Protobuf wire format: a strict reader (canonical-encoding checks, PROTOCOL.md §2)
// and a small writer for the requests this member sends.

class WireError extends Error {}

// Read a varint at buf[pos]; return [value as BigInt, next pos]. Non-minimal
// encodings (a trailing 0x00 continuation group) and >10-byte varints are refused.
function readVarint(buf, pos) {
  let value = 0n;
  let shift = 0n;
  const start = pos;
  for (;;) {
    if (pos >= buf.length) throw new WireError('truncated varint');
    const byte = buf[pos++];
    value |= BigInt(byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) {
      if (byte === 0 && pos - start > 1) throw new WireError('non-minimal varint');
      if (pos - start > 10 || value >= (1n << 64n)) throw new WireError('varint overflow');
      return [value, pos];
    }
    shift += 7n;
  }
}

// Split a message into [{number, wireType, value (BigInt) | bytes (Buffer)}] in wire order.
function readFields(buf) {
  const fields = [];
  let pos = 0;
  while (pos < buf.length) {
    let key;
    [key, pos] = readVarint(buf, pos);
    const number = Number(key >> 3n);
    const wireType = Number(key & 7n);
    if (number < 1 || number > 536870911) throw new WireError('bad field number');
    if (wireType === 0) {
      let v;
      [v, pos] = readVarint(buf, pos);
      fields.push({ number, wireType, value: v });
    } else if (wireType === 2) {
      let len;
      [len, pos] = readVarint(buf, pos);
      const end = pos + Number(len);
      if (len > BigInt(buf.length) || end > buf.length) throw new WireError('truncated length-delimited field');
      fields.push({ number, wireType, bytes: buf.subarray(pos, end) });
      pos = end;
    } else if (wireType === 1 || wireType === 5) {
      const size = wireType === 1 ? 8 : 4;
      if (pos + size > buf.length) throw new WireError('truncated fixed field');
      fields.push({ number, wireType, bytes: buf.subarray(pos, pos + size) });
      pos += size;
    } else {
      throw new WireError(`unsupported wire type ${wireType}`);
    }
  }
  return fields;
}

function varint(n) {
  let v = BigInt(n);
  const out = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v) byte |= 0x80;
    out.push(byte);
  } while (v);
  return Buffer.from(out);
}

// Canonical writer: call with fields in ascending number order; defaults are skipped.
class Writer {
  constructor() { this.parts = []; }
  uint(number, value) {
    if (BigInt(value) === 0n) return this;
    this.parts.push(varint((BigInt(number) << 3n) | 0n), varint(value));
    return this;
  }
  // A field with presence (`optional`, oneof member): written even when it is 0.
  uintPresent(number, value) {
    this.parts.push(varint((BigInt(number) << 3n) | 0n), varint(value));
    return this;
  }
  bool(number, value) { return value ? this.uint(number, 1) : this; }
  // An embedded message with presence: written even when empty.
  message(number, bytes) {
    this.parts.push(varint((BigInt(number) << 3n) | 2n), varint(bytes.length), bytes);
    return this;
  }
  bytes(number, value) {
    const b = Buffer.from(value);
    if (b.length === 0) return this;
    this.parts.push(varint((BigInt(number) << 3n) | 2n), varint(b.length), b);
    return this;
  }
  string(number, value) { return this.bytes(number, Buffer.from(value, 'utf8')); }
  finish() { return Buffer.concat(this.parts); }
}

module.exports = { WireError, readVarint, readFields, varint, Writer };
