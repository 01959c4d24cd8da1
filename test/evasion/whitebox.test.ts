import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sliceRows } from '../../src/core/tensor.js';
import { apgdCe, apgdDlr } from '../../src/evasion/whitebox/apgd.js';
import { cw } from '../../src/evasion/whitebox/cw.js';
import { deepfool } from '../../src/evasion/whitebox/deepfool.js';
import { fab } from '../../src/evasion/whitebox/fab.js';
import { fgsm } from '../../src/evasion/whitebox/fgsm.js';
import { patch } from '../../src/evasion/whitebox/patch.js';
import { pgd } from '../../src/evasion/whitebox/pgd.js';
import { uap } from '../../src/evasion/whitebox/uap.js';
import { worstCase } from '../../src/evasion/runner.js';
import { mnistTest, referenceModel } from './reference.js';

const model = await referenceModel();
const data = await mnistTest(0, 200);
const { x, y } = data;
const sub = (s: number, e: number) => ({ x: sliceRows(x, s, e), y: y.subarray(s, e) });

/** Targets: the next class after the label (a fixed, reproducible choice). */
const nextClass = (ys: Int32Array) => Int32Array.from(ys, (v) => (v + 1) % 10);

test('PGD-40 L∞ eps 0.3 leaves < 1% robust accuracy on the reference model (200 images)', async () => {
  const r = await pgd(model, x, y, { eps: 0.3, steps: 40, stepSize: 0.01 });
  assert.ok(r.summary.cleanAccuracy > 0.97, `clean accuracy ${r.summary.cleanAccuracy}`);
  assert.ok(r.summary.robustAccuracy < 0.01, `robust accuracy ${r.summary.robustAccuracy}`);
  assert.ok(Math.max(...r.norms.linf) <= 0.3 + 1e-6);
});

test('APGD-CE and APGD-DLR are at least as strong as PGD-40 on every subset (L∞ eps 0.15)', async () => {
  for (let s = 0; s < 200; s += 50) {
    const { x: xs, y: ys } = sub(s, s + 50);
    const p = await pgd(model, xs, ys, { eps: 0.15, steps: 40, seed: 1 });
    const ce = await apgdCe(model, xs, ys, { eps: 0.15, seed: 1 });
    const dlr = await apgdDlr(model, xs, ys, { eps: 0.15, seed: 1 });
    const msg = `subset ${s}: PGD ${p.summary.robustAccuracy}, APGD-CE ${ce.summary.robustAccuracy}, APGD-DLR ${dlr.summary.robustAccuracy}`;
    assert.ok(ce.summary.robustAccuracy <= p.summary.robustAccuracy, msg);
    assert.ok(dlr.summary.robustAccuracy <= p.summary.robustAccuracy, msg);
    // the per-example worst case over the three is at least as strong as each
    assert.ok(worstCase([p, ce, dlr]).robustAccuracy <= Math.min(ce.summary.robustAccuracy, dlr.summary.robustAccuracy));
  }
});

test('targeted attacks reach their targets', async () => {
  const { x: xs, y: ys } = sub(0, 40);
  const targets = nextClass(ys);
  const criterion = { kind: 'targeted' as const, targets };
  const p = await pgd(model, xs, ys, { eps: 0.3, steps: 40, stepSize: 0.01, criterion });
  const a = await apgdCe(model, xs, ys, { eps: 0.3, criterion });
  const c = await cw(model, xs, ys, { initialConst: 10, steps: 100, lr: 0.05, binarySearchSteps: 1, abortEarly: false, criterion });
  for (const r of [p, a, c]) {
    assert.ok(r.summary.successRate >= 0.9, `${r.attack}: targeted success ${r.summary.successRate}`);
    for (let i = 0; i < ys.length; i++) if (r.success[i]) assert.equal(r.predictions[i], targets[i], `${r.attack} example ${i}`);
  }
  // APGD-T over the top-3 classes is at least as strong as one untargeted run of the same budget on these
  const t = await apgdDlr(model, xs, ys, { eps: 0.1, steps: 50, criterion: { kind: 'targeted-topk', k: 3 } });
  const u = await apgdDlr(model, xs, ys, { eps: 0.1, steps: 50 });
  assert.ok(t.summary.robustAccuracy <= u.summary.robustAccuracy + 0.05, `APGD-T ${t.summary.robustAccuracy} vs APGD-DLR ${u.summary.robustAccuracy}`);
});

