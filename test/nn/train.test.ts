import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BulwarkError } from '../../src/core/errors.js';
import { loadData } from '../../src/data/index.js';
import { evaluate, train } from '../../src/nn/train.js';
import { buildArch } from '../../src/nn/zoo.js';
import { run as trainCli } from '../../src/cli/train.js';
import { repoRoot } from '../helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-train-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Runs `bulwark <args>` in a child process (the test runner owns this process's stdout). */
function cli(args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [path.join(repoRoot, 'bin', 'bulwark.js'), ...args], { encoding: 'utf8' });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

test('the same seed gives the same weights bit for bit; another seed does not', async () => {
  const data = await loadData('mnist:train[0:300]');
  const arch = 'conv:6x3p1,bn,relu,maxpool:2,dropout:0.3,flatten,dense:10';
  const run = async (seed: number) => {
    const net = buildArch(arch, { seed });
    const r = await train(net, data, { epochs: 2, batchSize: 32, optimizer: 'sgd', lr: 0.05, schedule: { kind: 'cosine', warmupSteps: 3 }, labelSmoothing: 0.1, weightDecay: 1e-4, seed, progress: false });
    return { weights: net.state().map((p) => Buffer.from(p.data.buffer, p.data.byteOffset, p.data.byteLength).toString('hex')), losses: r.history.map((h) => h.loss) };
  };
  const a = await run(7);
  const b = await run(7);
  assert.deepEqual(b.weights, a.weights);
  assert.deepEqual(b.losses, a.losses);
  const c = await run(8);
  assert.notDeepEqual(c.weights, a.weights);
});

test('CI-sized run: cnn-small, 1 epoch on mnist:train[0:3000], reaches >= 85% on mnist:test[0:1000]', async () => {
  const data = await loadData('mnist:train[0:3000]');
  const net = buildArch('cnn-small', { seed: 0 });
  const r = await train(net, data, { epochs: 1, batchSize: 32, lr: 2e-3, optimizer: 'adam', schedule: { kind: 'constant' }, seed: 0, progress: false });
  const s = await evaluate(net, await loadData('mnist:test[0:1000]'));
  // Seeds 0-2 give 90-92%; an untrained network sits near 10%, and a wrong sign, a missing update or broken
  // gradients miss the bound by far.
  assert.ok(s.accuracy >= 0.85, `test accuracy ${s.accuracy}`);
  assert.ok(r.history[0]!.loss < 1.0, `train loss ${r.history[0]!.loss}`);
  assert.equal(r.steps, Math.ceil(3000 / 32), 'one epoch of 32-example batches');
});

test('CLI: train writes the model and its record; eval prints {accuracy, loss, n}', async () => {
  const out = path.join(tmp, 'mlp.onnx');
  const t = cli(['train', '--arch', 'mlp', '--data', 'mnist:train[0:600]', '--epochs', '1', '--batch-size', '50', '--val', 'mnist:test[0:200]', '--seed', '3', '--out', out, '--json']);
  assert.equal(t.code, 0, t.err);
  const record = JSON.parse(fs.readFileSync(`${out}.train.json`, 'utf8'));
  assert.deepEqual(JSON.parse(t.out.trim().split('\n').pop()!), record);
  assert.equal(record.arch, 'mlp');
  assert.equal(record.seed, 3);
  assert.equal(record.hyperparameters.batchSize, 50);
  assert.equal(record.history.length, 1);
  assert.equal(record.timings.steps, 12);
  const e = cli(['eval', '--model', out, '--data', 'mnist:test[0:200]', '--json']);
  assert.equal(e.code, 0, e.err);
  const score = JSON.parse(e.out.trim());
  assert.deepEqual(Object.keys(score).sort(), ['accuracy', 'loss', 'n']);
  assert.equal(score.n, 200);
  // The eval command scores the exported file; the trainer scored the network in memory on the same data.
  assert.ok(Math.abs(score.accuracy - record.history[0].valAccuracy) < 1e-9);
  assert.ok(Math.abs(score.loss - record.history[0].valLoss) < 1e-4);
});

test('CLI: bad arch, epochs 0 and batch size 0 fail with clear codes', async () => {
  const code = (c: string) => (e: unknown) => e instanceof BulwarkError && e.code === c;
  const out = path.join(tmp, 'x.onnx');
  const base = ['--data', 'mnist:test[0:20]', '--out', out];
  await assert.rejects(trainCli(['--arch', 'lenet-9000', ...base]), code('BULWARK_E_ARCH'));
  await assert.rejects(trainCli(['--arch', 'conv:8x3,dense', ...base]), code('BULWARK_E_ARCH'));
  await assert.rejects(trainCli(['--arch', 'mlp', '--epochs', '0', ...base]), code('BULWARK_E_ARG'));
  await assert.rejects(trainCli(['--arch', 'mlp', '--batch-size', '0', ...base]), code('BULWARK_E_ARG'));
  await assert.rejects(trainCli(['--arch', 'mlp', '--optimizer', 'lbfgs', ...base]), code('BULWARK_E_ARG'));
  await assert.rejects(trainCli(['--arch', 'mlp', '--schedule', 'warp', ...base]), code('BULWARK_E_ARG'));
  await assert.rejects(trainCli(['--arch', 'mlp', '--data', 'mnist:val', '--out', out]), code('BULWARK_E_DATA_SPEC'));
  assert.ok(!fs.existsSync(out));
  const r = cli(['train', '--arch', 'lenet-9000', ...base]);
  assert.equal(r.code, 2);
  assert.match(r.err, /BULWARK_E_ARCH: unknown architecture "lenet-9000"/);
});

test('training on worker lanes: a batch split over 2 workers gives the batch gradients of one session', async () => {
  const { TrainingSession } = await import('../../src/nn/train.js');
  const { Rng } = await import('../../src/core/rng.js');
  const { maxAbsDiff, relL2 } = await import('../helpers.js');
  const data = await loadData('mnist:train[0:37]');
  for (const [arch, perExample] of [['conv:6x3p1,relu,maxpool:2,dropout:0.3,flatten,dense:10', false], ['conv:4x3p1,relu,maxpool:2,flatten,dense:10', true], ['conv:4x3p1,bn,relu,maxpool:2,flatten,dense:10', false]] as const) {
    const results = [];
    for (const workers of [1, 2]) {
      const net = buildArch(arch, { seed: 3 });
      const s = await TrainingSession.create(net, { threads: 1, workers, perExample });
      results.push({ r: await s.step(data.x, data.y!, new Rng(5)), state: net.state().map((p) => Array.from(p.data)) });
      await s.release();
    }
    const [one, two] = results;
    assert.ok(maxAbsDiff(one!.r.loss, two!.r.loss) < 1e-5, `${arch}: losses differ`);
    assert.ok(maxAbsDiff(one!.r.logits, two!.r.logits) < 1e-5, `${arch}: logits differ`);
    one!.r.grads.forEach((g, k) => {
      assert.equal(two!.r.grads[k]!.length, g.length, `${arch}: gradient ${k} size`);
      assert.ok(g.some((v) => v !== 0));
      assert.ok(relL2(two!.r.grads[k]!, g) < 1e-5, `${arch}: gradient ${k} differs by ${relL2(two!.r.grads[k]!, g)}`);
    });
    // BatchNorm running statistics are updated the same (that network stays on one session).
    assert.deepEqual(two!.state, one!.state);
  }
});
