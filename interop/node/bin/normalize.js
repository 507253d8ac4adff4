#!/usr/bin/env node
'use strict';
// Read a JSON array of {type, input} on stdin; write [{valid, normalized | reason}] on stdout.
const { normalize } = require('../lib/normalize');

let text = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => { text += chunk; });
process.stdin.on('end', () => {
  const out = JSON.parse(text).map(({ type, input }) => {
    try {
      return { valid: true, normalized: normalize(type, input) };
    } catch (e) {
      if (!e.reason) throw e;
      return { valid: false, reason: e.reason };
    }
  });
  process.stdout.write(JSON.stringify(out));
});
