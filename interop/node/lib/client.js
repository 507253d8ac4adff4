'use strict';
// A gRPC client (@grpc/grpc-js, service definitions from @grpc/proto-loader) that
// signs every call (PROTOCOL.md §4) over the exact request bytes it sends.
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const { PROTO_DIR, FILES } = require('./schema');
const { signCall } = require('./callauth');
const { ProtocolError } = require('./errors');

const definitions = protoLoader.loadSync(FILES, {
  includeDirs: [PROTO_DIR], keepCase: true, longs: String, enums: Number, defaults: true, oneofs: true,
});

function method(service, name) {
  const def = definitions[`trustwire.v1.${service}`][name];
  if (!def) throw new Error(`no method ${service}/${name}`);
  return def;
}

class ExchangeClient {
  constructor({ target, principal, privateKey, origin, callAuth = 'v3', deadlineMs = 15000 }) {
    this.client = new grpc.Client(target, grpc.credentials.createInsecure());
    Object.assign(this, { principal, privateKey, origin, callAuth, deadlineMs });
  }

  metadata(path, body) {
    const md = new grpc.Metadata();
    const headers = signCall({
      version: this.callAuth, origin: this.origin, method: path, principal: this.principal, privateKey: this.privateKey, body,
    });
    for (const [k, v] of Object.entries(headers)) md.set(k, v);
    return md;
  }

  static error(err) {
    const reason = err.metadata && err.metadata.get('tw-reason')[0];
    const e = new ProtocolError(reason || 'unavailable', `${grpc.status[err.code]}: ${err.details}`);
    e.code = grpc.status[err.code];
    return e;
  }

  // Unary call with a hand-encoded canonical request body.
  unary(service, name, body) {
    const def = method(service, name);
    const deadline = Date.now() + this.deadlineMs;
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(def.path, (b) => b, def.responseDeserialize, body, this.metadata(def.path, body),
        { deadline }, (err, reply) => (err ? reject(ExchangeClient.error(err)) : resolve(reply)));
    });
  }

  // Server-streaming call; yields each response.
  async *stream(service, name, body) {
    const def = method(service, name);
    const call = this.client.makeServerStreamRequest(def.path, (b) => b, def.responseDeserialize, body,
      this.metadata(def.path, body), {});
    try {
      for await (const reply of call) yield reply;
    } catch (err) {
      throw ExchangeClient.error(err);
    }
  }

  close() { this.client.close(); }
}

module.exports = { ExchangeClient };
