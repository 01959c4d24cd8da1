import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadModel } from '../../src/runtime/model.js';
import { readNpy, readNpz } from '../../src/data/npy.js';
import type { Float32Tensor } from '../../src/core/tensor.js';
import { repoRoot, relL2, maxAbsDiff } from '../helpers.js';

// Models exported from PyTorch by tools/make_torch_fixtures.py, with PyTorch's outputs and autograd gradients.
const root = path.join(repoRoot, 'fixtures', 'torch');
const names = fs.readdirSync(root).filter((n) => fs.existsSync(path.join(root, n, 'model.onnx'))).sort();

test('the fixture set covers the required models', () => {
  for (const n of ['cnn_norm', 'mlp_softmax', 'resnet_gap', 'zoo', 'conv1d', 'mlp_logsoftmax']) assert.ok(names.includes(n), `missing fixture ${n}`);
});

for (const name of names) {
  const dir = path.join(root, name);
  const meta = JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8')) as { outputKind: string; numClasses: number };
  const x = readNpy(path.join(dir, 'x.npy')) as Float32Tensor;
  const y = Array.from(readNpy(path.join(dir, 'y.npy')).data as BigInt64Array, Number);

  test(`${name}: output equals PyTorch's to 1e-5`, async () => {
    const model = await loadModel(path.join(dir, 'model.onnx'), { threads: 1 });
    assert.equal(model.outputKind, meta.outputKind);
    const out = await model.predict(x);
    const ref = readNpy(path.join(dir, 'out.npy')).data as Float32Array;
    assert.ok(maxAbsDiff(out.data as Float32Array, ref) < 1e-5, `max |diff| ${maxAbsDiff(out.data as Float32Array, ref)}`);
    await model.dispose();
  });

  for (const loss of ['ce', 'margin', 'dlr'] as const) {
    const refFile = path.join(dir, `grad_${loss}.npy`);
    if (!fs.existsSync(refFile)) continue;
    if (loss === 'dlr' && meta.numClasses < 3) continue;
    test(`${name}: ${loss} input gradient equals PyTorch autograd to 1e-4 relative L2`, async () => {
      const model = await loadModel(path.join(dir, 'model.onnx'), { threads: 1 });
      const res = await model.lossAndGradient(x, y, { kind: loss });
      const ref = readNpy(refFile).data as Float32Array;
      const err = relL2(res.grad.data as Float32Array, ref);
      assert.ok(err < 1e-4, `relative L2 error ${err}`);
      await model.dispose();
    });
  }

  const pg = path.join(dir, 'params_grad.npz');
  if (fs.existsSync(pg)) {
    test(`${name}: parameter gradients (mean CE) equal PyTorch's`, async () => {
      const model = await loadModel(path.join(dir, 'model.onnx'), { threads: 1 });
      const refs = readNpz(pg);
      const params = Object.keys(refs).filter((k) => model.graph.initializers.has(k));
      assert.ok(params.length > 0, 'no parameter of the reference maps to an initializer');
      const { grads } = await model.parameterGradients(x, y, { params, reduction: 'mean' });
      for (const p of params) {
        const ref = refs[p]!.data as Float32Array;
        const got = grads.get(p)!;
        const scale = Math.sqrt(ref.reduce((a, v) => a + v * v, 0));
        if (scale < 1e-10) assert.ok(maxAbsDiff(got, ref) < 1e-6, `${p}: expected ~0, max |g| ${maxAbsDiff(got, ref)}`);
        else assert.ok(relL2(got, ref) < 1e-4, `${p}: relative L2 error ${relL2(got, ref)}`);
      }
      await model.dispose();
    });
  }
}