test('C&W with confidence kappa keeps only examples whose adversarial class leads by kappa', async () => {
  const { x: xs, y: ys } = sub(0, 12);
  const kappa = 3;
  const r = await cw(model, xs, ys, { kappa, initialConst: 1, steps: 100, lr: 0.05, binarySearchSteps: 3, abortEarly: false });
  const logits = await model.predict(r.adversarial);
  let checked = 0;
  for (let i = 0; i < ys.length; i++) {
    if (!r.success[i]) continue;
    const row = Array.from(logits.data.subarray(i * 10, (i + 1) * 10));
    const other = Math.max(...row.filter((_, j) => j !== ys[i]));
    assert.ok(other - row[ys[i]!]! >= kappa - 1e-4, `example ${i}: lead ${other - row[ys[i]!]!} < kappa ${kappa}`);
    checked++;
  }
  assert.ok(checked >= 9, `C&W with kappa ${kappa} succeeded on ${checked} of ${ys.length}`);
});

test('a minimum-norm attack under a finite eps: rows beyond it are projected and fail, not counted out of threat', async () => {
  const { x: xs, y: ys } = sub(0, 10);
  // eps far below the model's minimal L∞ perturbations: FAB's smallest points lie beyond it
  const f = await fab(model, xs, ys, { norm: 'inf', eps: 0.02, steps: 10 });
  assert.equal(f.summary.outOfThreat, 0);
  assert.ok(f.summary.robustAccuracy >= 0.9, `robust accuracy ${f.summary.robustAccuracy} at eps 0.02`);
  assert.ok(Math.max(...f.norms.linf) <= 0.02 + 1e-6);
  const minimum = (f.extras?.['minimumNorm'] as Float32Array | undefined) ?? new Float32Array();
  assert.ok(minimum.some((v) => v > 0.02 && Number.isFinite(v)), 'FAB found no point beyond eps: the case is not exercised');
});

test('FAB finds perturbations smaller than PGD\'s eps where PGD succeeds, and smaller than DeepFool\'s', async () => {
  const { x: xs, y: ys } = sub(0, 20);
  const eps = 0.3;
  const p = await pgd(model, xs, ys, { eps, steps: 40, stepSize: 0.01 });
  const f = await fab(model, xs, ys, { norm: 'inf', steps: 20 });
  const df = await deepfool(model, xs, ys, { norm: 'inf' });
  assert.ok(f.summary.successRate >= 0.95, `FAB success ${f.summary.successRate}`);
  let both = 0;
  let smaller = 0;
  for (let i = 0; i < ys.length; i++) {
    if (!p.success[i] || !f.success[i]) continue;
    both++;
    if (f.norms.linf[i]! < eps) smaller++;
  }
  assert.ok(both >= 15 && smaller === both, `FAB below eps on ${smaller} of ${both}`);
  assert.ok(f.summary.meanPerturbation.linf < 0.6 * eps, `FAB mean L∞ ${f.summary.meanPerturbation.linf}`);
  assert.ok(f.summary.meanPerturbation.linf < df.summary.meanPerturbation.linf, `FAB ${f.summary.meanPerturbation.linf} vs DeepFool ${df.summary.meanPerturbation.linf}`);
});

test('DeepFool L2 fools almost every example with a small perturbation', async () => {
  const { x: xs, y: ys } = sub(0, 20);
  const r = await deepfool(model, xs, ys, { norm: 2 });
  assert.ok(r.summary.successRate >= 0.95, `success ${r.summary.successRate}`);
  assert.ok(r.summary.meanPerturbation.l2 > 0.3 && r.summary.meanPerturbation.l2 < 3, `mean L2 ${r.summary.meanPerturbation.l2}`);
});

test('PGD in L2 and L1 stays in its ball and grows stronger with eps', async () => {
  const { x: xs, y: ys } = sub(0, 50);
  for (const [norm, small, large] of [[2, 1, 3], [1, 5, 15]] as const) {
    const a = await pgd(model, xs, ys, { norm, eps: small, steps: 20 });
    const b = await pgd(model, xs, ys, { norm, eps: large, steps: 20 });
    const norms = norm === 2 ? b.norms.l2 : b.norms.l1;
    for (const v of norms) assert.ok(v <= large * (1 + 1e-5));
    assert.ok(b.summary.robustAccuracy < a.summary.robustAccuracy, `L${norm}: eps ${small} → ${a.summary.robustAccuracy}, eps ${large} → ${b.summary.robustAccuracy}`);
    assert.ok(b.summary.robustAccuracy < 0.3, `L${norm} eps ${large}: ${b.summary.robustAccuracy}`);
  }
  // FGSM is weaker than PGD at the same eps
  const f = await fgsm(model, xs, ys, { eps: 0.15 });
  const p = await pgd(model, xs, ys, { eps: 0.15, steps: 20 });
  assert.ok(p.summary.robustAccuracy <= f.summary.robustAccuracy);
});

