'use strict';
// One error type carrying the stable reason of PROTOCOL.md §11.

class ProtocolError extends Error {
  constructor(reason, message) {
    super(`${reason}: ${message}`);
    this.reason = reason;
  }
}

module.exports = { ProtocolError };
