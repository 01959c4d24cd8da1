import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BulwarkError } from '../../src/core/errors.js';
import { escapeControls, quote } from '../../src/core/quote.js';
import { reportError } from '../../src/cli/main.js';
import { encodeModel } from '../../src/onnx/proto.js';
import { ELEM, readModel } from '../../src/onnx/ir.js';

test('quote escapes control characters and cuts long values, saying their length', () => {
  assert.equal(quote('f4'), '"f4"');
  assert.equal(quote('a"b\\c'), '"a\\"b\\\\c"');
  assert.equal(quote('\x1b[31mX\x1b]0;t\x07\r\n\x9b\u202e'), '"\\e[31mX\\e]0;t\\u0007\\r\\n\\u009b\\u202e"');
  const q = quote('x'.repeat(5000));
  assert.equal(q, `"${'x'.repeat(200)}"... (5000 characters)`);
});

test('escapeControls keeps newlines and escapes every other control character', () => {
  assert.equal(escapeControls('a\nb\x1b[2Jc\x07'), 'a\nb\\e[2Jc\\u0007');
});

test('the CLI error printer escapes control characters a message carries', () => {
  const chunks: string[] = [];
  const orig = process.stderr.write;
  process.stderr.write = ((c: string) => (chunks.push(String(c)), true)) as typeof process.stderr.write;
  let code: number;
  try {
    code = reportError(new BulwarkError('BULWARK_E_NPY', 'bad \x1b]0;pwned\x07 value\nsecond line'));
    reportError(new Error('boom \x1b[31m'));
  } finally {
    process.stderr.write = orig;
  }
  assert.equal(code, 2);
  const out = chunks.join('');
  assert.doesNotMatch(out, /[\x00-\x09\x0b-\x1f\x7f]/);
  assert.match(out, /bad \\e\]0;pwned\\u0007 value\nsecond line/);
  assert.match(out, /boom \\e\[31m/);
});

test('ONNX names in read errors are quoted and cut', () => {
  const evil = '\x1b]0;owned\x07' + 'n'.repeat(100_000);
  const bytes = encodeModel({
    irVersion: 7,
    opsetImport: [{ domain: '', version: 13 }],
    graph: {
      name: 'g',
      node: [{ opType: 'Relu', input: ['x'], output: ['y'], name: 'r' }],
      initializer: [{ name: evil, dims: [-1], dataType: ELEM.FLOAT }],
      input: [{ name: 'x', type: { tensorType: { elemType: ELEM.FLOAT, shape: { dim: [{ dimValue: 1 }] } } } }],
      output: [{ name: 'y', type: { tensorType: { elemType: ELEM.FLOAT, shape: { dim: [{ dimValue: 1 }] } } } }],
    },
  });
  assert.throws(() => readModel(bytes), (e: unknown) => {
    assert.ok(e instanceof BulwarkError, String(e));
    assert.ok(e.message.length < 500, `message of ${e.message.length} characters`);
    assert.doesNotMatch(e.message, /[\x00-\x1f]/);
    assert.match(e.message, /"\\e\]0;owned\\u0007n+"\.\.\. \(100010 characters\)/);
    return true;
  });
});
