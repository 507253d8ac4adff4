#!/usr/bin/env node
'use strict';
// Verify the ledger records of a file (one hex record per line) with a pinned operator
// key; print {records, verified, ms} (the time of verification only, not of start-up).
const fs = require('node:fs');
const { Verifier } = require('../lib/verifier');

const [file, operatorKey] = process.argv.slice(2);
const records = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((h) => Buffer.from(h, 'hex'));
const verifier = new Verifier(Buffer.from(operatorKey, 'hex'));
const start = process.hrtime.bigint();
let verified = 0;
for (const raw of records) {
  verifier.verify(raw);
  verified += 1;
}
const ms = Number(process.hrtime.bigint() - start) / 1e6;
process.stdout.write(`${JSON.stringify({ records: records.length, verified, ms })}\n`);
