import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { repoRoot } from '../helpers.js';
import { loadData } from '../../src/data/index.js';
import { buildArch } from '../../src/nn/zoo.js';
import { NetworkModel } from '../../src/evasion/defense/model.js';
import { robustTrain } from '../../src/evasion/defense/adversarial.js';
import { ABSTAIN, certifiedAccuracy, samplingWarnings, smoothAdvPgd, smoothCertify, smoothPredict } from '../../src/evasion/defense/smoothing.js';
import { betaQuantile, binomialCdf, binomialTestHalf, clopperPearsonLower, clopperPearsonUpper, normalCdf, normalQuantile, regIncBeta } from '../../src/evasion/defense/stats.js';

/** P(X ≤ k) by direct summation in log space (the reference). */
function cdfBySum(k: number, n: number, p: number): number {
  const lf = [0];
  for (let i = 1; i <= n; i++) lf.push(lf[i - 1]! + Math.log(i));
  let s = 0;
  for (let j = 0; j <= k; j++) s += Math.exp(lf[n]! - lf[j]! - lf[n - j]! + j * Math.log(p) + (n - j) * Math.log1p(-p));
  return s;
}

test('exact binomial CDF, Clopper-Pearson bounds and normal quantiles against references', () => {
  for (const [k, n, p] of [[3, 10, 0.5], [50, 100, 0.3], [3, 200, 0.1], [190, 200, 0.97], [0, 7, 0.5], [499, 1000, 0.5]] as const) {
    const ref = cdfBySum(k, n, p);
    assert.ok(Math.abs(binomialCdf(k, n, p) - ref) <= 1e-12 + 1e-10 * ref, `cdf(${k}, ${n}, ${p})`);
  }
  assert.equal(binomialCdf(3, 10, 0.5).toFixed(12), '0.171875000000');
  // all n agree: the bound is alpha^(1/n)
  assert.ok(Math.abs(clopperPearsonLower(10, 10, 0.001) - Math.pow(0.001, 0.1)) < 1e-12);
  assert.ok(Math.abs(clopperPearsonUpper(0, 10, 0.001) - (1 - Math.pow(0.001, 0.1))) < 1e-12);
  // the bound is the p at which observing >= k has probability alpha
  for (const [k, n, a] of [[37, 100, 0.001], [99990, 100000, 0.001], [600, 1000, 0.05]] as const) {
    const lo = clopperPearsonLower(k, n, a);
    assert.ok(Math.abs(1 - binomialCdf(k - 1, n, lo) - a) < 1e-9 * Math.max(1, a * 1e3), `tail at the bound for ${k}/${n}`);
  }
  assert.ok(Math.abs(regIncBeta(betaQuantile(0.3, 2.5, 7), 2.5, 7) - 0.3) < 1e-12);
  assert.equal(binomialTestHalf(10, 10).toPrecision(6), '0.00195312');
  assert.ok(Math.abs(normalCdf(1.96) - 0.9750021048517795) < 1e-15);
  assert.ok(Math.abs(normalCdf(-8) - 6.22096057427178e-16) < 1e-27);
  assert.ok(Math.abs(normalQuantile(0.975) - 1.959963984540054) < 1e-13);
  assert.ok(Math.abs(normalQuantile(1e-10) + 6.361340902404056) < 1e-11);
});

test('n = 10 at alpha = 0.001 is flagged: PREDICT always abstains and CERTIFY reaches at most 0.003 sigma', () => {
  const w = samplingWarnings(10, 0.001);
  assert.equal(w.predictCanDecide, false);
  assert.ok(w.maxRadiusOverSigma > 0 && w.maxRadiusOverSigma < 0.01);
  assert.equal(w.warnings.length, 2);
  assert.equal(samplingWarnings(9, 0.001).maxRadiusOverSigma, 0);
  assert.deepEqual(samplingWarnings(100000, 0.001).warnings, []);
});

