import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readModel } from '../../src/onnx/ir.js';
import { BulwarkError } from '../../src/core/errors.js';
import { repoRoot } from '../helpers.js';

test('a truncated ONNX file is named and said to be truncated or corrupt, at any cut', () => {
  const full = fs.readFileSync(path.join(repoRoot, 'fixtures', 'torch', 'cnn_norm', 'model.onnx'));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-trunc-'));
  for (const cut of [1, 10, 11, 15, 20, 30, 50, 100, 1000, Math.floor(full.length / 2), full.length - 9]) {
    const file = path.join(dir, `cut_${cut}.onnx`);
    fs.writeFileSync(file, full.subarray(0, cut));
    assert.throws(() => readModel(file), (e: unknown) => {
      assert.ok(e instanceof BulwarkError, String(e));
      assert.equal(e.code, 'BULWARK_E_ONNX_PARSE');
      assert.ok(e.message.includes(file), `${cut}: ${e.message}`);
      assert.match(e.message, /truncated or corrupt/, `${cut}: ${e.message}`);
      assert.doesNotMatch(e.message, /another file format/);
      return true;
    });
  }
  const text = path.join(dir, 'readme.onnx');
  fs.writeFileSync(text, 'hello, this is text\n');
  assert.throws(() => readModel(text), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_ONNX_PARSE' && e.message.includes(text) && !/truncated/.test(e.message));
});
