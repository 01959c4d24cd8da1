import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { loadModel } from '../../src/runtime/model.js';
import { readNpy } from '../../src/data/npy.js';
import type { Float32Tensor } from '../../src/core/tensor.js';
import { BulwarkError } from '../../src/core/errors.js';
import { repoRoot, maxAbsDiff, relL2 } from '../helpers.js';

const dir = (n: string) => path.join(repoRoot, 'fixtures', 'torch', n);
const xOf = (n: string) => readNpy(path.join(dir(n), 'x.npy')) as Float32Tensor;
const yOf = (n: string) => Array.from(readNpy(path.join(dir(n), 'y.npy')).data as BigInt64Array, Number);

test('results are identical across runs, sessions and batch splits', async () => {
  const x = xOf('resnet_gap');
  const y = yOf('resnet_gap');
  const a = await loadModel(path.join(dir('resnet_gap'), 'model.onnx'), { threads: 2 });
  const b = await loadModel(path.join(dir('resnet_gap'), 'model.onnx'), { threads: 1, batchSize: 4 });
  const r1 = await a.lossAndGradient(x, y);
  const r2 = await a.lossAndGradient(x, y);
  const r3 = await b.lossAndGradient(x, y);
  assert.equal(maxAbsDiff(r1.grad.data as Float32Array, r2.grad.data as Float32Array), 0);
  assert.ok(maxAbsDiff(r1.grad.data as Float32Array, r3.grad.data as Float32Array) < 1e-6);
  assert.equal(maxAbsDiff(r1.loss, r2.loss), 0);
  assert.ok(maxAbsDiff(r1.loss, r3.loss) < 1e-6);
  assert.equal(b.queries, 6);
});

test('each row of the input gradient is the gradient of that example alone', async () => {
  const x = xOf('cnn_norm');
  const y = yOf('cnn_norm');
  const m = await loadModel(path.join(dir('cnn_norm'), 'model.onnx'), { threads: 1 });
  const all = await m.lossAndGradient(x, y, { kind: 'margin' });
  const row = 784;
  for (const i of [0, 3, 5]) {
    const one = await m.lossAndGradient({ data: x.data.slice(i * row, (i + 1) * row), shape: [1, 1, 28, 28], dtype: 'float32' }, [y[i]!], { kind: 'margin' });
    assert.ok(relL2((all.grad.data as Float32Array).subarray(i * row, (i + 1) * row), one.grad.data as Float32Array) < 1e-6, `row ${i}`);
  }
});

test('a trailing Softmax is detected, and --output-kind logits takes the output as it is', async () => {
  const file = path.join(dir('mlp_softmax'), 'model.onnx');
  const auto = await loadModel(file);
  assert.equal(auto.outputKind, 'probs');
  assert.notEqual(auto.logitsName, auto.outputName);
  const x = xOf('mlp_softmax');
  const y = yOf('mlp_softmax');
  const probs = (await auto.predict(x)).data as Float32Array;
  for (let i = 0; i < 6; i++) assert.ok(Math.abs(probs.subarray(i * 10, i * 10 + 10).reduce((s, v) => s + v, 0) - 1) < 1e-5);
  const viaAuto = await auto.lossAndGradient(x, y);
  // CE of the logits equals −log p_y of the probabilities.
  for (let i = 0; i < 6; i++) assert.ok(Math.abs(viaAuto.loss[i]! + Math.log(probs[i * 10 + y[i]!]!)) < 1e-4);
  const forcedLogits = await loadModel(file, { outputKind: 'logits' });
  const viaLogits = await forcedLogits.lossAndGradient(x, y);
  assert.ok(relL2(viaLogits.loss, viaAuto.loss) > 0.01, 'treating probabilities as logits must change the loss');
  const forcedProbs = await loadModel(path.join(dir('mlp_logsoftmax'), 'model.onnx'), { outputKind: 'probs' });
  assert.equal(forcedProbs.outputKind, 'probs');
});

