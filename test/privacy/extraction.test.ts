/**
 * Model extraction against the reference MNIST model (fixtures/models/mnist-cnn-small.onnx): Knockoff Nets clone
 * agreement rises with queries; PRADA flags the Jacobian-augmentation attacker and not a benign client; the
 * Shapiro-Wilk test matches SciPy; output hardening wrappers behave as documented.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { sliceRows, type Float32Tensor } from '../../src/core/tensor.js';
import { loadData, type Dataset } from '../../src/data/index.js';
import { loadModel, type OnnxModel } from '../../src/runtime/model.js';
import { hardenOutput, jacobianAugmentation, knockoffNets, PradaDetector, pradaGuard, shapiroWilk } from '../../src/privacy/extraction/index.js';
import { repoRoot } from '../helpers.js';
import { startKServeServer } from '../helpers/kserve-server.js';
import { run as extractCli } from '../../src/cli/extract.js';
import * as fs from 'node:fs';
import * as os from 'node:os';

const REF = path.join(repoRoot, 'fixtures', 'models', 'mnist-cnn-small.onnx');
let victim: OnnxModel;
let evalSet: Dataset;

test('setup: victim and evaluation set', async () => {
  victim = await loadModel(REF);
  evalSet = await loadData('mnist:test[5000:5500]');
});

test('Shapiro-Wilk (Royston) matches scipy.stats.shapiro', () => {
  // Reference values from SciPy 1.17.1 on the same samples.
  const cases: [number[], number, number][] = [
    [[2.1, 1.9, 2.4, 2.0, 1.7], 0.983964, 0.95464],
    [[1, 2, 3, 4, 5, 6, 7, 8, 9, 30], 0.669889, 3.8097e-4],
    [[148, 154, 158, 160, 161, 162, 166, 170, 182, 195, 236], 0.788815, 6.7038e-3],
    [[1, 2, 4], 0.964286, 0.63689],
  ];
  for (const [x, w, p] of cases) {
    const r = shapiroWilk(x);
    assert.ok(Math.abs(r.w - w) < 2e-6, `W ${r.w} vs ${w}`);
    assert.ok(Math.abs(r.p - p) / p < 1e-3, `p ${r.p} vs ${p}`);
  }
  // 300 values from a deterministic sequence (uniform-like): SciPy W 0.952982, p 3.1692e-8.
  const big = Array.from({ length: 300 }, (_, i) => ((Math.sin(i * 12.9898) * 43758.5453) % 1));
  const r = shapiroWilk(big);
  assert.ok(Math.abs(r.w - 0.952982) < 2e-6 && Math.abs(r.p - 3.1692e-8) / 3.1692e-8 < 1e-3, `W ${r.w} p ${r.p}`);
});

test('Knockoff Nets (random, MNIST pool): clone agreement with the victim rises with queries', async () => {
  const pool = await loadData('mnist:train[0:3000]');
  const r = await knockoffNets(victim, pool, { budget: 1000, checkpoints: [100, 300, 1000], evalSet, strategy: 'random', epochs: 6, seed: 0 });
  console.log(`# knockoff random: ${r.curve.map((p) => `${p.queries} q -> fidelity ${(100 * p.fidelity).toFixed(1)}% acc ${(100 * p.accuracy).toFixed(1)}%`).join('; ')} (${r.seconds.toFixed(1)} s)`);
  assert.equal(r.queries, 1000);
  assert.deepEqual(r.curve.map((p) => p.queries), [100, 300, 1000]);
  assert.ok(r.curve[1]!.fidelity > r.curve[0]!.fidelity && r.curve[2]!.fidelity > r.curve[1]!.fidelity, 'fidelity rises');
  assert.ok(r.curve[2]!.fidelity > 0.9, `fidelity at 1000 queries ${r.curve[2]!.fidelity}`);
});

test('Knockoff Nets (adaptive bandit, Fashion-MNIST pool against the MNIST victim) spends its budget and learns', async () => {
  const pool = await loadData('fashion-mnist:train[0:3000]');
  const r = await knockoffNets(victim, pool, { budget: 600, checkpoints: [200, 600], evalSet, strategy: 'adaptive', roundSize: 50, epochs: 6, seed: 0 });
  console.log(`# knockoff adaptive (fashion pool): ${r.curve.map((p) => `${p.queries} q -> fidelity ${(100 * p.fidelity).toFixed(1)}%`).join('; ')}`);
  assert.equal(r.queries, 600);
  assert.ok(r.curve[1]!.fidelity > 0.2, `above chance (10%): ${r.curve[1]!.fidelity}`);
});

test('PRADA flags the Jacobian-augmentation attacker within a few hundred queries, not a benign client', async () => {
  const prada = new PradaDetector({ delta: 0.9 });
  const attacker = pradaGuard(victim, prada, 'attacker');
  const seedSet = await loadData('mnist:test[0:150]');
  const r = await jacobianAugmentation(attacker, seedSet, { budget: 600, lambda: 0.1, epochs: 5, seed: 0 });
  assert.equal(r.queries, 600);
  assert.equal(attacker.verdicts.length, 600);
  const alarmAt = attacker.verdicts.at(-1)!.alarmAt;
  const minW = Math.min(...attacker.verdicts.map((v) => v.w ?? 1));
  const benign = pradaGuard(victim, prada, 'benign');
  const natural = await loadData('mnist:test[1000:3000]');
  for (let s = 0; s < 2000; s += 200) await benign.predict(sliceRows(natural.x, s, s + 200));
  const benignMinW = Math.min(...benign.verdicts.map((v) => v.w ?? 1));
  console.log(`# PRADA: attacker alarm at query ${alarmAt}, min W ${minW.toFixed(3)}; benign (2000 test images) min W ${benignMinW.toFixed(3)}, alarm ${benign.verdicts.at(-1)!.alarm}`);
  assert.ok(alarmAt !== undefined && alarmAt <= 400, `attacker flagged at ${alarmAt}`);
  assert.equal(benign.verdicts.at(-1)!.alarm, false);
  assert.ok(benignMinW > 0.95);
  assert.deepEqual(prada.clientIds().sort(), ['attacker', 'benign']);
});

test('output hardening: top-k, rounding, label-only, noise and reverse sigmoid keep rows valid', async () => {
  const x: Float32Tensor = sliceRows(evalSet.x, 0, 20);
  const base = await hardenOutput(victim, { kind: 'top-k', k: 10 }).predict(x);
  const top1 = (d: Float32Array, i: number) => Array.from(d.subarray(i * 10, i * 10 + 10)).reduce((b, v, j, a) => (v > a[b]! ? j : b), 0);
  const cases = [
    { kind: 'top-k' as const, k: 2 },
    { kind: 'round' as const, decimals: 1 },
    { kind: 'label-only' as const },
    { kind: 'noise' as const, std: 0.01, seed: 3 },
    { kind: 'reverse-sigmoid' as const, beta: 0.2, gamma: 0.5 },
  ];
  for (const h of cases) {
    const m = hardenOutput(victim, h);
    const out = await m.predict(x);
    assert.equal(m.outputKind, 'probs');
    assert.equal(m.queries, 20);
    for (let i = 0; i < 20; i++) {
      const row = out.data.subarray(i * 10, i * 10 + 10);
      if (h.kind === 'top-k') assert.ok(row.filter((v) => v > 0).length <= 2);
      if (h.kind === 'label-only') assert.equal(row.filter((v) => v === 1).length, 1);
      if (h.kind === 'round') assert.ok(row.every((v) => Math.abs(v * 10 - Math.round(v * 10)) < 1e-5));
      if (h.kind !== 'noise') assert.equal(top1(out.data, i), top1(base.data, i), `${h.kind} keeps the top-1 class`);
    }
  }
  const rs = await hardenOutput(victim, { kind: 'reverse-sigmoid', beta: 0.2, gamma: 0.5 }).predict(x);
  let moved = 0;
  for (let i = 0; i < rs.data.length; i++) moved = Math.max(moved, Math.abs(rs.data[i]! - base.data[i]!));
  assert.ok(moved > 0.01, 'reverse sigmoid perturbs the probabilities');
  assert.throws(() => hardenOutput(victim, { kind: 'top-k', k: 0 }), /k must be a positive integer/);
});

test('CLI against a KServe v2 endpoint: the server sees exactly budget + eval queries; the clone is valid ONNX', async () => {
  const srv = await startKServeServer({ model: REF, name: 'mnist' });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-extract-'));
  const out = path.join(dir, 'clone.onnx');
  const lines: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  // Capture only the command's JSON line; the test reporter's own output passes through.
  process.stdout.write = ((s: string | Uint8Array, ...rest: unknown[]) => (typeof s === 'string' && s.startsWith('{') ? (lines.push(s), true) : (write as (...a: unknown[]) => boolean)(s, ...rest))) as typeof process.stdout.write;
  let code: number;
  try {
    code = await extractCli(['--model', srv.url, '--budget', '300', '--strategy', 'random', '--pool', 'mnist:train[0:1000]', '--eval', 'mnist:test[0:200]', '--epochs', '4', '--out', out, '--json']);
  } finally {
    process.stdout.write = write;
    await srv.close();
  }
  assert.equal(code, 0);
  const res = JSON.parse(lines.at(-1)!);
  assert.equal(res.queries, 300);
  assert.equal(srv.stats.examplesReceived, 500);
  assert.ok(res.fidelity > 0.7, `fidelity ${res.fidelity}`);
  const clone = await loadModel(out);
  assert.equal((await clone.predict(sliceRows(evalSet.x, 0, 4))).shape.join(','), '4,10');
  await clone.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});
