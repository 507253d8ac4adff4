#!/usr/bin/env node
'use strict';
// Check conformance/vectors/*.json; print a JSON summary; exit 1 on any disagreement.
const { runAll } = require('../lib/conformance');

const result = runAll();
process.stdout.write(`${JSON.stringify(result, null, 1)}\n`);
process.exit(result.failures.length ? 1 : 0);
