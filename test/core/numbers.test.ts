import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isDecimal, parseDecimal, parseDigits } from '../../src/core/numbers.js';
import { parseDecimal as argsParseDecimal } from '../../src/cli/args.js';

test('parseDecimal takes plain decimal and scientific notation only', () => {
  assert.equal(argsParseDecimal, parseDecimal, 'the CLI uses the core function');
  for (const [text, v] of [['3', 3], ['-0.5', -0.5], ['+.5', 0.5], ['3.', 3], ['1e-3', 1e-3], ['2E+2', 200], ['007', 7]] as const) {
    assert.equal(parseDecimal(text), v, text);
    assert.ok(isDecimal(text), text);
  }
  assert.equal(parseDecimal('1e999'), Infinity, 'notation is checked here; finiteness is the caller\'s');
  for (const bad of ['0x10', '0b1', '0o7', '1_000', 'Infinity', 'NaN', '', ' 1', '1 ', '1e', '.', '+-1', '1,5']) {
    assert.ok(Number.isNaN(parseDecimal(bad)), bad);
    assert.equal(isDecimal(bad), false, bad);
  }
});

test('parseDigits takes unsigned decimal integers that are exact in a double', () => {
  for (const [text, v] of [['0', 0], ['7', 7], ['0012', 12], ['9007199254740991', 9007199254740991]] as const) assert.equal(parseDigits(text), v, text);
  for (const bad of ['', '-1', '+1', '1.0', '1e2', '0x3', ' 3', '3 ', '١', '9007199254740993', '1'.repeat(400)]) assert.ok(Number.isNaN(parseDigits(bad)), bad);
});
