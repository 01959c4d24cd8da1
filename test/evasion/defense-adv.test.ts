import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadData } from '../../src/data/index.js';
import { buildArch } from '../../src/nn/zoo.js';
import { train, TrainingSession } from '../../src/nn/train.js';
import { Rng } from '../../src/core/rng.js';
import { loadModel } from '../../src/runtime/model.js';
import { fgsm } from '../../src/evasion/whitebox/fgsm.js';
import { NetworkModel, VjpTrainer } from '../../src/evasion/defense/model.js';
import { robustTrain, tradesCotangent } from '../../src/evasion/defense/adversarial.js';
import { repoRoot } from '../helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-defense-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function cli(args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [path.join(repoRoot, 'bin', 'bulwark.js'), ...args], { encoding: 'utf8' });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

test('NetworkModel input gradients equal those of the exported ONNX model', async () => {
  const net = buildArch('cnn-small', { seed: 4 });
  const d = await loadData('mnist:test[0:6]');
  const a = await new NetworkModel(net).lossAndGradient(d.x, d.y!, { kind: 'margin' });
  const b = await (await loadModel(net.toOnnx())).lossAndGradient(d.x, d.y!, { kind: 'margin' });
  let md = 0;
  let mx = 0;
  for (let i = 0; i < a.grad.data.length; i++) {
    md = Math.max(md, Math.abs(a.grad.data[i]! - b.grad.data[i]!));
    mx = Math.max(mx, Math.abs(b.grad.data[i]!));
  }
  assert.ok(mx > 0 && md <= 1e-5 * mx, `max diff ${md} of ${mx}`);
});

test('TRADES cotangents are the gradient of CE + beta·KL (central differences)', () => {
  const k = 4;
  const z = [0.3, -1.2, 2.0, 0.5, 1.0, 0.1, -0.4, 0.9];
  const za = [0.1, -0.2, 1.5, 0.7, 0.2, 0.8, -1.0, 0.4];
  const y = [2, 3];
  const beta = 6;
  const { cot } = tradesCotangent(z, za, y, k, beta);
  const h = 1e-6;
  const both = [...z, ...za];
  for (let j = 0; j < both.length; j++) {
    const p = both.slice();
    const m = both.slice();
    p[j]! += h;
    m[j]! -= h;
    const f = (v: number[]) => tradesCotangent(v.slice(0, 8), v.slice(8), y, k, beta).loss / y.length;
    const num = (f(p) - f(m)) / (2 * h);
    assert.ok(Math.abs(num - cot[j]!) < 1e-5, `coordinate ${j}: numerical ${num}, analytic ${cot[j]}`);
  }
});

test('VjpTrainer with the CE cotangent gives the training graph\'s parameter gradients; TRADES trains', async () => {
  const net = buildArch('conv:4x3p1,relu,maxpool:2,flatten,dense:10', { seed: 2 });
  const d = await loadData('mnist:train[0:16]');
  const ts = await TrainingSession.create(net);
  const ref = await ts.step(d.x, d.y!, new Rng(0));
  const vt = await VjpTrainer.create(net);
  const f = await vt.logits(d.x, new Rng(0));
  const k = 10;
  const cot = new Float32Array(16 * k);
  for (let i = 0; i < 16; i++) {
    let m = -Infinity;
    for (let j = 0; j < k; j++) m = Math.max(m, f.logits[i * k + j]!);
    let s = 0;
    for (let j = 0; j < k; j++) s += Math.exp(f.logits[i * k + j]! - m);
    for (let j = 0; j < k; j++) cot[i * k + j] = Math.exp(f.logits[i * k + j]! - m) / s - (j === d.y![i] ? 1 : 0);
  }
  const g = await vt.vjp(d.x, cot, f.masks);
  g.forEach((gi, p) => {
    const r = ref.grads[p]!;
    let md = 0;
    let mx = 0;
    for (let j = 0; j < gi.length; j++) {
      md = Math.max(md, Math.abs(gi[j]! - r[j]!));
      mx = Math.max(mx, Math.abs(r[j]!));
    }
    assert.ok(md <= 1e-4 * mx + 1e-7, `parameter ${p}: ${md} of ${mx}`);
  });
  await ts.release();
  await vt.release();
  const res = await robustTrain(net, await loadData('mnist:train[0:256]'), { epochs: 1, batchSize: 64, adv: 'trades', eps: 0.1, advSteps: 2, progress: false });
  assert.ok(Number.isFinite(res.history[0]!.loss) && res.settings.tradesBeta === 6);
});

