import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FLOAT32_MAX, toFloat32Checked } from '../../src/core/tensor.js';
import { encodeNpy, writeNpz } from '../../src/data/npy.js';
import { loadData } from '../../src/data/spec.js';
import { fails, repoRoot, runCli, assertUserError } from '../helpers.js';

test('a finite float64 beyond the float32 range is said to overflow float32, not to be infinite', () => {
  assert.deepEqual([...toFloat32Checked(new Float64Array([0.5, -2, FLOAT32_MAX]), 'x')], [0.5, -2, FLOAT32_MAX]);
  assert.throws(() => toFloat32Checked(new Float64Array([0, 1e300]), '--input'), fails('BULWARK_E_NONFINITE', /^--input holds 1e\+300 at flat index 1, which overflows float32/));
  assert.throws(() => toFloat32Checked(new Float64Array([-1e39]), 'x'), fails('BULWARK_E_NONFINITE', /overflows float32/));
  assert.throws(() => toFloat32Checked(new Float64Array([Infinity]), 'x'), fails('BULWARK_E_NONFINITE', /non-finite value \(Infinity\)/));
  assert.throws(() => toFloat32Checked(new Float64Array([NaN]), 'x'), fails('BULWARK_E_NONFINITE', /non-finite value \(NaN\)/));
});

test('--input and --data float64 arrays holding 1e300 are refused as overflowing float32', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-f64-'));
  const data = new Float64Array(2 * 784).fill(0.5);
  data[3] = 1e300;
  const x = path.join(tmp, 'x64.npy');
  fs.writeFileSync(x, encodeNpy({ data, shape: [2, 1, 28, 28], dtype: 'float64' }));
  const model = path.join(repoRoot, 'fixtures', 'torch', 'cnn_norm', 'model.onnx');
  assertUserError(await runCli('predict', '--model', model, '--input', x, '--out', path.join(tmp, 'p.npy')), 'BULWARK_E_NONFINITE', /--input holds 1e\+300 at flat index 3, which overflows float32/);
  const npz = path.join(tmp, 'd.npz');
  writeNpz(npz, { x: { data, shape: [2, 784], dtype: 'float64' }, y: { data: new Int32Array([0, 1]), shape: [2], dtype: 'int32' } });
  await assert.rejects(loadData(npz), fails('BULWARK_E_NONFINITE', /overflows float32/));
});
