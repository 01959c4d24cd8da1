/**
 * "Same algorithm, same numbers": Bulwark's FGSM, PGD and C&W L2 against PyTorch implementations of the same
 * algorithms on the same weights and images (bench/torch_attacks.py wrote fixtures/attacks/torch_reference.json).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cw } from '../../src/evasion/whitebox/cw.js';
import { fgsm } from '../../src/evasion/whitebox/fgsm.js';
import { pgd } from '../../src/evasion/whitebox/pgd.js';
import { repoRoot } from '../helpers.js';
import { mnistTest, referenceModel } from './reference.js';

interface Reference {
  n: number;
  cleanAccuracy: number;
  fgsm: { eps: number; robustAccuracy: number }[];
  pgd: { eps: number; steps: number; stepSize: number; robustAccuracy: number }[];
  cw: { c: number; steps: number; lr: number; kappa: number; successRate: number; meanL2: number };
}

const ref = JSON.parse(fs.readFileSync(path.join(repoRoot, 'fixtures', 'attacks', 'torch_reference.json'), 'utf8')) as Reference;
const model = await referenceModel();
const { x, y } = await mnistTest(0, ref.n);
const POINT = 0.01 + 1e-9;

test('clean accuracy matches PyTorch on the same weights', async () => {
  const r = await fgsm(model, x, y, { eps: 0 });
  assert.ok(Math.abs(r.summary.cleanAccuracy - ref.cleanAccuracy) < 1e-9, `${r.summary.cleanAccuracy} vs ${ref.cleanAccuracy}`);
});

for (const s of ref.fgsm) {
  test(`FGSM eps ${s.eps}: robust accuracy within 1 point of PyTorch (${s.robustAccuracy})`, async () => {
    const r = await fgsm(model, x, y, { eps: s.eps });
    assert.ok(Math.abs(r.summary.robustAccuracy - s.robustAccuracy) <= POINT, `Bulwark ${r.summary.robustAccuracy}, PyTorch ${s.robustAccuracy}`);
  });
}

for (const s of ref.pgd) {
  test(`PGD L∞ eps ${s.eps}, ${s.steps} steps of ${s.stepSize}, no random start: within 1 point of PyTorch (${s.robustAccuracy})`, async () => {
    // the textbook algorithm: start at x, fixed step, the final iterate is the answer
    const r = await pgd(model, x, y, { eps: s.eps, steps: s.steps, stepSize: s.stepSize, randomStart: false, keepSuccess: false });
    assert.ok(Math.abs(r.summary.robustAccuracy - s.robustAccuracy) <= POINT, `Bulwark ${r.summary.robustAccuracy}, PyTorch ${s.robustAccuracy}`);
  });
}

test(`C&W L2 with fixed c: success within 1 point and mean L2 within 5% of PyTorch (${ref.cw.successRate.toFixed(4)}, ${ref.cw.meanL2.toFixed(4)})`, async () => {
  const s = ref.cw;
  const r = await cw(model, x, y, { initialConst: s.c, steps: s.steps, lr: s.lr, kappa: s.kappa, binarySearchSteps: 1, abortEarly: false });
  assert.ok(Math.abs(r.summary.successRate - s.successRate) <= POINT, `success: Bulwark ${r.summary.successRate}, PyTorch ${s.successRate}`);
  const rel = Math.abs(r.summary.meanPerturbation.l2 - s.meanL2) / s.meanL2;
  assert.ok(rel <= 0.05, `mean L2: Bulwark ${r.summary.meanPerturbation.l2}, PyTorch ${s.meanL2} (${(100 * rel).toFixed(2)}%)`);
});
