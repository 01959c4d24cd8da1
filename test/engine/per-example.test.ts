import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { loadModel } from '../../src/runtime/model.js';
import { readNpy } from '../../src/data/npy.js';
import type { Float32Tensor } from '../../src/core/tensor.js';
import { BulwarkError } from '../../src/core/errors.js';
import { repoRoot, maxAbsDiff } from '../helpers.js';

const dir = (n: string) => path.join(repoRoot, 'fixtures', 'torch', n);

// Per-example gradients (for DP-SGD clipping) must equal the gradients computed one example at a time.
for (const [name, params] of [
  ['conv1d', ['conv.weight', 'conv.bias', 'fc.weight', 'fc.bias']],
  ['mlp_softmax', ['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc3.bias']],
] as const) {
  test(`${name}: per-example parameter gradients equal one-at-a-time gradients to 1e-5`, async () => {
    const model = await loadModel(path.join(dir(name), 'model.onnx'), { threads: 1 });
    const present = params.filter((p) => model.graph.initializers.has(p));
    assert.equal(present.length, params.length, `fixture initializers: ${[...model.graph.initializers.keys()].join(', ')}`);
    const x = readNpy(path.join(dir(name), 'x.npy')) as Float32Tensor;
    const y = Array.from(readNpy(path.join(dir(name), 'y.npy')).data as BigInt64Array, Number);
    const n = x.shape[0]!;
    const row = x.data.length / n;
    const per = await model.parameterGradients(x, y, { params: [...present], perExample: true });
    for (let i = 0; i < n; i++) {
      const one = await model.parameterGradients({ data: x.data.slice(i * row, (i + 1) * row), shape: [1, ...x.shape.slice(1)], dtype: 'float32' }, [y[i]!], { params: [...present] });
      for (const p of present) {
        const size = one.grads.get(p)!.length;
        const mine = per.grads.get(p)!.subarray(i * size, (i + 1) * size);
        assert.equal(per.grads.get(p)!.length, n * size, `${p} per-example size`);
        assert.ok(maxAbsDiff(mine, one.grads.get(p)!) < 1e-5, `${p} example ${i}: ${maxAbsDiff(mine, one.grads.get(p)!)}`);
      }
    }
  });
}

test('per-example gradients through an op without support are refused by name', async () => {
  const model = await loadModel(path.join(dir('conv1d'), 'model.onnx'), { threads: 1 });
  const bn = [...model.graph.nodes].find((nd) => nd.opType === 'BatchNormalization')!;
  const x = readNpy(path.join(dir('conv1d'), 'x.npy')) as Float32Tensor;
  const y = Array.from(readNpy(path.join(dir('conv1d'), 'y.npy')).data as BigInt64Array, Number);
  await assert.rejects(model.parameterGradients(x, y, { params: [bn.inputs[1]!], perExample: true }), (e: BulwarkError) => e.code === 'BULWARK_E_UNSUPPORTED_OP' && /BatchNormalization/.test(e.message));
});
