import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BulwarkError } from '../../src/core/errors.js';
import { MAX_CLASSES, classIds } from '../../src/data/labels.js';
import { loadData } from '../../src/data/spec.js';
import { encodeNpy, writeNpz } from '../../src/data/npy.js';
import { repoRoot, runCli, assertUserError } from '../helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-labels-'));
const labelsError = (re: RegExp) => (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_LABELS' && re.test(e.message);

test('64-bit labels are checked on their stored values, never wrapped to int32', () => {
  assert.deepEqual([...classIds(new BigInt64Array([1n, 2n, 3n]), 'y')], [1, 2, 3]);
  assert.throws(() => classIds(new BigInt64Array([1n, 2n, 3n, 2n ** 40n]), '--labels'), labelsError(/^--labels: label 3 is 1099511627776/));
  assert.throws(() => classIds(new BigInt64Array([2n ** 32n + 1n]), 'y'), labelsError(/4294967297/));
  assert.throws(() => classIds(new BigInt64Array([-(2n ** 63n)]), 'y'), labelsError(/negative/));
  assert.throws(() => classIds(new BigUint64Array([2n ** 64n - 1n]), 'y'), labelsError(/18446744073709551615/));
  assert.throws(() => classIds(new Float64Array([1.5]), 'y'), labelsError(/not an integer/));
  assert.throws(() => classIds(new Int32Array([MAX_CLASSES]), 'y'), labelsError(new RegExp(`at most ${MAX_CLASSES} classes`)));
  assert.deepEqual([...classIds(new Int32Array([MAX_CLASSES - 1]), 'y')], [MAX_CLASSES - 1]);
});

test('grad --labels and --data x.npz agree on labels that wrap in int32', async () => {
  const fx = path.join(repoRoot, 'fixtures', 'torch', 'cnn_norm');
  const x = path.join(tmp, 'x.npy');
  fs.writeFileSync(x, encodeNpy({ data: new Float32Array(4 * 784).fill(0.5), shape: [4, 1, 28, 28], dtype: 'float32' }));
  for (const bad of [2n ** 32n + 1n, 2n ** 40n, -(2n ** 63n)]) {
    const y = path.join(tmp, 'y.npy');
    fs.writeFileSync(y, encodeNpy({ data: new BigInt64Array([1n, 2n, 3n, bad]), shape: [4], dtype: 'int64' }));
    assertUserError(await runCli('grad', '--model', path.join(fx, 'model.onnx'), '--input', x, '--labels', y, '--out', path.join(tmp, 'g.npy')), 'BULWARK_E_LABELS', /--labels: label 3 is/);
    assert.equal(fs.existsSync(path.join(tmp, 'g.npy')), false);
    const npz = path.join(tmp, 'd.npz');
    writeNpz(npz, { x: { data: new Float32Array(4 * 4), shape: [4, 4], dtype: 'float32' }, y: { data: new BigInt64Array([1n, 2n, 3n, bad]), shape: [4], dtype: 'int64' } });
    await assert.rejects(loadData(npz), labelsError(/label 3 is/));
  }
});

test('a label far above any sane class count is refused before training builds a network', async () => {
  const npz = path.join(tmp, 'bigK.npz');
  for (const big of [5_000_000, 2147483647]) {
    writeNpz(npz, { x: { data: new Float32Array(4 * 4), shape: [4, 4], dtype: 'float32' }, y: { data: new Int32Array([0, 1, 2, big]), shape: [4], dtype: 'int32' } });
    const r = await runCli('train', '--arch', 'mlp', '--data', npz, '--out', path.join(tmp, 'm.onnx'), '--epochs', '1');
    assertUserError(r, 'BULWARK_E_LABELS', new RegExp(`--data: .*label 3 is ${big}.*at most ${MAX_CLASSES} classes`));
    assert.doesNotMatch(r.stderr, /^training /m, 'refused before the network is built');
    assert.doesNotMatch(r.stderr, /^epoch \d/m, 'no epoch ran');
    assert.equal(fs.existsSync(path.join(tmp, 'm.onnx')), false);
  }
});
