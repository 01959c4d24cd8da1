import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fitLayout } from '../../src/data/layout.js';
import { imagePixels } from '../../src/report/png.js';
import { ELEM, emptyGraph, writeModelBytes } from '../../src/onnx/ir.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import type { Float32Tensor } from '../../src/core/tensor.js';
import { lastJson, runCli } from '../helpers.js';

const images = (n: number, c: number, h: number, w: number): Float32Tensor => ({ data: Float32Array.from({ length: n * c * h * w }, (_, i) => i / (n * c * h * w)), shape: [n, c, h, w], dtype: 'float32' });

test('fitLayout puts NCHW images in an NHWC model layout, element by element', () => {
  const x = images(2, 3, 4, 5);
  const { x: y, change } = fitLayout(x, [-1, 4, 5, 3]);
  assert.equal(change, 'NCHW -> NHWC');
  assert.deepEqual(y.shape, [2, 4, 5, 3]);
  for (let n = 0; n < 2; n++) for (let c = 0; c < 3; c++) for (let h = 0; h < 4; h++) for (let w = 0; w < 5; w++) {
    assert.equal(y.data[((n * 4 + h) * 5 + w) * 3 + c], x.data[((n * 3 + c) * 4 + h) * 5 + w]);
  }
  // The same example renders to the same pixels from either layout.
  const a = imagePixels(x.data, 60, 3, 4, 5, [0, 1]);
  const b = imagePixels(y.data, 60, 3, 4, 5, [0, 1], true);
  assert.deepEqual(b, a);
});

test('fitLayout reshapes between flat rows and images, and leaves exact or ambiguous fits alone', () => {
  const x = images(2, 1, 4, 4);
  assert.deepEqual(fitLayout(x, [-1, 16]).x.shape, [2, 16]);
  assert.equal(fitLayout(x, [-1, 16]).change, 'images -> flat rows');
  const flat: Float32Tensor = { data: x.data, shape: [2, 16], dtype: 'float32' };
  assert.deepEqual(fitLayout(flat, [-1, 1, 4, 4]).x.shape, [2, 1, 4, 4]);
  assert.equal(fitLayout(x, [-1, 1, 4, 4]).change, undefined);
  assert.equal(fitLayout(x, [-1, 1, -1, -1]).change, undefined);
  // a size that does not match and a layout that is not certain are reported by the caller's shape check
  assert.deepEqual(fitLayout(x, [-1, 15]).x.shape, [2, 1, 4, 4]);
  assert.deepEqual(fitLayout(x, [-1, 4, 1, 4]).x.shape, [2, 1, 4, 4]);
});

test('bulwark attack on a model that takes NHWC images gets the built-in NCHW data in its layout', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-nhwc-'));
  const g = emptyGraph({ name: 'nhwc', inputs: [{ name: 'input', elemType: ELEM.FLOAT, shape: ['N', 28, 28, 1] }] });
  const b = new GraphBuilder(g);
  const nchw = b.transpose('input', [0, 3, 1, 2]);
  const k = b.floats('k', Array.from({ length: 36 }, (_, i) => Math.sin(i * 0.7) / 3), [4, 1, 3, 3]);
  const conv = b.node('Relu', [b.node('Conv', [nchw, k], { kernel_shape: [3, 3], strides: [2, 2] })]);
  const w = b.floats('w', Array.from({ length: 4 * 13 * 13 * 10 }, (_, i) => Math.cos(i * 0.37) / 20), [4 * 13 * 13, 10]);
  const out = b.node('MatMul', [b.node('Flatten', [conv]), w], {}, 'fc', 'logits');
  g.outputs.push({ name: out, elemType: ELEM.FLOAT, shape: ['N', 10] });
  const file = path.join(dir, 'nhwc.onnx');
  fs.writeFileSync(file, writeModelBytes(g));
  const r = await runCli('attack', 'fgsm', '--model', file, '--data', 'mnist:test[0:16]', '--eps', '0.3', '--json', '--workers', '1');
  assert.equal(r.code, 0, r.stderr);
  const j = lastJson(r.stdout);
  assert.equal(j['n'], 16);
  assert.match(String(j['data']), /NCHW -> NHWC/);
  fs.rmSync(dir, { recursive: true, force: true });
});
