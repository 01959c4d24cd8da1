import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { decodeModel, encodeModel, type ModelProto } from '../../src/onnx/proto.js';
import { ELEM, readModel, topoSort, writeModelBytes, graphToProto } from '../../src/onnx/ir.js';
import { loadModel } from '../../src/runtime/model.js';
import { BulwarkError } from '../../src/core/errors.js';
import { repoRoot, maxAbsDiff } from '../helpers.js';

const cnn = path.join(repoRoot, 'fixtures', 'torch', 'cnn_norm', 'model.onnx');

/** A one-node model y = x·W (MatMul) with W given by `init`, as a raw ModelProto. */
function matmulProto(init: Record<string, unknown>, opset = 13): ModelProto {
  return {
    irVersion: 7,
    opsetImport: [{ domain: '', version: opset }],
    graph: {
      name: 'mm',
      node: [{ opType: 'MatMul', input: ['x', 'W'], output: ['y'], name: 'mm' }],
      initializer: [{ name: 'W', dims: [2, 2], dataType: ELEM.FLOAT, ...init }],
      input: [{ name: 'x', type: { tensorType: { elemType: ELEM.FLOAT, shape: { dim: [{ dimParam: 'N' }, { dimValue: 2 }] } } } }],
      output: [{ name: 'y', type: { tensorType: { elemType: ELEM.FLOAT, shape: { dim: [{ dimParam: 'N' }, { dimValue: 2 }] } } } }],
    },
  };
}

test('read then write then read gives the same graph, and the rewritten model computes the same outputs', async () => {
  const g = readModel(cnn);
  const bytes = writeModelBytes(g);
  const g2 = readModel(bytes);
  assert.equal(g2.opset, g.opset);
  assert.deepEqual(g2.nodes.map((n) => [n.opType, n.inputs, n.outputs]), g.nodes.map((n) => [n.opType, n.inputs, n.outputs]));
  assert.deepEqual([...g2.initializers.keys()], [...g.initializers.keys()]);
  for (const [k, t] of g.initializers) assert.deepEqual(Array.from(g2.initializers.get(k)!.data as Float32Array), Array.from(t.data as Float32Array));
  assert.deepEqual(g2.inputs, g.inputs);
  const x = { data: new Float32Array(2 * 784).map((_, i) => (i % 13) / 13), shape: [2, 1, 28, 28], dtype: 'float32' as const };
  const a = await (await loadModel(cnn)).predict(x);
  const b = await (await loadModel(bytes)).predict(x);
  assert.equal(maxAbsDiff(a.data as Float32Array, b.data as Float32Array), 0);
});

test('initializers in typed fields (float_data) and in raw_data decode to the same values', () => {
  const typed = readModel(encodeModel(matmulProto({ floatData: [1, 2, 3, 4] })));
  const raw = readModel(encodeModel(matmulProto({ rawData: new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer) })));
  assert.deepEqual(Array.from(typed.initializers.get('W')!.data as Float32Array), [1, 2, 3, 4]);
  assert.deepEqual(Array.from(raw.initializers.get('W')!.data as Float32Array), [1, 2, 3, 4]);
  const i64 = readModel(encodeModel(matmulProto({ dataType: ELEM.INT64, int64Data: [5, -6, 7, 8] })));
  assert.deepEqual(Array.from(i64.initializers.get('W')!.data as BigInt64Array, Number), [5, -6, 7, 8]);
});

test('a tensor whose bytes disagree with its dims is refused', () => {
  assert.throws(() => readModel(encodeModel(matmulProto({ rawData: new Uint8Array(12) }))), (e: BulwarkError) => e.code === 'BULWARK_E_ONNX_INVALID');
});

test('symbolic batch dims survive the round trip', () => {
  const g = readModel(encodeModel(matmulProto({ floatData: [1, 0, 0, 1] })));
  assert.deepEqual(g.inputs[0]!.shape, ['N', 2]);
  const back = graphToProto(g);
  assert.deepEqual(decodeModel(encodeModel(back)).graph!.input![0]!.type!.tensorType!.shape!.dim!.map((d) => d.dimParam), ['N', '']);
});

test('opsets outside 11..21 are refused with BULWARK_E_OPSET', async () => {
  await assert.rejects(loadModel(encodeModel(matmulProto({ floatData: [1, 0, 0, 1] }, 9))), (e: BulwarkError) => e.code === 'BULWARK_E_OPSET');
});

