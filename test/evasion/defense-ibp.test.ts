import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadData } from '../../src/data/index.js';
import { buildArch } from '../../src/nn/zoo.js';
import { train } from '../../src/nn/train.js';
import { Rng } from '../../src/core/rng.js';
import { pgd } from '../../src/evasion/whitebox/pgd.js';
import { NetworkModel } from '../../src/evasion/defense/model.js';
import { ibpVerify } from '../../src/evasion/defense/ibp.js';

test('at eps 0 the IBP margin bound equals the true margin (Conv, pools, BatchNorm, Gemm, elision)', async () => {
  const d = await loadData('mnist:test[0:8]');
  for (const arch of ['conv:4x3p1,bn,relu,maxpool:2,conv:6x3s2,relu,avgpool:2,flatten,dense:16,relu,dense:10', 'mlp']) {
    const net = buildArch(arch, { seed: 3 });
    await train(net, await loadData('mnist:train[0:300]'), { epochs: 1, progress: false });
    const r = ibpVerify(net, d.x, d.y!, 0);
    assert.ok(r.elided);
    const z = (await new NetworkModel(net).predict(d.x)).data;
    for (let i = 0; i < 8; i++) {
      let w = Infinity;
      for (let j = 0; j < 10; j++) if (j !== d.y![i]) w = Math.min(w, z[i * 10 + d.y![i]!]! - z[i * 10 + j]!);
      assert.ok(Math.abs(w - r.marginLower[i]!) < 1e-4, `${arch} example ${i}: ${w} vs ${r.marginLower[i]}`);
    }
  }
});

test('every example IBP verifies withstands PGD with restarts, and sampled corners respect the bound', async () => {
  const net = buildArch('mlp', { seed: 1 });
  await train(net, await loadData('mnist:train[0:2000]'), { epochs: 2, seed: 1, progress: false });
  const d = await loadData('mnist:test[0:100]');
  const eps = 0.003;
  const r = ibpVerify(net, d.x, d.y!, eps);
  const model = new NetworkModel(net);
  const a = await pgd(model, d.x, d.y!, { eps, norm: 'inf', steps: 20, restarts: 5, seed: 1 });
  const nv = r.verified.reduce((s, v) => s + v, 0);
  console.log(`eps ${eps}: IBP verified ${nv}/100, PGD robust accuracy ${a.summary.robustAccuracy}`);
  assert.ok(nv >= 10, 'enough verified examples to test');
  for (let i = 0; i < 100; i++) if (r.verified[i]) assert.equal(a.success[i], 0, `example ${i} verified but broken by PGD`);
  assert.ok(a.summary.robustAccuracy >= r.verifiedAccuracy);
  // random corners of the box never go below the margin lower bound
  const rng = new Rng(9);
  const xs = new Float32Array(20 * 784);
  const idx = Array.from(r.verified, (v, i) => (v ? i : -1)).filter((i) => i >= 0).slice(0, 20);
  idx.forEach((i, k) => {
    for (let j = 0; j < 784; j++) xs[k * 784 + j] = Math.min(1, Math.max(0, d.x.data[i * 784 + j]! + (rng.next() < 0.5 ? -eps : eps)));
  });
  const z = (await model.predict({ data: xs.subarray(0, idx.length * 784), shape: [idx.length, 1, 28, 28], dtype: 'float32' })).data;
  idx.forEach((i, k) => {
    const y = d.y![i]!;
    for (let j = 0; j < 10; j++) if (j !== y) assert.ok(z[k * 10 + y]! - z[k * 10 + j]! >= r.marginLower[i]! - 1e-4);
  });
  await model.dispose();
});

test('unsupported ops fail with a coded error naming the op', async () => {
  const net = buildArch('flatten,dense:16,sigmoid,dense:10');
  const d = await loadData('mnist:test[0:2]');
  assert.throws(() => ibpVerify(net, d.x, d.y!, 0.1), (e: { code?: string; message?: string }) => e.code === 'BULWARK_E_UNSUPPORTED_OP' && /Sigmoid/.test(e.message ?? ''));
  assert.throws(() => ibpVerify(net, d.x, d.y!, -1), /eps/);
});
