import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadData } from '../../src/data/index.js';
import { buildArch } from '../../src/nn/zoo.js';
import { train } from '../../src/nn/train.js';
import { Rng } from '../../src/core/rng.js';
import type { Float32Tensor } from '../../src/core/tensor.js';
import { pgd } from '../../src/evasion/whitebox/pgd.js';
import { NetworkModel } from '../../src/evasion/defense/model.js';
import { ibpVerify } from '../../src/evasion/defense/ibp.js';
import { IbpSession, ibpSchedule } from '../../src/evasion/defense/ibp-train.js';
import { robustTrain } from '../../src/evasion/defense/adversarial.js';
import { lastJson, runCli } from '../helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-ibp-train-'));

function randomBatch(n: number, shape: number[], k: number, seed: number): { x: Float32Tensor; y: number[] } {
  const rng = new Rng(seed);
  const d = shape.reduce((a, b) => a * b, 1);
  const x = new Float32Array(n * d);
  for (let i = 0; i < x.length; i++) x[i] = rng.next();
  return { x: { data: x, shape: [n, ...shape], dtype: 'float32' }, y: Array.from({ length: n }, (_, i) => (i * 3 + 1) % k) };
}

/** Central differences of Σ loss at a few entries of every parameter against the graph's parameter gradient. */
async function gradcheck(arch: string, shape: number[], float64: boolean, h: number, tol: (g: number) => number) {
  const net = buildArch(arch, { inputShape: shape, seed: 5 });
  const s = await IbpSession.create(net, { float64, threads: 1 });
  const { x, y } = randomBatch(4, shape, net.numClasses, 11);
  const eps = 0.07;
  const kappa = 0.3;
  const base = net.params().map((p) => Float64Array.from(p.data));
  const lossAt = async (w: Float64Array[]) => {
    const r = await s.step(x, y, eps, kappa, float64 ? w : w.map((a) => Float32Array.from(a)));
    let t = 0;
    for (const v of r.loss) t += v;
    return t;
  };
  const g = (await s.step(x, y, eps, kappa, float64 ? base : base.map((a) => Float32Array.from(a)))).grads;
  const rng = new Rng(3);
  let checked = 0;
  let worst = 0;
  for (let pi = 0; pi < base.length; pi++) {
    for (let t = 0; t < 4; t++) {
      // Entries far from the kink of |w| (the radius path uses |W|), so the difference quotient is smooth there.
      let j = Math.floor(rng.next() * base[pi]!.length);
      while (Math.abs(base[pi]![j]!) < 20 * h) j = Math.floor(rng.next() * base[pi]!.length);
      const plus = base.map((a) => a.slice());
      const minus = base.map((a) => a.slice());
      plus[pi]![j]! += h;
      minus[pi]![j]! -= h;
      const fd = ((await lossAt(plus)) - (await lossAt(minus))) / (2 * h);
      const an = g[pi]![j]!;
      worst = Math.max(worst, Math.abs(fd - an) / tol(an));
      assert.ok(Math.abs(fd - an) <= tol(an), `${arch} ${net.params()[pi]!.name}[${j}]: finite difference ${fd} vs graph ${an}`);
      checked++;
    }
  }
  await s.release();
  return { checked, worst };
}

test('the IBP loss gradient from the ONNX graph equals central differences (float64 MLP, float32 conv net)', async () => {
  const mlp = await gradcheck('flatten,dense:12,relu,dense:8,relu,dense:5', [1, 4, 4], true, 1e-6, (g) => 1e-7 + 1e-6 * Math.abs(g));
  const conv = await gradcheck('conv:3x3s2p1,relu,maxpool:2,conv:4x2,relu,avgpool:1,flatten,dense:6,relu,dense:4', [2, 8, 8], false, 1e-3, (g) => 3e-3 + 1e-2 * Math.abs(g));
  console.log(`gradcheck: mlp ${mlp.checked} entries (worst |fd−g|/tol ${mlp.worst.toFixed(3)}), conv ${conv.checked} entries (worst ${conv.worst.toFixed(3)})`);
});

