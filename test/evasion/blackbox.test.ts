/**
 * Black-box attacks on the reference MNIST model (fixtures/models/mnist-cnn-small.onnx): Square, HopSkipJump,
 * NES-PGD, the gradient-estimator wrapper under a white-box attack, exact query accounting, budgets, seeds, and a
 * gradient-masked model that fools PGD but not Square.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { BulwarkError } from '../../src/core/errors.js';
import type { Float32Tensor } from '../../src/core/tensor.js';
import { loadModel, type OnnxModel } from '../../src/runtime/model.js';
import { hopSkipJump, nes, pSchedule, pseudoGaussianPattern, queryStats, square, withEstimatedGradient } from '../../src/evasion/blackbox/index.js';
import { headLoss } from '../../src/evasion/blackbox/losses.js';
import { pgd } from '../../src/evasion/whitebox/pgd.js';
import { Rng } from '../../src/core/rng.js';
import { buildGradientMaskedModel } from '../helpers/masked-model.js';
import { REFERENCE_MODEL, mnistTest, referenceModel, counting } from './reference.js';

const REF = REFERENCE_MODEL;

function median(a: ArrayLike<number>): number {
  return queryStats(a).median;
}

let model: OnnxModel;
let x: Float32Tensor;
let y: Int32Array;

test('setup: the reference model', async () => {
  assert.ok(fs.existsSync(REF), `missing ${REF} (bulwark train --arch cnn-small --epochs 3)`);
  model = await referenceModel();
  ({ x, y } = await mnistTest(0, 100));
});

test('Square L∞ eps 0.3: under 5% robust accuracy with at most 5000 queries per example, counts exact', async () => {
  const bb = counting(model);
  const t0 = performance.now();
  const r = await square(bb, x, y, { eps: 0.3, norm: 'inf', maxQueries: 5000, seed: 0 });
  const secs = (performance.now() - t0) / 1000;
  const per = r.extras['queriesPerExample'] as Int32Array;
  const stats = queryStats(per);
  console.log(`square linf eps 0.3, 100 images: clean ${r.summary.cleanAccuracy}, robust ${r.summary.robustAccuracy}, queries mean ${stats.mean.toFixed(1)} median ${stats.median} max ${stats.max}, ${secs.toFixed(2)} s`);
  assert.ok(r.summary.cleanAccuracy >= 0.95);
  assert.ok(r.summary.robustAccuracy < 0.05, `robust accuracy ${r.summary.robustAccuracy}`);
  assert.ok(stats.max <= 5000);
  assert.equal(stats.total, r.queries, 'per-example counts sum to the queries the runner measured');
  // The runner adds one clean pass and one verification pass over all 100 examples.
  assert.equal(bb.seen, r.queries + 2 * 100);
  assert.equal(r.summary.outOfThreat, 0);
  for (let i = 0; i < 100; i++) if (r.success[i]) assert.ok(r.norms.linf[i]! <= 0.3 + 1e-6);
});

test('Square is reproducible from its seed and honours a tight budget', async () => {
  const xs = { data: x.data.subarray(0, 10 * 784), shape: [10, 1, 28, 28], dtype: 'float32' as const };
  const ys = y.subarray(0, 10);
  const a = await square(model, xs, ys, { eps: 0.15, maxQueries: 40, seed: 7 });
  const b = await square(model, xs, ys, { eps: 0.15, maxQueries: 40, seed: 7 });
  assert.deepEqual(a.adversarial.data, b.adversarial.data);
  const per = a.extras['queriesPerExample'] as Int32Array;
  assert.ok(Math.max(...per) <= 40);
  assert.equal(queryStats(per).total, a.queries);
  const c = await square(model, xs, ys, { eps: 0.15, maxQueries: 40, seed: 8 });
  assert.notDeepEqual(a.adversarial.data, c.adversarial.data);
});

test('Square L2: stays in the eps-ball and breaks most examples at eps 3', async () => {
  const xs = { data: x.data.subarray(0, 30 * 784), shape: [30, 1, 28, 28], dtype: 'float32' as const };
  const r = await square(model, xs, y.subarray(0, 30), { eps: 3, norm: 2, maxQueries: 2000, seed: 0 });
  const stats = queryStats(r.extras['queriesPerExample'] as Int32Array);
  console.log(`square l2 eps 3, 30 images: robust ${r.summary.robustAccuracy.toFixed(3)}, queries mean ${stats.mean.toFixed(1)} median ${stats.median}`);
  assert.equal(r.summary.outOfThreat, 0);
  for (let i = 0; i < 30; i++) assert.ok(r.norms.l2[i]! <= 3 + 1e-4);
  assert.ok(r.summary.robustAccuracy < 0.1, `robust accuracy ${r.summary.robustAccuracy}`);
});

test('HopSkipJump L2: every initially-correct example ends adversarial; median L2 reported', async () => {
  const n = 20;
  const xs = { data: x.data.subarray(0, n * 784), shape: [n, 1, 28, 28], dtype: 'float32' as const };
  const bb = counting(model);
  const t0 = performance.now();
  const r = await hopSkipJump(bb, xs, y.subarray(0, n), { norm: 2, steps: 10, maxQueries: 5000, seed: 1 });
  const secs = (performance.now() - t0) / 1000;
  const per = r.extras['queriesPerExample'] as Int32Array;
  const l2 = Array.from(r.norms.l2).filter((_, i) => r.attacked[i]);
  console.log(`hsj l2, ${n} images, 10 steps: success ${r.summary.successRate}, median L2 ${median(l2).toFixed(3)}, queries mean ${queryStats(per).mean.toFixed(0)} max ${queryStats(per).max}, ${secs.toFixed(1)} s`);
  for (let i = 0; i < n; i++) if (r.attacked[i]) assert.equal(r.success[i], 1, `example ${i}`);
  assert.ok(median(l2) < 3.5, `median L2 ${median(l2)}`);
  assert.ok(queryStats(per).max <= 5000);
  assert.equal(queryStats(per).total, r.queries);
  assert.equal(bb.seen, r.queries + 2 * n);
});

test('HopSkipJump L∞ and the budget: stops within maxQueries, still adversarial', async () => {
  const n = 5;
  const xs = { data: x.data.subarray(0, n * 784), shape: [n, 1, 28, 28], dtype: 'float32' as const };
  const r = await hopSkipJump(model, xs, y.subarray(0, n), { norm: 'inf', steps: 40, maxQueries: 800 });
  const per = r.extras['queriesPerExample'] as Int32Array;
  assert.ok(queryStats(per).max <= 800);
  for (let i = 0; i < n; i++) if (r.attacked[i]) assert.equal(r.success[i], 1);
  assert.ok(median(Array.from(r.norms.linf).filter((_, i) => r.attacked[i])) < 0.6);
});

test('NES-PGD (antithetic Gaussian estimates) breaks the model at L∞ eps 0.3', async () => {
  const n = 30;
  const xs = { data: x.data.subarray(0, n * 784), shape: [n, 1, 28, 28], dtype: 'float32' as const };
  const t0 = performance.now();
  const r = await nes(model, xs, y.subarray(0, n), { eps: 0.3, maxQueries: 5000, seed: 0 });
  const stats = queryStats(r.extras['queriesPerExample'] as Int32Array);
  console.log(`nes-pgd linf 0.3, ${n} images: robust ${r.summary.robustAccuracy}, queries mean ${stats.mean.toFixed(0)} median ${stats.median}, ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  assert.ok(r.summary.robustAccuracy < 0.1, `robust accuracy ${r.summary.robustAccuracy}`);
  assert.ok(stats.max <= 5000);
  assert.equal(stats.total, r.queries);
  const s = await nes(model, { data: xs.data.subarray(0, 10 * 784), shape: [10, 1, 28, 28], dtype: 'float32' }, y.subarray(0, 10), { eps: 0.3, estimator: 'spsa', sigma: 0.01, maxQueries: 3000 });
  assert.ok(s.summary.robustAccuracy <= 0.2, `spsa robust accuracy ${s.summary.robustAccuracy}`);
});

test('estimated gradients point along the true gradient, and white-box PGD runs black-box through them', async () => {
  const xs = { data: x.data.subarray(0, 4 * 784), shape: [4, 1, 28, 28], dtype: 'float32' as const };
  const ys = y.subarray(0, 4);
  const truth = await model.lossAndGradient(xs, ys, { kind: 'margin' });
  const est = withEstimatedGradient(model, { method: 'nes', samples: 400, sigma: 0.001, seed: 3 });
  const got = await est.lossAndGradient(xs, ys, { kind: 'margin' });
  assert.equal(est.queries, 4 * 401);
  for (let i = 0; i < 4; i++) {
    assert.ok(Math.abs(got.loss[i]! - truth.loss[i]!) < 1e-4, 'loss at x is the head loss');
    let dot = 0;
    let na = 0;
    let nb = 0;
    for (let j = i * 784; j < (i + 1) * 784; j++) {
      dot += got.grad.data[j]! * truth.grad.data[j]!;
      na += got.grad.data[j]! ** 2;
      nb += truth.grad.data[j]! ** 2;
    }
    // E[cos] ≈ sqrt(n/d) = sqrt(400/784) ≈ 0.71 for a smooth loss; demand well above chance (≈ 0.04).
    assert.ok(dot / Math.sqrt(na * nb) > 0.4, `cosine ${dot / Math.sqrt(na * nb)}`);
  }
  const n = 20;
  const inner = counting(model);
  const bb = withEstimatedGradient(inner, { samples: 50, seed: 0 });
  const r = await pgd(bb, { data: x.data.subarray(0, n * 784), shape: [n, 1, 28, 28], dtype: 'float32' }, y.subarray(0, n), { eps: 0.3, steps: 40, stepSize: 0.03, loss: 'margin' });
  console.log(`pgd (40 steps of 0.03) over nes estimates (51 queries per gradient), ${n} images: robust ${r.summary.robustAccuracy}, queries ${r.queries}`);
  assert.ok(r.summary.robustAccuracy <= 0.2, `robust accuracy ${r.summary.robustAccuracy}`);
  assert.equal(inner.seen, bb.queries, 'the wrapper counts every example it forwards');
  assert.equal(r.queries + 2 * n, bb.queries);
});

test('estimator: budget, heads and option checks', async () => {
  const xs = { data: x.data.subarray(0, 2 * 784), shape: [2, 1, 28, 28], dtype: 'float32' as const };
  const est = withEstimatedGradient(model, { samples: 10, maxQueries: 30 });
  await est.lossAndGradient(xs, y.subarray(0, 2), { kind: 'ce' });
  assert.equal(est.queries, 22);
  await assert.rejects(est.lossAndGradient(xs, y.subarray(0, 2)), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_QUERY_BUDGET');
  assert.equal(est.queries, 22, 'nothing is sent past the budget');
  assert.throws(() => withEstimatedGradient(model, { samples: 7 }), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_ARG');
  await assert.rejects(withEstimatedGradient(model).lossAndGradient(xs, y.subarray(0, 2), { kind: 'mse' }), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_ARG');
  // Output-only losses equal the fused heads of the white-box model.
  for (const head of [{ kind: 'ce' as const }, { kind: 'margin' as const }, { kind: 'dlr' as const }, { kind: 'dlr' as const, targeted: true }]) {
    const targets = Int32Array.from([(y[0]! + 1) % 10, (y[1]! + 1) % 10]);
    const wb = await model.lossAndGradient(xs, y.subarray(0, 2), head, head.targeted ? targets : undefined);
    const mine = headLoss(wb.output.data, 10, head, y.subarray(0, 2), targets);
    for (let i = 0; i < 2; i++) assert.ok(Math.abs(mine[i]! - wb.loss[i]!) < 1e-4 * Math.max(1, Math.abs(wb.loss[i]!)), `${head.kind}`);
  }
  await assert.rejects(square(model, xs, y.subarray(0, 2), { eps: 0.3, bogus: 1 } as never), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_ARG');
  await assert.rejects(nes(model, xs, y.subarray(0, 2), { eps: 0.3, samples: 9 }), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_ARG');
});

test('Square pieces: the paper\'s p schedule and the L2 pattern', () => {
  assert.equal(pSchedule(0.8, 0, 10000), 0.8);
  assert.equal(pSchedule(0.8, 11, 10000), 0.4);
  assert.equal(pSchedule(0.8, 201, 10000), 0.1);
  assert.equal(pSchedule(0.8, 8001, 10000), 0.8 / 512);
  assert.equal(pSchedule(0.8, 501, 5000), 0.8 / 32, 'budgets rescale to a 10000-query run');
  const p = pseudoGaussianPattern(7, new Rng(1));
  let s = 0;
  for (const v of p) s += v * v;
  assert.ok(Math.abs(s - 1) < 1e-9, 'unit L2 norm');
  assert.ok(Math.max(...p) > 0.3 && Math.min(...p) < -0.3, 'two halves of opposite sign');
});

test('a gradient-masked model (Round at the input) fools white-box PGD but not Square', async () => {
  const masked = await loadModel(buildGradientMaskedModel(REF), { threads: 1 });
  const n = 50;
  const xs = { data: x.data.subarray(0, n * 784), shape: [n, 1, 28, 28], dtype: 'float32' as const };
  const ys = y.subarray(0, n);
  const clean = await masked.predict(xs);
  const orig = await model.predict(xs);
  let agree = 0;
  for (let i = 0; i < n; i++) {
    const a = clean.data.subarray(i * 10, i * 10 + 10);
    const b = orig.data.subarray(i * 10, i * 10 + 10);
    if (a.indexOf(Math.max(...a)) === b.indexOf(Math.max(...b))) agree++;
  }
  assert.ok(agree >= n - 1, 'masking keeps the predictions');
  const wb = await pgd(masked, xs, ys, { eps: 0.3, steps: 40 });
  const bb = await square(masked, xs, ys, { eps: 0.3, maxQueries: 5000 });
  console.log(`masked model, ${n} images: pgd robust ${wb.summary.robustAccuracy}, square robust ${bb.summary.robustAccuracy} (mean queries ${queryStats(bb.extras['queriesPerExample'] as Int32Array).mean.toFixed(0)})`);
  assert.ok(wb.summary.robustAccuracy >= 0.8, `PGD should fail on the masked model, robust ${wb.summary.robustAccuracy}`);
  assert.ok(bb.summary.robustAccuracy < 0.05, `Square should break it, robust ${bb.summary.robustAccuracy}`);
  await masked.dispose();
});
