import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BulwarkError } from '../../src/core/errors.js';
import { Rng } from '../../src/core/rng.js';
import { loadData } from '../../src/data/index.js';
import { TrainingSession } from '../../src/nn/train.js';
import { buildArch } from '../../src/nn/zoo.js';
import { clipFactor, createPerExampleGradients, ghostApplicable, ghostPerExample, graphPerExample, referencePerExample } from '../../src/privacy/perexample.js';

const code = (c: string) => (e: unknown) => e instanceof BulwarkError && e.code === c;

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

test('ghost per-example gradients equal those computed one example at a time, to 1e-5', async () => {
  const data = await loadData('mnist:train[0:24]');
  for (const arch of ['mlp', 'flatten,dense:32,tanh,dense:16,gelu,dense:10']) {
    const net = buildArch(arch, { seed: 3 });
    assert.ok(ghostApplicable(net));
    const ref = await referencePerExample(net, { threads: 1 });
    const ghost = await ghostPerExample(net, { threads: 1 });
    try {
      const a = await ref.perExampleGrads(data.x, data.y!, new Rng(0));
      const b = await ghost.perExampleGrads(data.x, data.y!, new Rng(0));
      assert.equal(b.grads.length, net.params().length);
      net.params().forEach((p, j) => {
        assert.equal(b.grads[j]!.length, 24 * p.data.length, `${p.name} has a leading N`);
        const d = maxAbsDiff(a.grads[j]!, b.grads[j]!);
        assert.ok(d <= 1e-5, `${arch} ${p.name}: max |diff| ${d} (max |g| ${maxAbs(a.grads[j]!)})`);
      });
      assert.ok(maxAbsDiff(a.loss, b.loss) < 1e-5);
      // Clipped sums and per-example norms agree too (ghost norms are never materialized).
      const ca = await ref.clippedSum(data.x, data.y!, new Rng(0), 0.7);
      const cb = await ghost.clippedSum(data.x, data.y!, new Rng(0), 0.7);
      assert.ok(maxAbsDiff(ca.norms, cb.norms) < 1e-5 * maxAbs(ca.norms), 'norms');
      ca.sum.forEach((s, j) => assert.ok(maxAbsDiff(s, cb.sum[j]!) <= 1e-5, `clipped sum ${j}`));
    } finally {
      await ref.release();
      await ghost.release();
    }
  }
});

test('graph (autodiff per-example mode) gradients of conv nets equal those computed one example at a time, to 1e-5', async () => {
  const data = await loadData('mnist:train[0:10]');
  for (const arch of ['conv:4x3p1,relu,maxpool:2,conv:6x3s2,tanh,flatten,dense:10', 'conv:8x5p2,relu,avgpool:2,flatten,dense:16,relu,dense:10']) {
    const net = buildArch(arch, { seed: 2 });
    const ref = await referencePerExample(net, { threads: 1 });
    const graph = await graphPerExample(net, { threads: 1, maxFloats: 3 * net.parameterCount() });
    try {
      const a = await ref.perExampleGrads(data.x, data.y!, new Rng(0));
      const b = await graph.perExampleGrads(data.x, data.y!, new Rng(0));
      net.params().forEach((p, j) => {
        const d = maxAbsDiff(a.grads[j]!, b.grads[j]!);
        assert.ok(d <= 1e-5, `${arch} ${p.name}: max |diff| ${d} (max |g| ${maxAbs(a.grads[j]!)})`);
      });
      // Sub-batches of 3 (maxFloats) give the same clipped sum as the one-by-one engine.
      const ca = await ref.clippedSum(data.x, data.y!, new Rng(0), 0.3);
      const cb = await graph.clippedSum(data.x, data.y!, new Rng(0), 0.3);
      assert.ok(maxAbsDiff(ca.norms, cb.norms) < 1e-5 * maxAbs(ca.norms));
      ca.sum.forEach((s, j) => assert.ok(maxAbsDiff(s, cb.sum[j]!) <= 1e-5, `clipped sum ${j}`));
    } finally {
      await ref.release();
      await graph.release();
    }
  }
});

test('reference engine on a conv net: rows sum to the batch gradient, and clipping bounds every example by C', async () => {
  const data = await loadData('mnist:train[0:12]');
  const net = buildArch('conv:4x3p1,relu,maxpool:2,flatten,dense:10', { seed: 1 });
  assert.ok(!ghostApplicable(net));
  assert.equal((await createPerExampleGradients(net, { threads: 1 }).then(async (e) => (await e.release(), e))).kind, 'graph');
  const pe = await createPerExampleGradients(net, { threads: 1, kind: 'reference' });
  assert.equal(pe.kind, 'reference');
  const batch = await TrainingSession.create(net, { threads: 1 });
  try {
    const r = await pe.perExampleGrads(data.x, data.y!, new Rng(0));
    const full = await batch.step(data.x, data.y!, new Rng(0));
    net.params().forEach((p, j) => {
      const summed = new Float64Array(p.data.length);
      for (let i = 0; i < 12; i++) for (let t = 0; t < p.data.length; t++) summed[t]! += r.grads[j]![i * p.data.length + t]!;
      assert.ok(maxAbsDiff(summed, full.grads[j]!) <= 1e-5 * Math.max(1, maxAbs(full.grads[j]!)), p.name);
    });
    const c = 0.1;
    const clipped = await pe.clippedSum(data.x, data.y!, new Rng(0), c);
    let sq = 0;
    for (const g of clipped.sum) for (const v of g) sq += v * v;
    // ‖Σ clipped‖ <= Σ ‖clipped‖ <= N·C, and every example here exceeds C, so each contributes exactly C.
    assert.ok(Math.sqrt(sq) <= 12 * c + 1e-6);
    assert.ok(Array.from(clipped.norms).every((v) => v > c));
  } finally {
    await pe.release();
    await batch.release();
  }
  assert.equal(clipFactor(0.5, 1), 1);
  assert.ok(Math.abs(clipFactor(4, 1) - 0.25) < 1e-6);
});

test('BatchNorm is refused with a clear error naming alternatives; ghost refuses convolutions', async () => {
  for (const arch of ['cnn-bn', 'resnet-mini', 'flatten,dense:32,bn,relu,dense:10']) {
    await assert.rejects(createPerExampleGradients(buildArch(arch)), (e: unknown) => code('BULWARK_E_DP_UNSUPPORTED')(e) && /BatchNorm/.test((e as Error).message) && /mlp, cnn-small/.test((e as BulwarkError).hint));
  }
  await assert.rejects(ghostPerExample(buildArch('cnn-small')), code('BULWARK_E_ARCH'));
});