test('the bound graph gives ibpVerify margins (to 1e-5) and the schedules follow Gowal et al.', async () => {
  const d = await loadData('mnist:test[0:32]');
  for (const [arch, float64] of [['mlp', true], ['conv:4x3s2,relu,conv:8x3,relu,maxpool:2,flatten,dense:16,relu,dense:10', false], ['conv:4x3s2,relu,avgpool:2,flatten,dense:10,relu,dense:10', false]] as const) {
    const net = buildArch(arch, { seed: 2 });
    const s = await IbpSession.create(net, { float64, gradients: false, threads: 1 });
    for (const eps of [0, 0.01, 0.05]) {
      const ref = ibpVerify(net, d.x, d.y!, eps);
      const got = await s.marginLower(d.x, d.y!, eps);
      for (let i = 0; i < 32; i++) {
        const tol = float64 ? 1e-5 : 1e-5 * Math.max(1, Math.abs(ref.marginLower[i]!));
        assert.ok(Math.abs(got[i]! - ref.marginLower[i]!) <= tol, `${arch} eps ${eps} example ${i}: graph ${got[i]} vs ibpVerify ${ref.marginLower[i]}`);
      }
    }
    await s.release();
  }
  assert.deepEqual(ibpSchedule(4, { warmupSteps: 5, rampSteps: 10, eps: 0.2, kappa: 0.5 }), { eps: 0, kappa: 1 });
  const mid = ibpSchedule(9, { warmupSteps: 5, rampSteps: 10, eps: 0.2, kappa: 0.5 });
  assert.ok(Math.abs(mid.eps - 0.1) < 1e-12 && Math.abs(mid.kappa - 0.75) < 1e-12);
  assert.deepEqual(ibpSchedule(100, { warmupSteps: 5, rampSteps: 10, eps: 0.2, kappa: 0.5 }), { eps: 0.2, kappa: 0.5 });
});

test('IBP training refuses BatchNorm and Dropout naming the layer', async () => {
  const d = await loadData('mnist:train[0:64]');
  for (const [arch, layer] of [['conv:4x3,bn,relu,flatten,dense:10', 'bn1'], ['flatten,dense:16,relu,dropout:0.5,dense:10', 'drop1']]) {
    await assert.rejects(robustTrain(buildArch(arch), d, { epochs: 1, adv: 'ibp', eps: 0.1, progress: false }), (e: { code?: string; message?: string }) => e.code === 'BULWARK_E_UNSUPPORTED_OP' && e.message!.includes(layer));
  }
  await assert.rejects(robustTrain(buildArch('mlp'), d, { epochs: 1, adv: 'ibp', eps: 0.1, cleanRatio: 0.5, progress: false }), /clean-ratio/);
  await assert.rejects(robustTrain(buildArch('mlp'), d, { epochs: 1, adv: 'pgd', eps: 0.1, ibpKappa: 0.5, progress: false }), /ibp-kappa/);
});

test('IBP training verifies far more than normal training at eps 0.1, and every verified example withstands PGD', async () => {
  const data = await loadData('mnist:train[0:3000]');
  const test = await loadData('mnist:test[0:200]');
  const eps = 0.1;
  const common = { epochs: 2, batchSize: 50, lr: 3e-3, seed: 4, progress: false, threads: 1 } as const;
  const plain = buildArch('mlp', { seed: 4 });
  await train(plain, data, common);
  const net = buildArch('mlp', { seed: 4 });
  const r = await robustTrain(net, data, { ...common, adv: 'ibp', eps, ibpWarmup: 0.1, ibpRamp: 1 });
  const vPlain = ibpVerify(plain, test.x, test.y!, eps);
  const v = ibpVerify(net, test.x, test.y!, eps);
  const model = new NetworkModel(net);
  const clean = (await model.predict(test.x)).data;
  const correct: number[] = [];
  for (let i = 0; i < 200; i++) {
    let best = 0;
    for (let j = 1; j < 10; j++) if (clean[i * 10 + j]! > clean[i * 10 + best]!) best = j;
    if (best === test.y![i]) correct.push(i);
  }
  // PGD-40 with 3 restarts on every verified example, plus 40 correct but unverified ones (the attack must bite there).
  const verified = correct.filter((i) => v.verified[i]);
  const unverified = correct.filter((i) => !v.verified[i]).slice(0, 40);
  const idx = [...verified, ...unverified];
  const xs = new Float32Array(idx.length * 784);
  idx.forEach((i, k) => xs.set(test.x.data.subarray(i * 784, (i + 1) * 784), k * 784));
  const a = await pgd(model, { data: xs, shape: [idx.length, 1, 28, 28], dtype: 'float32' }, idx.map((i) => test.y![i]!), { eps, norm: 'inf', steps: 40, restarts: 3, seed: 2 });
  const brokenVerified = verified.filter((_, k) => a.success[k]).length;
  const brokenOther = unverified.filter((_, k) => a.success[verified.length + k]).length;
  console.log(`IBP-trained mlp: clean ${correct.length}/200, verified ${v.verifiedAccuracy.toFixed(3)}; PGD-40x3 broke ${brokenVerified}/${verified.length} verified and ${brokenOther}/${unverified.length} unverified correct examples; plain mlp verified ${vPlain.verifiedAccuracy.toFixed(3)}; eps/kappa per epoch ${JSON.stringify(r.history.map((h) => [h.ibpEps, h.ibpKappa]))}`);
  assert.equal(r.settings.adv, 'ibp');
  assert.equal(r.history.at(-1)!.ibpEps, eps);
  assert.equal(r.history.at(-1)!.ibpKappa, 0.5);
  // measured (seed 4): plain 0.000, IBP 0.385 verified, 153/200 clean
  assert.ok(vPlain.verifiedAccuracy <= 0.02, `plain verified ${vPlain.verifiedAccuracy}`);
  assert.ok(v.verifiedAccuracy >= 0.25, `IBP-trained verified ${v.verifiedAccuracy}`);
  assert.ok(correct.length >= 130, `IBP-trained clean ${correct.length}/200`);
  assert.equal(verified.length, Math.round(v.verifiedAccuracy * 200), 'a verified example is classified correctly');
  assert.equal(brokenVerified, 0, 'an IBP-verified example was broken by PGD');
  assert.ok(brokenOther >= 5, `PGD broke only ${brokenOther} unverified examples`);
  await model.dispose();
});

