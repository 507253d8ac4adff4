'use strict';
// The message schemas, read from the repository's .proto files with protobufjs
// (the library under @grpc/proto-loader). Only field numbers, types, labels and
// presence are used; decoding and the canonical checks are in canonical.js.
const path = require('node:path');
const protobuf = require('protobufjs');

const PROTO_DIR = path.resolve(__dirname, '..', '..', '..', 'proto');
const FILES = ['audit', 'entries', 'envelope', 'exchange', 'ledger'].map((f) => `exchange/pb/trustwire/v1/${f}.proto`);

let root;
function schemaRoot() {
  if (!root) {
    root = new protobuf.Root();
    root.resolvePath = (origin, target) => {
      if (target.startsWith('google/protobuf/')) return target; // bundled with protobufjs
      return path.join(PROTO_DIR, target);
    };
    root.loadSync(FILES, { keepCase: true });
    root.resolveAll();
  }
  return root;
}

function messageType(name) {
  return schemaRoot().lookupType(name.includes('.') ? name : `trustwire.v1.${name}`);
}

module.exports = { PROTO_DIR, FILES, schemaRoot, messageType };
