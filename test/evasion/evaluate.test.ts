/**
 * The robustness evaluation on the reference MNIST model (fixtures/models/mnist-cnn-small.onnx): the AutoAttack-style
 * ensemble at L∞ 0.3, its per-example dominance over every member run alone, the curve, the gradient-masking checks
 * on a deliberately masked model (and a saturated-softmax and a randomized one), and bad input.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BulwarkError } from '../../src/core/errors.js';
import type { Float32Tensor } from '../../src/core/tensor.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { cloneGraph, readModel, writeModelBytes } from '../../src/onnx/ir.js';
import { loadModel, wrapModel, type OnnxModel } from '../../src/runtime/model.js';
import { runAttack } from '../../src/evasion/runner.js';
import {
  SUITES,
  evaluateRobustness,
  maskingChecks,
  memberAttack,
  robustnessCurve,
  runEnsemble,
  sampleIndices,
  summarizeEvaluation,
  type SuiteSpec,
} from '../../src/evasion/evaluate/index.js';
import { buildGradientMaskedModel } from '../helpers/masked-model.js';
import { REFERENCE_MODEL, mnistTest, referenceModel } from './reference.js';

let model: OnnxModel;
let x: Float32Tensor;
let y: Int32Array;

function rows(t: Float32Tensor, n: number): Float32Tensor {
  const d = t.data.length / t.shape[0]!;
  return { data: t.data.slice(0, n * d), shape: [n, ...t.shape.slice(1)], dtype: 'float32' };
}

test('setup: the reference model and 100 MNIST test images', async () => {
  model = await referenceModel();
  ({ x, y } = await mnistTest(0, 100));
});

test('ensemble at L∞ 0.3 (quick): under 1% robust accuracy, never weaker than any member alone on any example', async () => {
  const t0 = performance.now();
  const ens = await runEnsemble(model, x, y, { eps: 0.3, norm: 'inf', suite: 'quick', seed: 0 });
  console.log(`ensemble linf 0.3, 100 images: clean ${ens.cleanAccuracy}, robust ${ens.robustAccuracy}, ${((performance.now() - t0) / 1000).toFixed(1)} s; ${ens.members.map((m) => `${m.name} ${m.status} broke ${m.broken}`).join(', ')}`);
  assert.ok(ens.cleanAccuracy >= 0.97, `clean accuracy ${ens.cleanAccuracy}`);
  assert.ok(ens.robustAccuracy < 0.01, `robust accuracy ${ens.robustAccuracy}`);
  // bookkeeping: robust ⇔ clean-correct and unbroken; every broken example is misclassified inside the ball
  for (let i = 0; i < 100; i++) {
    assert.equal(ens.robust[i], ens.cleanCorrect[i] && ens.brokenBy[i] === null ? 1 : 0);
    if (ens.brokenBy[i] !== null) {
      assert.notEqual(ens.adversarialPredictions[i], y[i], `example ${i} is misclassified`);
      assert.ok(ens.norms.linf[i]! <= 0.3 + 1e-6, `example ${i} inside the ball`);
    }
  }
  assert.equal(ens.verificationMismatches, 0);
  assert.equal(ens.members.reduce((a, m) => a + m.broken, 0), ens.brokenBy.filter((b) => b !== null).length);
  await dominates(ens, x, y, 0.3, 'quick');
});

test('ensemble at L∞ 0.15 on 30 images: per example at least as strong as each member run alone', async () => {
  const xs = rows(x, 30);
  const ys = y.subarray(0, 30);
  const ens = await runEnsemble(model, xs, ys, { eps: 0.15, norm: 'inf', suite: 'quick', seed: 0 });
  console.log(`ensemble linf 0.15, 30 images: robust ${ens.robustAccuracy}; ${ens.members.map((m) => `${m.name} attacked ${m.attacked} broke ${m.broken}`).join(', ')}`);
  const alone = await dominates(ens, xs, ys, 0.15, 'quick');
  // and the worst case is at least as low as the best single attack
  assert.ok(ens.robustAccuracy <= Math.min(...alone), `ensemble ${ens.robustAccuracy} vs members ${alone}`);
});

/** Runs each member alone on all examples (same options and seed) and checks that the ensemble broke whatever it broke. */
async function dominates(ens: Awaited<ReturnType<typeof runEnsemble>>, xs: Float32Tensor, ys: Int32Array, eps: number, budget: 'quick'): Promise<number[]> {
  const out: number[] = [];
  for (const m of SUITES[budget].members) {
    const { definition, options } = memberAttack(m, model.numClasses);
    const r = await runAttack(definition, model, xs, ys, { ...options, eps, norm: 'inf', seed: 0 });
    out.push(r.summary.robustAccuracy);
    for (let i = 0; i < ys.length; i++) {
      if (r.success[i]) assert.equal(ens.robust[i], 0, `${m.name} alone breaks example ${i} at eps ${eps}, the ensemble does not`);
    }
  }
  return out;
}

