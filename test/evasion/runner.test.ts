import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BulwarkError } from '../../src/core/errors.js';
import { Rng } from '../../src/core/rng.js';
import type { Float32Tensor } from '../../src/core/tensor.js';
import { apgdCheckpoints } from '../../src/evasion/whitebox/apgd.js';
import { projectOnHyperplaneBox } from '../../src/evasion/whitebox/fab.js';
import { pgd } from '../../src/evasion/whitebox/pgd.js';
import { projectL1BoxRow, projectRow, rowNorm } from '../../src/evasion/geometry.js';
import { commonFields, defineSchema } from '../../src/evasion/options.js';
import { runAttack } from '../../src/evasion/runner.js';
import '../../src/evasion/blackbox/index.js';
import type { AttackDefinition, CommonOptions, Model, Norm } from '../../src/evasion/types.js';
import { mnistTest, referenceModel } from './reference.js';

const model = await referenceModel();
const { x, y } = await mnistTest(0, 60);

/** An attack that cheats: it returns `make(ctx)`, whatever the threat model says. */
function cheater(norm: Norm, make: (x: Float32Tensor, y: Int32Array) => Float32Tensor): AttackDefinition<CommonOptions> {
  return {
    name: 'cheat',
    summary: 'returns inputs outside the threat model',
    paper: 'none',
    whiteBox: false,
    norms: [norm],
    targeted: true,
    schema: defineSchema<CommonOptions>(commonFields({ norms: [norm] })),
    craft: async (ctx) => make(ctx.x, ctx.y),
  };
}

/** For each example, the first image of another class in the batch: a perfect "adversarial" example, far away. */
function swapWithOtherClass(xs: Float32Tensor, ys: Int32Array): Float32Tensor {
  const d = xs.data.length / ys.length;
  const out = new Float32Array(xs.data.length);
  for (let i = 0; i < ys.length; i++) {
    const j = Array.from(ys.keys()).find((k) => ys[k] !== ys[i])!;
    out.set(xs.data.subarray(j * d, (j + 1) * d), i * d);
  }
  return { data: out, shape: [...xs.shape], dtype: 'float32' };
}

for (const [norm, eps] of [['inf', 0.02], [2, 0.3], [1, 2], [0, 3]] as const) {
  test(`the runner never reports success outside the ${norm === 'inf' ? 'L∞' : `L${norm}`} ball (a cheating attack)`, async () => {
    const r = await runAttack(cheater(norm, swapWithOtherClass), model, x, y, { norm, eps });
    // the raw output would fool the model on every example (it is another class's image) ...
    assert.ok(r.summary.cleanAccuracy > 0.95);
    assert.equal(r.summary.outOfThreat, r.attacked.reduce((a, v) => a + v, 0), 'every raw output left the ball and was flagged');
    // ... but after projection onto so small a ball nothing is fooled, and every reported norm is within eps
    assert.equal(r.summary.successRate, 0);
    const norms = norm === 'inf' ? r.norms.linf : norm === 2 ? r.norms.l2 : norm === 1 ? r.norms.l1 : r.norms.l0;
    for (let i = 0; i < norms.length; i++) assert.ok(norms[i]! <= eps * (1 + 1e-5) + 1e-6, `example ${i}: norm ${norms[i]} > eps ${eps}`);
    for (const v of r.adversarial.data) assert.ok(v >= 0 && v <= 1);
  });
}

test('the runner clips to the bounds and recomputes success itself', async () => {
  // out of bounds but inside a large ball: the runner clips to [0, 1]; success is re-predicted on the clipped input
  const r = await runAttack(cheater('inf', (xs) => ({ data: xs.data.map((v) => v + 2), shape: [...xs.shape], dtype: 'float32' })), model, x, y, { norm: 'inf', eps: 1 });
  assert.ok(r.summary.outOfThreat > 0);
  for (const v of r.adversarial.data) assert.ok(v >= 0 && v <= 1);
  const pred = await model.predict(r.adversarial);
  const k = 10;
  for (let i = 0; i < y.length; i++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (pred.data[i * k + j]! > pred.data[i * k + best]!) best = j;
    assert.equal(r.predictions[i], best);
    assert.equal(r.success[i], r.attacked[i] && best !== y[i] ? 1 : 0);
  }
});