// CleverHans' CI check (REFERENCES.md): a few thousand MNIST images, 2 epochs, FGSM at eps 0.3 on 333 test images.
test('CI-sized: an FGSM-RS-trained cnn-small is far more robust under FGSM eps 0.3 than a clean-trained one', async () => {
  const data = await loadData('mnist:train[0:3000]');
  const test333 = await loadData('mnist:test[0:333]');
  const clean = buildArch('cnn-small', { seed: 1 });
  await train(clean, data, { epochs: 2, seed: 1, progress: false });
  const adv = buildArch('cnn-small', { seed: 1 });
  const r = await robustTrain(adv, data, { epochs: 2, seed: 1, progress: false, adv: 'fgsm-rs', eps: 0.3, cleanRatio: 0.5, overfitGuard: { n: 128, steps: 5 } });
  assert.equal(r.history.length, 2);
  assert.ok(r.history.every((h) => typeof h.guardPgdAccuracy === 'number'));
  const score = async (net: typeof clean) => {
    const m = new NetworkModel(net);
    const s = (await fgsm(m, test333.x, test333.y!, { eps: 0.3 })).summary;
    await m.dispose();
    return s;
  };
  const sc = await score(clean);
  const sa = await score(adv);
  console.log(`clean-trained: clean ${sc.cleanAccuracy.toFixed(3)} fgsm ${sc.robustAccuracy.toFixed(3)}; fgsm-rs-trained: clean ${sa.cleanAccuracy.toFixed(3)} fgsm ${sa.robustAccuracy.toFixed(3)}`);
  assert.ok(sc.cleanAccuracy > 0.9, `clean model clean accuracy ${sc.cleanAccuracy}`);
  assert.ok(sc.robustAccuracy < 0.15, `clean model FGSM accuracy ${sc.robustAccuracy}`);
  assert.ok(sa.cleanAccuracy > 0.85, `adversarially trained clean accuracy ${sa.cleanAccuracy}`);
  assert.ok(sa.robustAccuracy > 0.35, `adversarially trained FGSM accuracy ${sa.robustAccuracy}`);
  assert.ok(sa.robustAccuracy - sc.robustAccuracy > 0.25);
});

test('bulwark train --adv writes the model and a record with clean and robust accuracy per epoch', () => {
  const out = path.join(tmp, 'adv.onnx');
  const t = cli(['train', '--arch', 'mlp', '--data', 'mnist:train[0:600]', '--epochs', '2', '--val', 'mnist:test[0:100]', '--adv', 'pgd', '--eps', '0.1', '--adv-steps', '2', '--out', out, '--json']);
  assert.equal(t.code, 0, t.err);
  const rec = JSON.parse(fs.readFileSync(`${out}.train.json`, 'utf8'));
  assert.equal(rec.hardening.adv, 'pgd');
  assert.equal(rec.hardening.eps, 0.1);
  assert.equal(rec.history.length, 2);
  for (const h of rec.history) {
    assert.equal(typeof h.valAccuracy, 'number');
    assert.equal(typeof h.robustValAccuracy, 'number');
    assert.ok(h.robustValAccuracy <= h.valAccuracy);
  }
  assert.ok(fs.statSync(out).size > 1000);
  const bad = cli(['train', '--arch', 'mlp', '--data', 'mnist:train[0:100]', '--adv', 'pgd', '--out', out]);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /BULWARK_E_ARG.*eps/);
  const orphan = cli(['train', '--arch', 'mlp', '--data', 'mnist:train[0:100]', '--eps', '0.3', '--out', out]);
  assert.equal(orphan.code, 2);
  assert.match(orphan.err, /--eps needs --adv/);
});

test('robustTrain refuses bad settings with coded errors', async () => {
  const data = await loadData('mnist:train[0:100]');
  const net = buildArch('mlp');
  await assert.rejects(robustTrain(net, data, { epochs: 1, adv: 'pgd', eps: -1, progress: false }), /BULWARK_E_ARG|eps/);
  await assert.rejects(robustTrain(net, data, { epochs: 1, adv: 'fgsm-rs', eps: 0.3, advSteps: 5, progress: false }), /one step/);
  await assert.rejects(robustTrain(net, data, { epochs: 1, adv: 'trades', eps: 0.3, cleanRatio: 0.5, progress: false }), /clean term/);
  await assert.rejects(robustTrain(net, data, { epochs: 1, adv: 'bim' as never, eps: 0.3, progress: false }), /unknown adversarial/);
});
