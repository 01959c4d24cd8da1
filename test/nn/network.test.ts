import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BulwarkError } from '../../src/core/errors.js';
import { Rng } from '../../src/core/rng.js';
import { readNpz } from '../../src/data/index.js';
import { loadData } from '../../src/data/index.js';
import { readModel } from '../../src/onnx/ir.js';
import { loadModel } from '../../src/runtime/model.js';
import { BatchNorm } from '../../src/nn/layers.js';
import { EvalSession, TrainingSession, resolveTrainOptions, train } from '../../src/nn/train.js';
import { buildArch } from '../../src/nn/zoo.js';
import { maxAbsDiff } from '../helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-nn-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const isArch = (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_ARCH';
const isArg = (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_ARG';

test('cnn-small has exactly the parameter names and PyTorch shapes bench/torch_bench.py loads', () => {
  const net = buildArch('cnn-small');
  assert.deepEqual(
    net.params().map((p) => `${p.name}:${p.shape.join('x')}`),
    ['conv1.weight:32x1x3x3', 'conv1.bias:32', 'conv2.weight:64x32x3x3', 'conv2.bias:64', 'fc1.weight:128x3136', 'fc1.bias:128', 'fc2.weight:10x128', 'fc2.bias:10'],
  );
  // PyTorch's default init: U(±1/√fan_in) for weights and biases.
  const bound = (name: string) => net.params().find((p) => p.name === name)!.data.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  assert.ok(bound('conv1.weight') <= 1 / 3 && bound('conv1.weight') > 0.3);
  assert.ok(bound('fc1.weight') <= 1 / Math.sqrt(3136) && bound('fc1.weight') > 0.9 / Math.sqrt(3136));
  const file = path.join(tmp, 'w.npz');
  net.saveNpz(file);
  const back = readNpz(file);
  assert.deepEqual(Object.keys(back), net.params().map((p) => p.name));
  assert.deepEqual(back['fc1.weight']!.shape, [128, 3136]);
  const other = buildArch('cnn-small', { seed: 9 });
  other.loadStateDict(back);
  assert.deepEqual(Array.from(other.params()[4]!.data.subarray(0, 50)), Array.from(net.params()[4]!.data.subarray(0, 50)));
});

test('export -> loadModel -> predict equals the inference-mode graph after training (BatchNorm running stats, dropout)', async () => {
  const data = await loadData('mnist:train[0:256]');
  const net = buildArch('conv:8x3p1,bn,relu,maxpool:2,dropout:0.25,flatten,dense:16,bn,relu,dense:10', { seed: 2 });
  await train(net, data, { epochs: 1, batchSize: 64, progress: false });
  const rm = net.buffers().find((b) => b.name === 'bn1.running_mean')!;
  assert.ok(rm.data.some((v) => v !== 0), 'running statistics were updated');
  const file = path.join(tmp, 'bn.onnx');
  net.saveOnnx(file);
  const g = readModel(file);
  assert.equal(g.opset, 17);
  assert.deepEqual(g.inputs.map((i) => i.name), ['input']);
  assert.deepEqual(g.outputs.map((o) => o.name), ['output']);
  assert.ok(g.nodes.some((n) => n.opType === 'BatchNormalization'));
  assert.ok(!g.nodes.some((n) => n.opType === 'Dropout' || n.opType === 'ReduceMean'));
  const test10 = await loadData('mnist:test[0:40]');
  const model = await loadModel(file);
  const exported = await model.predict(test10.x);
  await model.dispose();
  const ev = await EvalSession.create(net);
  const internal = await ev.logits(test10.x);
  await ev.release();
  assert.deepEqual(exported.shape, [40, 10]);
  assert.ok(maxAbsDiff(exported.data, internal) < 1e-4, `max diff ${maxAbsDiff(exported.data, internal)}`);
});

test('exported models pass the ONNX checker (every built-in architecture)', { skip: !fs.existsSync('/usr/bin/python3') }, () => {
  const files = ['mlp', 'cnn-small', 'cnn-bn', 'resnet-mini', 'conv:4x3,bn,gelu,dropout:0.5,avgpool:2,flatten,dense:10'].map((a, i) => {
    const f = path.join(tmp, `arch${i}.onnx`);
    buildArch(a).saveOnnx(f);
    return f;
  });
  const r = spawnSync('/usr/bin/python3', ['-c', 'import onnx,sys\nfor f in sys.argv[1:]: onnx.checker.check_model(onnx.load(f), full_check=True)\nprint("ok")', ...files], { encoding: 'utf8' });
  if (r.stderr.includes("No module named 'onnx'")) return;
  assert.equal(r.status, 0, r.stderr);
});

test('BatchNorm running statistics follow PyTorch: momentum 0.1, unbiased batch variance', async () => {
  const net = buildArch('bn,dense:2', { inputShape: [3] });
  const x = Float32Array.from([1, 2, 3, 3, 0, 5, 5, 4, 1, 7, 2, 7]);
  const session = await TrainingSession.create(net);
  await session.step({ data: x, shape: [4, 3], dtype: 'float32' }, [0, 1, 0, 1], new Rng(0));
  await session.release();
  const bn = net.layers().find((l): l is BatchNorm => l instanceof BatchNorm)!;
  // Column 0 = [1,3,5,7]: mean 4, unbiased var 20/3; column 1 = [2,0,4,2]: mean 2, var 8/3; column 2 = [3,5,1,7]: mean 4, var 20/3.
  const want = { mean: [0.4, 0.2, 0.4], var: [0.9 + 2 / 3, 0.9 + 0.8 / 3, 0.9 + 2 / 3] };
  want.mean.forEach((m, c) => assert.ok(Math.abs(bn.runningMean.data[c]! - m) < 1e-6));
  want.var.forEach((v, c) => assert.ok(Math.abs(bn.runningVar.data[c]! - v) < 1e-6));
});

test('architecture errors: unknown names and bad specs are BULWARK_E_ARCH', () => {
  assert.throws(() => buildArch('resnet-152'), isArch);
  assert.throws(() => buildArch('conv:32,relu'), isArch);
  assert.throws(() => buildArch('conv:32x3,relu,,dense:10'), isArch);
  assert.throws(() => buildArch('conv:8x3,warp,flatten,dense:10'), isArch);
  assert.throws(() => buildArch('conv:8x3,dense:10'), isArch, 'dense on an unflattened input');
  assert.throws(() => buildArch('conv:8x3,relu'), isArch, 'no logits at the end');
  assert.throws(() => buildArch('flatten,relu'), (e: Error) => isArch(e) && /the last layer must be dense:<K>.*got "relu"/.test(e.message), 'a parameter-free net with one class per pixel');
  assert.throws(() => buildArch('flatten,dense:10,relu'), /the last layer must be dense:<K>/);
  assert.throws(() => buildArch('flatten,dense:1'), /K >= 2/);
  assert.equal(buildArch('flatten,dense:16,relu,dense:3').numClasses, 3);
  assert.throws(() => buildArch('conv:8x30,flatten,dense:10'), isArch, 'kernel larger than the image');
  assert.throws(() => buildArch('dropout:1.5,flatten,dense:10'), isArch);
  assert.throws(() => buildArch('conv:6x3g4,flatten,dense:10'), isArch, 'groups must divide channels');
  assert.ok(buildArch('conv:8x3p1,relu,maxpool:2,flatten,dense:10').numClasses === 10);
});

test('training option errors: epochs <= 0, batch size 0, bad lr and smoothing are BULWARK_E_ARG', async () => {
  assert.throws(() => resolveTrainOptions({ epochs: 0 }), isArg);
  assert.throws(() => resolveTrainOptions({ epochs: -1 }), isArg);
  assert.throws(() => resolveTrainOptions({ epochs: 1.5 }), isArg);
  assert.throws(() => resolveTrainOptions({ epochs: 1, batchSize: 0 }), isArg);
  assert.throws(() => resolveTrainOptions({ epochs: 1, lr: -1 }), isArg);
  assert.throws(() => resolveTrainOptions({ epochs: 1, labelSmoothing: 1 }), isArg);
  const net = buildArch('mlp');
  const data = await loadData('mnist:test[0:10]');
  await assert.rejects(train(net, data, { epochs: 0 }), isArg);
  await assert.rejects(train(net, { ...data, y: undefined }, { epochs: 1, progress: false }), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_LABELS');
  await assert.rejects(train(buildArch('mlp', { inputShape: [1, 14, 14] }), data, { epochs: 1, progress: false }), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_SHAPE');
});