test('options are validated strictly: unknown keys and bad values are refused', async () => {
  const code = async (p: Promise<unknown>, c: string, re?: RegExp) => {
    await assert.rejects(p, (e: unknown) => e instanceof BulwarkError && e.code === c && (!re || re.test(e.message)));
  };
  await code(pgd(model, x, y, { eps: 0.1, stpes: 10 } as never), 'BULWARK_E_ARG', /unknown option "stpes"/);
  await code(pgd(model, x, y, { eps: 0.1, steps: 2.5 }), 'BULWARK_E_ARG', /integer/);
  await code(pgd(model, x, y, { eps: 0.1, norm: 3 as never }), 'BULWARK_E_ARG', /norm/);
  await code(pgd(model, x, y, {}), 'BULWARK_E_ARG', /eps is required/);
  await code(pgd(model, x, y, { eps: 1.5 }), 'BULWARK_E_ARG', /exceeds the diameter/);
  await code(pgd(model, x, y, { eps: 0.1, restarts: 3, randomStart: false }), 'BULWARK_E_ARG', /restarts/);
  await code(pgd(model, { data: new Float32Array(10 * 784), shape: [10, 784], dtype: 'float32' }, y.subarray(0, 10), { eps: 0.1 }), 'BULWARK_E_SHAPE', /expects \[N,1,28,28\]/);
  await code(pgd(model, x, y.subarray(0, 5), { eps: 0.1 }), 'BULWARK_E_LABELS');
  await code(pgd(model, x, y, { eps: 0.1, criterion: { kind: 'targeted', targets: new Int32Array(60).fill(12) } }), 'BULWARK_E_LABELS');
});

