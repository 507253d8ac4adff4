'use strict';
const test = require('node:test');
const assert = require('node:assert');
const { runAll } = require('../lib/conformance');

test('every conformance vector agrees with this implementation', () => {
  const { files, failures } = runAll();
  assert.ok(Object.keys(files).length >= 10, JSON.stringify(files));
  assert.deepStrictEqual(failures, []);
});