test('targeted margin and DLR heads need their inputs and report clear errors', async () => {
  const m = await loadModel(path.join(dir('conv1d'), 'model.onnx'));
  const x = xOf('conv1d');
  await assert.rejects(m.lossAndGradient(x, [0, 1, 2, 3, 0]), (e: BulwarkError) => e.code === 'BULWARK_E_LABELS');
  await assert.rejects(m.lossAndGradient(x, [0, 1, 2, 3, 0, 1], { kind: 'dlr', targeted: true }), (e: BulwarkError) => e.code === 'BULWARK_E_ARG');
  const t = await m.lossAndGradient(x, [0, 1, 2, 3, 0, 1], { kind: 'dlr', targeted: true }, [1, 2, 3, 0, 1, 2]);
  assert.equal(t.loss.length, 6);
  assert.ok(t.loss.every((v) => Number.isFinite(v)));
});

test('keepPooledConvsNchw: the pooled first conv gets its kernel through a run-time 1; values unchanged', async () => {
  const { readModel, ELEM } = await import('../../src/onnx/ir.js');
  const { keepPooledConvsNchw } = await import('../../src/runtime/model.js');
  const { createSession, runSession, toOrt } = await import('../../src/runtime/session.js');
  const fs = await import('node:fs');
  const g = readModel(fs.readFileSync(path.join(repoRoot, 'fixtures', 'models', 'mnist-cnn-small.onnx')));
  const conv = g.nodes.find((n) => n.opType === 'Conv')!;
  const pool = g.nodes.find((n) => n.opType === 'MaxPool')!;
  // input -> Identity -> Conv -> MaxPool (with Indices, as in a gradient graph)
  const nodes = (names: string[]) => [
    { ...conv, opType: 'Identity', name: names[0]!, inputs: ['input'], outputs: ['x0'], attrs: new Map() },
    { ...conv, name: names[1]!, inputs: ['x0', conv.inputs[1]!, conv.inputs[2]!], outputs: ['c1'] },
    { ...pool, name: names[2]!, inputs: ['c1'], outputs: ['p', 'idx'] },
  ];
  const small = { ...g, nodes: nodes(['a', 'b', 'c']), outputs: [{ ...g.outputs[0]!, name: 'p', shape: null }] };
  for (const graph of [small, { ...small, nodes: nodes(['n', 'n', 'n']) }]) {
    const out = keepPooledConvsNchw(graph, 'input', ELEM.FLOAT);
    assert.deepEqual(out.nodes.find((n) => n.opType === 'Identity')!.inputs, ['input'], 'other nodes are left alone (whatever their names)');
    const outConv = out.nodes.find((n) => n.opType === 'Conv')!;
    assert.equal(out.nodes.find((n) => n.outputs.includes(outConv.inputs[1]!))!.opType, 'Mul', 'the kernel goes through the Mul by 1');
  }
  const x = new Float32Array(2 * 784).map((_, i) => (i % 97) / 97);
  const run = async (graph: Parameters<typeof createSession>[0]) => {
    const s = await createSession(graph, { threads: 1 });
    try {
      return (await runSession(s, { input: toOrt(ELEM.FLOAT, x, [2, 1, 28, 28]) }, ['p']))['p']!.data as Float32Array;
    } finally {
      await s.release();
    }
  };
  const plain = await run(small);
  assert.ok(plain.some((v) => v !== 0));
  assert.equal(maxAbsDiff(plain, await run(keepPooledConvsNchw(small, 'input', ELEM.FLOAT))), 0);
});