test('topological sort orders nodes listed out of order, and refuses cycles', () => {
  const g = readModel(cnn);
  const order = topoSort({ ...g, nodes: [...g.nodes].reverse() });
  assert.equal(order.length, g.nodes.length);
  const seen = new Set([...g.inputs.map((v) => v.name), ...g.initializers.keys(), '']);
  for (const n of order) {
    for (const i of n.inputs) assert.ok(seen.has(i), `${n.name} runs before the producer of ${i}`);
    n.outputs.forEach((o) => seen.add(o));
  }
  const loop = { ...g.nodes[0]!, name: 'loop', inputs: ['loop_out'], outputs: ['loop_out'] };
  assert.throws(() => topoSort({ ...g, nodes: [...g.nodes, loop] }), (e: BulwarkError) => e.code === 'BULWARK_E_ONNX_INVALID');
});

test('external data loads from inside the model folder and is refused outside it', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-ext-'));
  const inner = path.join(dir, 'model');
  fs.mkdirSync(inner);
  fs.writeFileSync(path.join(inner, 'weights.bin'), Buffer.from(new Float32Array([2, 0, 0, 3]).buffer));
  fs.writeFileSync(path.join(dir, 'outside.bin'), Buffer.from(new Float32Array([9, 9, 9, 9]).buffer));
  fs.symlinkSync(path.join(dir, 'outside.bin'), path.join(inner, 'link.bin'));
  const ext = (location: string) => matmulProto({ dataLocation: 1, externalData: [{ key: 'location', value: location }, { key: 'offset', value: '0' }, { key: 'length', value: '16' }] });
  const ok = path.join(inner, 'ok.onnx');
  fs.writeFileSync(ok, encodeModel(ext('weights.bin')));
  const m = await loadModel(ok);
  const y = await m.predict({ data: new Float32Array([1, 1]), shape: [1, 2], dtype: 'float32' });
  assert.deepEqual(Array.from(y.data as Float32Array), [2, 3]);
  for (const bad of ['../outside.bin', path.join(dir, 'outside.bin'), 'link.bin']) {
    const file = path.join(inner, 'bad.onnx');
    fs.writeFileSync(file, encodeModel(ext(bad)));
    await assert.rejects(loadModel(file), (e: BulwarkError) => e.code === 'BULWARK_E_PATH_ESCAPE', bad);
  }
  // Given as bytes, a model with external data has no folder to read from.
  await assert.rejects(loadModel(encodeModel(ext('weights.bin'))), (e: BulwarkError) => e.code === 'BULWARK_E_PATH_ESCAPE');
});

test('generated node names never collide with explicit ones, and the graph still runs on onnxruntime', async () => {
  // node 0 is unnamed; MatMul_0 and MatMul_0_1 are already taken by explicit names later in the graph
  const proto: ModelProto = {
    irVersion: 7,
    opsetImport: [{ domain: '', version: 13 }],
    graph: {
      name: 'names',
      node: [
        { opType: 'MatMul', input: ['x', 'W'], output: ['h'] },
        { opType: 'Relu', input: ['h'], output: ['r'], name: 'MatMul_0' },
        { opType: 'Neg', input: ['r'], output: ['n'], name: 'MatMul_0_1' },
        { opType: 'Neg', input: ['n'], output: ['y'] },
      ],
      initializer: [{ name: 'W', dims: [2, 2], dataType: ELEM.FLOAT, floatData: [1, -2, 3, 4] }],
      input: [{ name: 'x', type: { tensorType: { elemType: ELEM.FLOAT, shape: { dim: [{ dimParam: 'N' }, { dimValue: 2 }] } } } }],
      output: [{ name: 'y', type: { tensorType: { elemType: ELEM.FLOAT, shape: { dim: [{ dimParam: 'N' }, { dimValue: 2 }] } } } }],
    },
  };
  const bytes = encodeModel(proto);
  const g = readModel(bytes);
  const names = g.nodes.map((n) => n.name);
  assert.deepEqual(names, ['MatMul_0_2', 'MatMul_0', 'MatMul_0_1', 'Neg_3']);
  assert.deepEqual(readModel(bytes).nodes.map((n) => n.name), names, 'deterministic');
  const rewritten = writeModelBytes(g);
  assert.deepEqual(readModel(rewritten).nodes.map((n) => n.name), names, 'round trip');
  const model = await loadModel(rewritten);
  try {
    const out = await model.predict({ data: new Float32Array([1, 1, -1, 0]), shape: [2, 2], dtype: 'float32' });
    // y = relu(x·W): [1,1]·W = [4, 2]; [-1,0]·W = [-1, 2] -> [0, 2]
    assert.deepEqual(Array.from(out.data), [4, 2, 0, 2]);
  } finally {
    await model.dispose();
  }
});