test('sigma <= 0 and bad n / alpha are coded errors', async () => {
  const m = new NetworkModel(buildArch('mlp'));
  const x = (await loadData('mnist:test[0:1]')).x;
  for (const o of [{ sigma: 0 }, { sigma: -1 }, { sigma: 0.25, n: 0 }, { sigma: 0.25, alpha: 1 }]) {
    await assert.rejects(smoothCertify(m, x, o), (e: { code?: string }) => e.code === 'BULWARK_E_SMOOTHING');
  }
});

test('no certified example is broken by an L2 attack on the smoothed classifier within its certified radius', async () => {
  const sigma = 0.5;
  const net = buildArch('mlp', { seed: 2 });
  await robustTrain(net, await loadData('mnist:train[0:3000]'), { epochs: 2, seed: 2, noiseSigma: sigma, progress: false });
  const model = new NetworkModel(net);
  const d = await loadData('mnist:test[0:24]');
  const cert = await smoothCertify(model, d.x, { sigma, n: 2000, n0: 64, alpha: 0.001, seed: 3 });
  const certified = Array.from(cert.prediction, (c, i) => (c === ABSTAIN ? -1 : i)).filter((i) => i >= 0);
  const acc = certifiedAccuracy(cert, d.y!, [0, 0.25, 0.5, 1]);
  console.log(`certified ${certified.length}/24, abstained ${cert.abstentions}; certified accuracy ${acc.map((a) => `${a.radius}: ${a.accuracy.toFixed(2)}`).join(', ')}`);
  assert.ok(certified.length >= 12, 'most examples certify');
  assert.ok(acc[0]!.accuracy >= 0.6 && acc[2]!.accuracy > 0);
  // attack each certified example at (just under) its radius, against its smoothed prediction
  const eps = certified.map((i) => cert.radius[i]! * 0.999);
  const row = 784;
  const xs = { data: new Float32Array(certified.length * row), shape: [certified.length, 1, 28, 28], dtype: 'float32' as const };
  certified.forEach((i, r) => xs.data.set(d.x.data.subarray(i * row, (i + 1) * row), r * row));
  const ys = Int32Array.from(certified, (i) => cert.prediction[i]!);
  const adv = await smoothAdvPgd(model, xs, ys, { eps, sigma, steps: 10, samples: 16, seed: 5 });
  const after = await smoothPredict(model, adv, { sigma, n: 2000, alpha: 0.001, seed: 7 });
  const broken = Array.from(after).filter((c, r) => c !== ABSTAIN && c !== ys[r]).length;
  assert.equal(broken, 0, 'a certified example was broken inside its radius');
  // the same attack with 4x the radius does flip some: it has teeth
  const big = await smoothAdvPgd(model, xs, ys, { eps: eps.map((e) => Math.max(4 * e, 2)), sigma, steps: 10, samples: 16, seed: 5 });
  const afterBig = await smoothPredict(model, big, { sigma, n: 500, alpha: 0.001, seed: 7 });
  const flipped = Array.from(afterBig).filter((c, r) => c !== ys[r]).length;
  console.log(`inside the radius: 0 broken of ${certified.length}; at max(4R, 2): ${flipped} changed or abstained`);
  assert.ok(flipped > 0);
  await model.dispose();
});

test('bulwark certify: sigma <= 0 exits 2 with a coded error; n = 10 warns and reports abstentions in JSON', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-certify-'));
  try {
    const model = path.join(dir, 'm.onnx');
    buildArch('mlp', { seed: 1 }).saveOnnx(model);
    const cli = (args: string[]) => spawnSync(process.execPath, [path.join(repoRoot, 'bin', 'bulwark.js'), 'certify', '--model', model, '--data', 'mnist:test[0:2]', ...args], { encoding: 'utf8' });
    const bad = cli(['--sigma', '0']);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /BULWARK_E_SMOOTHING/);
    const ok = cli(['--sigma', '0.25', '--n', '10', '--n0', '5', '--json']);
    assert.equal(ok.status, 0, ok.stderr);
    const out = JSON.parse(ok.stdout.trim().split('\n').pop()!);
    assert.equal(out.n, 10);
    assert.equal(out.examples, 2);
    assert.equal(typeof out.abstentions, 'number');
    assert.ok(out.warnings.some((w: string) => /0\.00298/.test(w)));
    assert.equal(out.certifiedAccuracy.length, 7);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