test('a universal perturbation (L∞ 0.3) fools more than 40% of the images', async () => {
  const r = await uap(model, x, y, { eps: 0.3, seed: 0 });
  const v = r.extras['perturbation'] as { data: Float32Array; shape: number[] };
  assert.deepEqual(v.shape, [1, 28, 28]);
  assert.ok(Math.max(...v.data.map(Math.abs)) <= 0.3 + 1e-6);
  assert.ok((r.extras['foolingRate'] as number) > 0.4, `fooling rate ${r.extras['foolingRate']}`);
  assert.ok(r.summary.robustAccuracy < 0.6, `robust accuracy ${r.summary.robustAccuracy}`);
});

test('a targeted patch (25% of the image, random positions) reaches its class and changes only its area', async () => {
  const target = 3;
  const r = await patch(model, x, y, { eps: 0.25, steps: 200, criterion: { kind: 'targeted', targets: new Int32Array(y.length).fill(target) } });
  const side = r.extras['side'] as number;
  assert.equal(side, 14);
  for (const v of r.norms.l0) assert.ok(v <= side * side);
  assert.ok(r.summary.successRate > 0.2, `targeted success ${r.summary.successRate}`);
  assert.equal(r.summary.outOfThreat, 0);
});

test('attacks are deterministic from the seed', async () => {
  const { x: xs, y: ys } = sub(0, 20);
  const a = await pgd(model, xs, ys, { eps: 0.1, steps: 10, seed: 5 });
  const b = await pgd(model, xs, ys, { eps: 0.1, steps: 10, seed: 5 });
  const c = await pgd(model, xs, ys, { eps: 0.1, steps: 10, seed: 6 });
  assert.deepEqual(a.adversarial.data, b.adversarial.data);
  assert.notDeepEqual(a.adversarial.data, c.adversarial.data);
  const p1 = await patch(model, xs, ys, { eps: 0.1, steps: 5, seed: 2 });
  const p2 = await patch(model, xs, ys, { eps: 0.1, steps: 5, seed: 2 });
  assert.deepEqual(p1.adversarial.data, p2.adversarial.data);
  assert.deepEqual(p1.extras['positions'], p2.extras['positions']);
});

test('the one-pass L∞ PGD step equals the sign step followed by the projection, bit for bit', async () => {
  const { signStepLinf } = await import('../../src/evasion/whitebox/pgd.js');
  const { ascentDirection } = await import('../../src/evasion/whitebox/common.js');
  const { project } = await import('../../src/evasion/geometry.js');
  const { Rng } = await import('../../src/core/rng.js');
  const rng = new Rng(12);
  const n = 5;
  const d = 97;
  // Inputs at the box edges, gradients with exact zeros, a start already at the ball's edge.
  const x0 = Float32Array.from({ length: n * d }, (_, i) => (i % 7 === 0 ? 0 : i % 11 === 0 ? 1 : rng.next()));
  const cur = Float32Array.from(x0, (v, i) => Math.min(1, Math.max(0, v + (i % 3 === 0 ? 0.3 : rng.uniform(-0.3, 0.3)))));
  const g = Float32Array.from({ length: n * d }, (_, i) => (i % 5 === 0 ? 0 : rng.uniform(-1, 1)));
  const shape = [n, d];
  for (const [step, eps] of [[0.01, 0.3], [0.07, 0.1], [0.5, 0.05]] as const) {
    const a = Float32Array.from(cur);
    const b = Float32Array.from(cur);
    signStepLinf(a, g, x0, step, eps, 0, 1);
    const dir = ascentDirection({ data: g, shape, dtype: 'float32' }, 'inf', new Float32Array(n * d));
    for (let j = 0; j < b.length; j++) b[j] = b[j]! + step * dir[j]!;
    project({ data: b, shape, dtype: 'float32' }, { data: x0, shape, dtype: 'float32' }, 'inf', eps, [0, 1]);
    assert.deepEqual(a, b);
    assert.ok(a.some((v, j) => v !== cur[j]));
  }
});
