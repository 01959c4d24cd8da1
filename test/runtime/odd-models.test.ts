import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel } from '../../src/runtime/model.js';
import { encodeModel, type ModelProto } from '../../src/onnx/proto.js';
import { ELEM } from '../../src/onnx/ir.js';
import type { Float32Tensor } from '../../src/core/tensor.js';
import { fails } from '../helpers.js';

const dim = (d: number | string) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d });
const vi = (name: string, shape: (number | string)[] | null) => ({ name, type: { tensorType: { elemType: ELEM.FLOAT, ...(shape ? { shape: { dim: shape.map(dim) } } : {}) } } });

/** x [N,2] -> ReduceSum over `axes` (none: every axis) with keepdims 0 -> y declared as `outShape`. */
function reduceModel(inShape: (number | string)[] | null, axes: number[] | null, outShape: (number | string)[] | null): Uint8Array {
  const proto: ModelProto = {
    irVersion: 8,
    opsetImport: [{ domain: '', version: 13 }],
    graph: {
      name: 'odd',
      node: [{ opType: 'ReduceSum', input: axes ? ['x', 'axes'] : ['x'], output: ['y'], name: 'sum', attribute: [{ name: 'keepdims', type: 2, i: 0 }] }],
      initializer: axes ? [{ name: 'axes', dims: [axes.length], dataType: ELEM.INT64, int64Data: axes }] : [],
      input: [vi('x', inShape)],
      output: [vi('y', outShape)],
    },
  } as ModelProto;
  return encodeModel(proto);
}

const x: Float32Tensor = { data: new Float32Array([1, 2, 3, 4]), shape: [2, 2], dtype: 'float32' };

test('a model whose input declares no shape is a BULWARK_E_MODEL saying so, not "expects []"', async () => {
  const m = await loadModel(reduceModel(null, [1], ['N']));
  await assert.rejects(m.predict(x), fails('BULWARK_E_MODEL', /input "x" declares no shape/));
  await m.dispose();
});

test('a scalar output is refused by predict as BULWARK_E_SHAPE, not an encoding error later', async () => {
  const m = await loadModel(reduceModel(['N', 2], null, []));
  await assert.rejects(m.predict(x), fails('BULWARK_E_SHAPE', /output "y" has shape \[\] for 2 inputs; .*one output row per example/));
  await m.dispose();
});

test('a rank-1 output is refused by the gradient with BULWARK_E_MODEL asking for [N, K] class scores', async () => {
  const m = await loadModel(reduceModel(['N', 2], [1], ['N']));
  assert.deepEqual(Array.from((await m.predict(x)).data), [3, 7], 'predict still works');
  await assert.rejects(m.lossAndGradient(x, [0, 0]), fails('BULWARK_E_MODEL', /output "y" has shape \[N\] \(rank 1\); losses and gradients need class scores \[N, K\]/));
  await assert.rejects(m.parameterGradients(x, [0, 0]), fails('BULWARK_E_MODEL', /class scores/));
  await m.dispose();
});