test('a white-box attack on a model without gradients names the black-box alternatives', async () => {
  const predictOnly: Model = { inputShape: model.inputShape, numClasses: 10, bounds: [0, 1], outputKind: 'logits', queries: 0, predict: (t) => model.predict(t) };
  await assert.rejects(pgd(predictOnly, x, y, { eps: 0.1 }), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_MODEL' && /square/.test(e.hint) && /hsj/.test(e.hint) && /estimator/.test(e.hint));
});

test('attacks refuse models without class scores to flip: one score per example, or scores that are not [N, K]', async () => {
  const xs = { data: x.data.subarray(0, 4 * 784), shape: [4, 1, 28, 28], dtype: 'float32' as const };
  const ys = y.subarray(0, 4);
  const scoring = (k: number, shape: (n: number) => number[]): Model => ({
    inputShape: model.inputShape, numClasses: k, bounds: [0, 1], outputKind: 'logits', queries: 0,
    predict: async (t) => {
      const dims = shape(t.shape[0]!);
      return { data: new Float32Array(dims.reduce((a, v) => a * v, 1)).fill(0.5), shape: dims, dtype: 'float32' };
    },
  });
  const zeros = new Int32Array(4);
  for (const attack of ['square', 'hsj'] as const) {
    await assert.rejects(runAttack(attack, scoring(1, (n) => [n, 1]), xs, zeros, { eps: 0.1 }), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_MODEL' && /at least 2 classes/.test(e.message));
    await assert.rejects(runAttack(attack, scoring(2, (n) => [n, 5, 2]), xs, ys.map((v) => v % 2), { eps: 0.1 }), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_MODEL' && /\[N, K\]/.test(e.message));
  }
});

test('APGD checkpoints follow the paper: p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06)', () => {
  assert.deepEqual(apgdCheckpoints(100), [0, 22, 41, 57, 70, 80, 87, 93, 99]);
});

test('the L1-ball ∩ box projection is the Euclidean projection (beats random feasible points)', () => {
  const rng = new Rng(7);
  for (let trial = 0; trial < 20; trial++) {
    const d = 12;
    const x0 = Float32Array.from({ length: d }, () => rng.next());
    const z = Float32Array.from(x0, (v) => v + rng.uniform(-1, 1));
    const eps = rng.uniform(0.1, 2);
    const p = new Float32Array(z);
    projectL1BoxRow(p, x0, 0, d, eps, 0, 1);
    let l1 = 0;
    for (let j = 0; j < d; j++) {
      assert.ok(p[j]! >= 0 && p[j]! <= 1);
      l1 += Math.abs(p[j]! - x0[j]!);
    }
    assert.ok(l1 <= eps * (1 + 1e-5), `L1 ${l1} > ${eps}`);
    const dist = (q: Float32Array) => q.reduce((a, v, j) => a + (v - z[j]!) ** 2, 0);
    for (let k = 0; k < 200; k++) {
      // a random feasible point: a random point of the box, shrunk into the L1 ball
      const q = Float32Array.from(x0, () => rng.next());
      let s = 0;
      for (let j = 0; j < d; j++) s += Math.abs(q[j]! - x0[j]!);
      if (s > eps) for (let j = 0; j < d; j++) q[j] = x0[j]! + ((q[j]! - x0[j]!) * eps) / s;
      assert.ok(dist(p) <= dist(q) + 1e-6, `trial ${trial}: projection is not the closest point`);
    }
  }
});

test('projectRow for L1 projects the point itself, not its clip to the box', () => {
  // x = 0, box [0, 1]², eps 1: the projection of (3, 0.5) is (1, 0); projecting the clip (1, 0.5) would give (0.75, 0.25)
  const p = Float32Array.from([3, 0.5]);
  projectRow(p, new Float32Array(2), 0, 2, 1, 1, 0, 1);
  assert.ok(Math.abs(p[0]! - 1) < 1e-6 && Math.abs(p[1]!) < 1e-6, `got (${p[0]}, ${p[1]})`);
  // and an infinite budget only clips
  const q = Float32Array.from([3, -0.5]);
  projectRow(q, new Float32Array(2), 0, 2, 1, Infinity, 0, 1);
  assert.deepEqual(Array.from(q), [1, 0]);
});

for (const norm of ['inf', 2, 1] as const) {
  test(`FAB's hyperplane ∩ box projection (${norm}) meets the hyperplane with the smallest norm`, () => {
    const rng = new Rng(11);
    const d = 8;
    for (let trial = 0; trial < 20; trial++) {
      const w = Float32Array.from({ length: d }, () => rng.normal());
      const x0 = Float32Array.from({ length: d }, () => rng.next());
      const a = Float32Array.from(x0, (v) => -v);
      const b = Float32Array.from(x0, (v) => 1 - v);
      const r = rng.uniform(-0.5, 0.5);
      const delta = new Float64Array(d);
      projectOnHyperplaneBox(w, 0, r, a, b, 0, d, norm, delta);
      let dot = 0;
      for (let j = 0; j < d; j++) {
        assert.ok(delta[j]! >= a[j]! - 1e-6 && delta[j]! <= b[j]! + 1e-6, 'inside the box');
        dot += w[j]! * delta[j]!;
      }
      const reachable = Array.from(w).reduce((s, wj, j) => s + Math.abs(wj) * (wj * Math.sign(r) > 0 ? b[j]! : -a[j]!), 0);
      if (reachable < Math.abs(r)) continue;
      assert.ok(Math.abs(dot - r) < 1e-4, `on the hyperplane: ${dot} vs ${r}`);
      const nd = rowNorm(delta, 0, d, norm);
      // random feasible points on the hyperplane: random box points moved along a coordinate to meet it
      for (let k = 0; k < 300; k++) {
        const q = Float64Array.from(a, (lo, j) => lo + rng.next() * (b[j]! - lo));
        const j = rng.int(d);
        let rest = 0;
        for (let t = 0; t < d; t++) if (t !== j) rest += w[t]! * q[t]!;
        q[j] = (r - rest) / w[j]!;
        if (q[j]! < a[j]! || q[j]! > b[j]!) continue;
        assert.ok(nd <= rowNorm(q, 0, d, norm) + 1e-6, `trial ${trial}: a feasible point has a smaller ${norm} norm`);
      }
    }
  });
}