test('robustness curve: eps 0 is the clean accuracy, the worst case never rises, the main run is reused', async () => {
  const xs = rows(x, 20);
  const ys = y.subarray(0, 20);
  const main = await runEnsemble(model, xs, ys, { eps: 0.3, norm: 'inf', suite: 'quick', seed: 0 });
  const c = await robustnessCurve(model, xs, ys, { norm: 'inf', epsList: [0.3, 0, 0.1], suite: 'quick', reuse: main });
  assert.deepEqual(c.points.map((p) => p.eps), [0, 0.1, 0.3]);
  assert.equal(c.points[0]!.robustAccuracy, main.cleanAccuracy);
  assert.equal(c.points[2]!.reused, true);
  assert.deepEqual(c.members, ['apgd-ce', 'apgd-t']);
  for (let k = 1; k < c.points.length; k++) assert.ok(c.points[k]!.worstCaseRobustAccuracy <= c.points[k - 1]!.worstCaseRobustAccuracy);
  for (const p of c.points) assert.ok(p.worstCaseRobustAccuracy <= p.robustAccuracy);
  assert.ok(c.points[1]!.robustAccuracy > c.points[2]!.robustAccuracy, 'eps 0.1 leaves more robust than 0.3');
});

test('a gradient-masked model (Round at the input): the checks flag it and Square still breaks it', async () => {
  const masked = await loadModel(buildGradientMaskedModel(REFERENCE_MODEL), { threads: 1 });
  const n = 20;
  const xs = rows(x, n);
  const ys = y.subarray(0, n);
  const t0 = performance.now();
  const ev = await evaluateRobustness(masked, xs, ys, { eps: 0.3, norm: 'inf', suite: 'quick', curve: false });
  const s = summarizeEvaluation(ev);
  console.log(`masked model, ${n} images: clean ${s.cleanAccuracy}, robust ${s.robustAccuracy}; ${s.perAttack.map((a) => `${a.attack} broke ${a.broken}/${a.attacked}`).join(', ')}; flags ${s.flags.map((f) => f.id).join(', ')}; ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  assert.equal(ev.reliable, false);
  const flagged = new Set(s.flags.map((f) => f.id));
  assert.ok(flagged.has('zero-gradients'), 'zero gradients flagged');
  assert.ok(flagged.has('blackbox-beats-whitebox'), 'black-box beating white-box flagged');
  const zero = ev.checks.find((c) => c.id === 'zero-gradients')!;
  assert.ok((zero.evidence['zeroGradientNodes'] as string[]).some((n) => n.includes('Round') || n.includes('mask/round')), `zero-gradient nodes ${JSON.stringify(zero.evidence['zeroGradientNodes'])}`);
  const square = ev.ensemble.members.find((m) => m.name === 'square')!;
  const white = ev.ensemble.members.filter((m) => m.kind === 'white-box').reduce((a, m) => a + m.broken, 0);
  assert.equal(square.status, 'ran');
  assert.ok(white <= 2, `white-box attacks broke ${white} (random starts only)`);
  assert.ok(ev.robustAccuracy <= 0.05, `Square breaks the masked model: robust ${ev.robustAccuracy}`);
  await masked.dispose();
});

test('saturated probability output and randomized outputs are flagged', async () => {
  // reference logits × 1000 through a Softmax: probabilities at 0/1 to float32 precision
  const g = cloneGraph(readModel(REFERENCE_MODEL));
  const b = new GraphBuilder(g);
  const out = g.outputs[0]!;
  const probs = b.node('Softmax', [b.node('Mul', [out.name, b.scalar(1000)], {}, 'saturate')], { axis: -1 }, 'softmax');
  g.outputs[0] = { ...out, name: probs };
  const sat = await loadModel(writeModelBytes(g), { threads: 1 });
  assert.equal(sat.outputKind, 'probs');
  const tiny: SuiteSpec = { budget: 'quick', examples: 16, members: [{ name: 'apgd-ce', kind: 'white-box', options: { steps: 5 } }], curve: { fractions: [1], examples: 16, members: 'all' }, checkExamples: 16 };
  const xs = rows(x, 16);
  const ys = y.subarray(0, 16);
  const ev = await evaluateRobustness(sat, xs, ys, { eps: 0.3, norm: 'inf', suite: tiny, curve: false });
  const c = ev.checks.find((k) => k.id === 'saturated-probs')!;
  assert.equal(c.status, 'flag', c.message);
  assert.ok((c.value ?? 0) >= 0.5);
  await sat.dispose();

  // a model that adds fresh noise to its logits on every call
  let calls = 0;
  const noisy = wrapModel(model, {
    async predict(t: Float32Tensor) {
      const o = await model.predict(t);
      calls++;
      for (let i = 0; i < o.data.length; i++) o.data[i] = o.data[i]! + 0.05 * Math.sin(13 * i + 7 * calls);
      return o;
    },
    lossAndGradient: (t, l, h, tg) => model.lossAndGradient(t, l, h, tg),
  });
  const ens = await runEnsemble(noisy, xs, ys, { eps: 0.3, norm: 'inf', suite: tiny });
  const checks = await maskingChecks(noisy, xs, ys, { ensemble: ens, eps: 0.3, norm: 'inf', examples: 16 });
  const r = checks.find((k) => k.id === 'randomized-output')!;
  assert.equal(r.status, 'flag', r.message);
  // the reference model itself passes every check that applies
  const refChecks = await maskingChecks(model, xs, ys, { ensemble: await runEnsemble(model, xs, ys, { eps: 0.3, norm: 'inf', suite: tiny }), eps: 0.3, norm: 'inf', examples: 16 });
  for (const k of refChecks) assert.notEqual(k.status, 'flag', `${k.id}: ${k.message}`);
});

test('bad input: negative, zero, non-finite and absurd eps; data that does not fit; bad labels', async () => {
  const xs = rows(x, 4);
  const ys = y.subarray(0, 4);
  const code = async (p: Promise<unknown>, want: string, re?: RegExp) => {
    await assert.rejects(p, (e: unknown) => {
      assert.ok(e instanceof BulwarkError, String(e));
      assert.equal(e.code, want, e.message);
      if (re) assert.match(e.message, re);
      return true;
    });
  };
  await code(evaluateRobustness(model, xs, ys, { eps: -0.1, norm: 'inf', suite: 'quick' }), 'BULWARK_E_ARG', /> 0/);
  await code(evaluateRobustness(model, xs, ys, { eps: 0, norm: 'inf', suite: 'quick' }), 'BULWARK_E_ARG');
  await code(evaluateRobustness(model, xs, ys, { eps: NaN, norm: 'inf', suite: 'quick' }), 'BULWARK_E_ARG');
  await code(evaluateRobustness(model, xs, ys, { eps: 8, norm: 'inf', suite: 'quick' }), 'BULWARK_E_ARG', /diameter/);
  await code(evaluateRobustness(model, xs, ys, { eps: 30, norm: 2, suite: 'quick' }), 'BULWARK_E_ARG', /diameter/);
  const flat: Float32Tensor = { data: xs.data, shape: [4, 784], dtype: 'float32' };
  await code(evaluateRobustness(model, flat, ys, { eps: 0.3, norm: 'inf', suite: 'quick' }), 'BULWARK_E_SHAPE', /expects \[N,1,28,28\]/);
  const small: Float32Tensor = { data: xs.data.slice(0, 4 * 14 * 14), shape: [4, 1, 14, 14], dtype: 'float32' };
  await code(runEnsemble(model, small, ys, { eps: 0.3, norm: 'inf', suite: 'quick' }), 'BULWARK_E_SHAPE');
  await code(evaluateRobustness(model, xs, Int32Array.of(1, 2, 3, 10), { eps: 0.3, norm: 'inf', suite: 'quick' }), 'BULWARK_E_LABELS');
  const loud: Float32Tensor = { data: xs.data.map((v) => v * 255), shape: xs.shape, dtype: 'float32' };
  await code(evaluateRobustness(model, loud, ys, { eps: 0.3, norm: 'inf', suite: 'quick' }), 'BULWARK_E_ARG', /outside the model bounds/);
});

test('sample indices are sorted, distinct, seeded; small data is taken whole', () => {
  const a = sampleIndices(10000, 100, 0);
  assert.equal(a.length, 100);
  for (let i = 1; i < a.length; i++) assert.ok(a[i]! > a[i - 1]!);
  assert.deepEqual(a, sampleIndices(10000, 100, 0));
  assert.notDeepEqual(a, sampleIndices(10000, 100, 1));
  assert.deepEqual(Array.from(sampleIndices(5, 100, 0)), [0, 1, 2, 3, 4]);
});

test('APGD-T falls back to targeted cross-entropy below 4 classes (targeted DLR needs 4)', () => {
  const apgdT = SUITES.standard.members.find((m) => m.name === 'apgd-t')!;
  assert.equal(memberAttack(apgdT, 10).definition.name, 'apgd-dlr');
  const few = memberAttack(apgdT, 3);
  assert.equal(few.definition.name, 'apgd');
  assert.equal(few.options['loss'], 'ce');
  assert.deepEqual(apgdT.options['criterion'], { kind: 'targeted-topk', k: 9 });
});

test('teardown', async () => {
  await model.dispose();
});