test('worker lanes: the same results as the calling thread, queries counted once, clear errors', async () => {
  const { loadData } = await import('../../src/data/spec.js');
  const ds = await loadData('mnist:test[0:300]');
  const onnx = path.join(repoRoot, 'fixtures', 'models', 'mnist-cnn-small.onnx');
  const main = await loadModel(onnx, { threads: 1, batchSize: 128 });
  const lanes = await loadModel(onnx, { threads: 1, batchSize: 128, workers: 2 });
  const a = await main.lossAndGradient(ds.x, ds.y!);
  const b = await lanes.lossAndGradient(ds.x, ds.y!);
  assert.ok(a.grad.data.some((v) => v !== 0));
  assert.ok(maxAbsDiff(a.grad.data, b.grad.data) < 1e-6, `gradients differ by ${maxAbsDiff(a.grad.data, b.grad.data)}`);
  assert.ok(maxAbsDiff(a.loss, b.loss) < 1e-6);
  assert.deepEqual(b.grad.shape, [300, 1, 28, 28]);
  assert.ok(maxAbsDiff((await main.predict(ds.x)).data, (await lanes.predict(ds.x)).data) < 1e-6);
  const pa = await main.parameterGradients(ds.x, ds.y!);
  const pb = await lanes.parameterGradients(ds.x, ds.y!);
  for (const [k, g] of pa.grads) assert.ok(relL2(pb.grads.get(k)!, g) < 1e-6, k);
  assert.equal(lanes.queries, main.queries);
  await main.dispose();
  await lanes.dispose();
  for (const workers of [0, 1.5, 1000]) {
    await assert.rejects(loadModel(onnx, { workers }), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_ARG' && /workers/.test(e.message));
  }
  // A graph that fails at run time inside a worker: the error comes back coded, and the lane stays usable.
  const { LaneSessions } = await import('../../src/runtime/workers.js');
  const { emptyGraph, writeModelBytes, ELEM } = await import('../../src/onnx/ir.js');
  const { GraphBuilder } = await import('../../src/onnx/builder.js');
  const { toOrt } = await import('../../src/runtime/session.js');
  const g = emptyGraph({ name: 'reshape', inputs: [{ name: 'x', elemType: ELEM.FLOAT, shape: [null, 4] }] });
  const gb = new GraphBuilder(g);
  const out = gb.reshape('x', gb.int64([5, -1]));
  g.outputs.push({ name: out, elemType: ELEM.FLOAT, shape: null });
  const s = await LaneSessions.create(writeModelBytes(g), 2, 1);
  await assert.rejects(s.run({ x: toOrt(ELEM.FLOAT, new Float32Array(12), [3, 4]) }, [out], 1), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_RUNTIME');
  const ok = await s.run({ x: toOrt(ELEM.FLOAT, Float32Array.from({ length: 20 }, (_, i) => i), [5, 4]) }, [out], 1);
  assert.deepEqual([...ok[out]!.dims], [5, 4]);
  assert.equal((ok[out]!.data as Float32Array)[19], 19);
  await s.release();
});

test('commands run a model in one worker lane per core (up to 4) unless --threads or --workers says otherwise', async () => {
  const { defaultLanes } = await import('../../src/runtime/workers.js');
  const { executionFlags } = await import('../../src/cli/common.js');
  assert.deepEqual(defaultLanes(1), { workers: 1, threads: undefined });
  assert.deepEqual(defaultLanes(2), { workers: 2, threads: 1 });
  assert.deepEqual(defaultLanes(3), { workers: 3, threads: 1 });
  assert.deepEqual(defaultLanes(8), { workers: 4, threads: 2 });
  assert.deepEqual(defaultLanes(66), { workers: 4, threads: 16 });
  assert.deepEqual(executionFlags({}), defaultLanes());
  assert.deepEqual(executionFlags({ threads: '2' }), { threads: 2, workers: 1 });
  assert.deepEqual(executionFlags({ threads: '0' }), { threads: 0, workers: 1 });
  assert.deepEqual(executionFlags({ workers: '2' }), { threads: undefined, workers: 2 });
  assert.deepEqual(executionFlags({ workers: '2', threads: '1' }), { threads: 1, workers: 2 });
  assert.throws(() => executionFlags({ workers: '0' }), (e: unknown) => e instanceof BulwarkError && /--workers/.test(e.message));
});

test('a model exported with a fixed batch size runs in chunks of that size (padded last chunk), equal to a dynamic-batch twin', async () => {
  const { emptyGraph, writeModelBytes, ELEM } = await import('../../src/onnx/ir.js');
  const { GraphBuilder } = await import('../../src/onnx/builder.js');
  const twin = (batch: number | string) => {
    const g = emptyGraph({ name: 'fixed', inputs: [{ name: 'x', elemType: ELEM.FLOAT, shape: [batch, 1, 2, 3] }] });
    const b = new GraphBuilder(g);
    const w = b.floats('w', Array.from({ length: 24 }, (_, i) => Math.sin(i * 1.3)), [6, 4]);
    const bias = b.floats('b', [0.1, -0.2, 0.3, 0], [4]);
    const out = b.node('Gemm', [b.node('Flatten', ['x']), w, bias], {}, 'fc', 'logits');
    g.outputs.push({ name: out, elemType: ELEM.FLOAT, shape: [batch, 4] });
    return writeModelBytes(g);
  };
  const n = 7;
  const x: Float32Tensor = { data: Float32Array.from({ length: n * 6 }, (_, i) => Math.cos(i * 0.7)), shape: [n, 1, 2, 3], dtype: 'float32' };
  const y = [0, 1, 2, 3, 0, 1, 2];
  const dynamic = await loadModel(twin('N'), { threads: 1 });
  const want = await dynamic.lossAndGradient(x, y);
  const wantOut = await dynamic.predict(x);
  for (const workers of [1, 2]) {
    const fixed = await loadModel(twin(3), { threads: 1, workers });
    const got = await fixed.lossAndGradient(x, y);
    assert.deepEqual(got.grad.shape, [n, 1, 2, 3]);
    assert.ok(maxAbsDiff(got.grad.data, want.grad.data) < 1e-6, `gradients, ${workers} worker(s)`);
    assert.ok(maxAbsDiff(got.loss, want.loss) < 1e-6);
    const out = await fixed.predict(x);
    assert.deepEqual(out.shape, [n, 4]);
    assert.ok(maxAbsDiff(out.data, wantOut.data) < 1e-6);
    await fixed.dispose();
  }
  // Parameter gradients: chunk sums over a multiple of the batch size; anything else is refused with a hint.
  const fixed = await loadModel(twin(3), { threads: 1 });
  const six: Float32Tensor = { data: x.data.slice(0, 36), shape: [6, 1, 2, 3], dtype: 'float32' };
  const pg = await fixed.parameterGradients(six, y.slice(0, 6));
  const pgWant = await dynamic.parameterGradients(six, y.slice(0, 6));
  for (const [k, v] of pgWant.grads) assert.ok(maxAbsDiff(pg.grads.get(k)!, v) < 1e-5, k);
  await assert.rejects(fixed.parameterGradients(x, y), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_SHAPE' && /fixed batch size of 3/.test(e.message) && /dynamic batch axis/.test(e.hint ?? ''));
  await fixed.dispose();
  await dynamic.dispose();
});

test('a model with free image dims gets a gradient graph per input size, equal to a static-size twin at each size', async () => {
  const { emptyGraph, writeModelBytes, ELEM } = await import('../../src/onnx/ir.js');
  const { GraphBuilder } = await import('../../src/onnx/builder.js');
  const model = (h: number | string, w: number | string) => {
    const g = emptyGraph({ name: 'fcn', inputs: [{ name: 'x', elemType: ELEM.FLOAT, shape: ['N', 1, h, w] }] });
    const b = new GraphBuilder(g);
    const k = b.floats('k', Array.from({ length: 36 }, (_, i) => Math.sin(i * 0.9)), [4, 1, 3, 3]);
    const conv = b.node('Relu', [b.node('Conv', ['x', k], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] })]);
    const pooled = b.node('Flatten', [b.node('GlobalAveragePool', [b.node('MaxPool', [conv], { kernel_shape: [2, 2], strides: [2, 2] })])]);
    const w2 = b.floats('w2', Array.from({ length: 12 }, (_, i) => Math.cos(i * 1.1)), [4, 3]);
    const out = b.node('MatMul', [pooled, w2], {}, 'fc', 'logits');
    g.outputs.push({ name: out, elemType: ELEM.FLOAT, shape: ['N', 3] });
    return writeModelBytes(g);
  };
  const free = await loadModel(model('H', 'W'), { threads: 1 });
  for (const [h, w] of [[6, 5], [9, 8]] as const) {
    const x: Float32Tensor = { data: Float32Array.from({ length: 2 * h * w }, (_, i) => Math.abs(Math.sin(i * 0.37))), shape: [2, 1, h, w], dtype: 'float32' };
    const got = await free.lossAndGradient(x, [0, 2]);
    const twin = await loadModel(model(h, w), { threads: 1 });
    const want = await twin.lossAndGradient(x, [0, 2]);
    assert.ok(relL2(got.grad.data, want.grad.data) < 1e-6, `${h}x${w}`);
    assert.ok(maxAbsDiff(got.loss, want.loss) < 1e-6);
    await twin.dispose();
  }
  assert.deepEqual(await free.zeroGradientNodes(), []);
  await free.dispose();
});

test('worker lanes start in a process run with --input-type=module --eval (they take no Node flags from it)', async () => {
  const { spawnSync } = await import('node:child_process');
  const mod = path.join(repoRoot, 'dist', 'src', 'runtime', 'model.js');
  const onnx = path.join(repoRoot, 'fixtures', 'models', 'mnist-cnn-small.onnx');
  const code = `const { loadModel } = await import(${JSON.stringify(mod)});
const m = await loadModel(${JSON.stringify(onnx)}, { workers: 2, threads: 1 });
const p = await m.predict({ data: new Float32Array(4 * 784).fill(0.5), shape: [4, 1, 28, 28], dtype: 'float32' });
process.stdout.write(JSON.stringify(p.shape));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, '[4,10]');
});

test('gradient runs are sized to about 32 MB of tensors, a power of two from 8 to 256 examples', async () => {
  const { gradientChunk } = await import('../../src/runtime/model.js');
  const { ELEM } = await import('../../src/onnx/ir.js');
  // one batch-sized float value of `kb` KiB per example, plus values that do not follow the batch (ignored)
  const shapes = (kb: number) => new Map([
    ['a', { dims: [-1, kb * 256], elemType: ELEM.FLOAT }],
    ['w', { dims: [1000, 1000], elemType: ELEM.FLOAT }],
  ]);
  assert.equal(gradientChunk(shapes(100)), 64); // 3 x 100 KiB per example: 32 MiB / 300 KiB = 109 -> 64
  assert.equal(gradientChunk(shapes(200)), 32);
  assert.equal(gradientChunk(shapes(1)), 256);
  assert.equal(gradientChunk(shapes(100000)), 8);
  // each intra-op thread takes a share of every op: the run grows with the threads (a power of two), up to 256
  assert.equal(gradientChunk(shapes(200), 2), 64);
  assert.equal(gradientChunk(shapes(200), 3), 64);
  assert.equal(gradientChunk(shapes(200), 4), 128);
  assert.equal(gradientChunk(shapes(1), 4), 256);
  assert.equal(gradientChunk(shapes(100000), 2), 16);
  // cnn-small's input-gradient graph runs in 32s on 1 thread, 64s on 2; an explicit batchSize is kept
  const onnx = path.join(repoRoot, 'fixtures', 'models', 'mnist-cnn-small.onnx');
  const x: Float32Tensor = { data: new Float32Array(40 * 784).fill(0.25), shape: [40, 1, 28, 28], dtype: 'float32' };
  const auto = await loadModel(onnx, { threads: 1 });
  const fixed = await loadModel(onnx, { threads: 1, batchSize: 40 });
  const a = await auto.lossAndGradient(x, new Array(40).fill(3));
  const b = await fixed.lossAndGradient(x, new Array(40).fill(3));
  assert.ok(maxAbsDiff(a.grad.data, b.grad.data) < 1e-6);
  assert.equal((await (auto as unknown as { gradSession(h: object, w: string[]): Promise<{ chunk: number }> }).gradSession({ kind: 'ce' }, [auto.inputName])).chunk, 32);
  assert.equal((await (fixed as unknown as { gradSession(h: object, w: string[]): Promise<{ chunk: number }> }).gradSession({ kind: 'ce' }, [fixed.inputName])).chunk, 40);
  const two = await loadModel(onnx, { threads: 2 });
  assert.equal((await (two as unknown as { gradSession(h: object, w: string[]): Promise<{ chunk: number }> }).gradSession({ kind: 'ce' }, [two.inputName])).chunk, 64);
  await two.dispose();
  await auto.dispose();
  await fixed.dispose();
});
