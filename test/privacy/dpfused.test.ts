import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/core/rng.js';
import { loadData } from '../../src/data/index.js';
import { buildArch } from '../../src/nn/zoo.js';
import { ClippingSession } from '../../src/privacy/fused.js';
import { graphPerExample, referencePerExample } from '../../src/privacy/perexample.js';
import { maxAbsDiff } from '../helpers.js';

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

// The MNIST DP-SGD CNN's layer kinds at a small width: strided padded conv, overlapping max pooling (stride 1), tanh.
const ARCHS = ['conv:4x8s2p3,tanh,maxpool:2s1,conv:6x4s2,tanh,maxpool:2s1,flatten,dense:8,tanh,dense:10', 'conv:3x3p1,relu,maxpool:2,flatten,dense:10'];

test('in-graph clipping: norms equal one-at-a-time norms and the clipped sum equals the per-example path, to 1e-5', async () => {
  const data = await loadData('mnist:train[0:16]');
  for (const arch of ARCHS) {
    const net = buildArch(arch, { seed: 5 });
    const ref = await referencePerExample(net, { threads: 1 });
    const fused = await ClippingSession.create(net, { threads: 1 });
    try {
      const a = await ref.perExampleGrads(data.x, data.y!, new Rng(0));
      const b = await fused.perExampleGrads(data.x, data.y!, new Rng(0));
      net.params().forEach((p, j) => assert.ok(maxAbsDiff(a.grads[j]!, b.grads[j]!) <= 1e-5, `${arch} ${p.name} per-example gradient`));
      // One-at-a-time norms; C at their median, so about half the examples are clipped and half pass unchanged.
      const oneByOne = await ref.clippedSum(data.x, data.y!, new Rng(0), 1);
      const sorted = Array.from(oneByOne.norms).sort((u, v) => u - v);
      const c = (sorted[7]! + sorted[8]!) / 2;
      const want = await ref.clippedSum(data.x, data.y!, new Rng(0), c);
      const got = await fused.clippedSum(data.x, data.y!, new Rng(0), c);
      assert.ok(maxAbsDiff(want.norms, got.norms) <= 1e-5 * Math.max(1, maxAbs(want.norms)), `${arch} norms: ${maxAbsDiff(want.norms, got.norms)} of ${maxAbs(want.norms)}`);
      const clipped = Array.from(want.norms).filter((v) => v > c).length;
      assert.ok(clipped > 0 && clipped < 16, `${arch}: ${clipped} of 16 clipped`);
      want.sum.forEach((s, j) => assert.ok(maxAbsDiff(s, got.sum[j]!) <= 1e-5, `${arch} clipped sum of ${net.params()[j]!.name}: ${maxAbsDiff(s, got.sum[j]!)}`));
      assert.ok(maxAbsDiff(want.loss, got.loss) <= 1e-5);
      assert.ok(maxAbsDiff(want.logits, got.logits) <= 1e-5);
    } finally {
      await ref.release();
      await fused.release();
    }
  }
});

test('graph engine: sub-batches (maxFloats) give the same clipped sum and norms as one batched run', async () => {
  const data = await loadData('mnist:train[16:30]');
  const net = buildArch(ARCHS[0]!, { seed: 6 });
  const whole = await graphPerExample(net, { threads: 1 });
  const parts = await graphPerExample(net, { threads: 1, maxFloats: 4 * net.parameterCount() });
  try {
    // C at the median norm, so that about half the examples are clipped and half pass unchanged
    const sorted = Array.from((await whole.clippedSum(data.x, data.y!, new Rng(1), 1e9)).norms).sort((u, v) => u - v);
    const C = (sorted[6]! + sorted[7]!) / 2;
    const a = await whole.clippedSum(data.x, data.y!, new Rng(1), C);
    const b = await parts.clippedSum(data.x, data.y!, new Rng(1), C);
    assert.ok(maxAbsDiff(a.norms, b.norms) <= 1e-6 * Math.max(1, maxAbs(a.norms)));
    a.sum.forEach((s, j) => assert.ok(maxAbsDiff(s, b.sum[j]!) <= 1e-5, `param ${j}`));
    // some examples are clipped and others not, so the factors matter; each contributes at most C: ‖Σ cᵢgᵢ‖ <= N·C
    const clipped = Array.from(a.norms).filter((v) => v > C).length;
    assert.ok(clipped > 0 && clipped < 14, `${clipped} of 14 clipped`);
    let sq = 0;
    for (const g of a.sum) for (const v of g) sq += v * v;
    assert.ok(Math.sqrt(sq) > 0 && Math.sqrt(sq) <= 14 * C + 1e-5, `‖clipped sum‖ ${Math.sqrt(sq)}`);
    // the sum equals Σ min(1, C/(‖gᵢ‖ + 1e-6))·gᵢ over the per-example gradients
    const pe = await whole.perExampleGrads(data.x, data.y!, new Rng(1));
    net.params().forEach((p, j) => {
      const want = new Float64Array(p.data.length);
      for (let i = 0; i < 14; i++) {
        const c = Math.min(1, C / (a.norms[i]! + 1e-6));
        for (let t = 0; t < want.length; t++) want[t]! += c * pe.grads[j]![i * want.length + t]!;
      }
      assert.ok(maxAbsDiff(want, a.sum[j]!) <= 1e-5, `${p.name}: ${maxAbsDiff(want, a.sum[j]!)}`);
    });
  } finally {
    await whole.release();
    await parts.release();
  }
});