test('CLI: train --adv ibp writes the hardening block; certify --method ibp prints the verified fraction; unsupported ops exit 2', async () => {
  const out = path.join(tmp, 'ibp.onnx');
  const t = await runCli('train', '--arch', 'flatten,dense:32,relu,dense:10', '--data', 'mnist:train[0:500]', '--out', out, '--epochs', '1', '--batch-size', '50', '--adv', 'ibp', '--eps', '0.1', '--ibp-warmup', '0.2', '--ibp-ramp', '0.5', '--ibp-kappa', '0.6', '--threads', '1', '--val', 'mnist:test[0:20]', '--json');
  assert.equal(t.code, 0, t.stderr);
  const rec = JSON.parse(fs.readFileSync(`${out}.train.json`, 'utf8'));
  assert.equal(rec.hardening.adv, 'ibp');
  assert.equal(rec.hardening.eps, 0.1);
  assert.deepEqual([rec.hardening.ibpWarmup, rec.hardening.ibpRamp, rec.hardening.ibpKappa], [0.2, 0.5, 0.6]);
  assert.match(rec.hardening.paper, /Gowal/);
  assert.equal(rec.history[0].ibpEps, 0.1);
  assert.equal(rec.history[0].ibpKappa, 0.6);
  assert.ok(rec.history[0].verifiedValAccuracy >= 0 && rec.history[0].verifiedValAccuracy <= rec.history[0].valAccuracy);
  const c = await runCli('certify', '--method', 'ibp', '--model', out, '--data', 'mnist:test[0:50]', '--eps', '0.05', '--json');
  assert.equal(c.code, 0, c.stderr);
  const j = lastJson(c.stdout);
  assert.equal(j.method, 'ibp');
  assert.equal(j.eps, 0.05);
  assert.equal(j.n, 50);
  assert.ok(j.cleanAccuracy > 0.5 && j.verifiedAccuracy <= j.cleanAccuracy, JSON.stringify(j));
  assert.equal(j.verified.length, Math.round(j.verifiedAccuracy * 50));
  assert.ok(typeof j.seconds === 'number');
  const text = await runCli('certify', '--method', 'ibp', '--model', out, '--data', 'mnist:test[0:50]', '--eps', '0.05');
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, new RegExp(`verified ${j.verified.length}/50`));
  // a model IBP cannot bound: the CLI names the op and exits 2
  const sig = path.join(tmp, 'sigmoid.onnx');
  buildArch('flatten,dense:16,sigmoid,dense:10').saveOnnx(sig);
  const bad = await runCli('certify', '--method', 'ibp', '--model', sig, '--data', 'mnist:test[0:5]', '--eps', '0.1');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /BULWARK_E_UNSUPPORTED_OP.*Sigmoid/);
  assert.match(bad.stderr, /hint:/);
  const bn = await runCli('train', '--arch', 'conv:4x3,bn,relu,flatten,dense:10', '--data', 'mnist:train[0:100]', '--out', path.join(tmp, 'bn.onnx'), '--adv', 'ibp', '--eps', '0.1');
  assert.equal(bn.code, 2);
  assert.match(bn.stderr, /BULWARK_E_UNSUPPORTED_OP.*bn1/);
  const noEps = await runCli('certify', '--method', 'ibp', '--model', out, '--data', 'mnist:test[0:5]');
  assert.equal(noEps.code, 2);
  assert.match(noEps.stderr, /--eps/);
  const mixed = await runCli('certify', '--method', 'ibp', '--model', out, '--data', 'mnist:test[0:5]', '--eps', '0.1', '--sigma', '0.5');
  assert.equal(mixed.code, 2);
});
