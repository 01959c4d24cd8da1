import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { BulwarkError } from '../../src/core/errors.js';
import {
  calibrateNoise,
  computeEpsilon,
  DEFAULT_ALPHAS,
  erfc,
  fft,
  normCdf,
  prvEpsilon,
  rdpSampledGaussian,
} from '../../src/privacy/accounting/index.js';
import { repoRoot } from '../helpers.js';

/**
 * Equal to `digits` significant figures: within half a unit of the last kept digit of the reference. (Comparing
 * rounded strings fails on references that sit on a rounding boundary: 5.2985 vs 5.29853.)
 */
function assertSig(actual: number, expected: number, digits: number, what: string): void {
  const unit = 10 ** (Math.floor(Math.log10(Math.abs(expected))) - digits + 1);
  assert.ok(Math.abs(actual - expected) <= unit / 2, `${what}: ${actual} vs ${expected} to ${digits} significant figures`);
}

const code = (c: string) => (e: unknown) => e instanceof BulwarkError && e.code === c;

// shared/REFERENCES.md, "Privacy accounting", delta = 1e-5.
const RDP_TABLE: { q: number; sigma: number; steps: number; balle: number; alpha?: number; classic: number; source: string }[] = [
  { q: 0.04, sigma: 1.5, steps: 2250, balle: 7.32911117143, alpha: 3.9, classic: 8.0738, source: 'Opacus tests/accountants_test.py' },
  { q: 150 / 60000, sigma: 1.3, steps: 6000, balle: 0.7242234026109595, alpha: 19, classic: 0.9419, source: 'TF Privacy compute_dp_sgd_privacy_test.py' },
  { q: 240 / 60000, sigma: 1.3, steps: 3750, balle: 0.922, classic: 1.1597, source: 'Opacus MNIST example' },
  { q: 1, sigma: 1, steps: 1, balle: 4.7285, classic: 5.2985, source: 'RDP(alpha) = alpha/(2 sigma^2)' },
  { q: 0.01, sigma: 1, steps: 1000, balle: 2.1014, classic: 2.538, source: "Opacus' accountant" },
  { q: 0.01, sigma: 1, steps: 10000, balle: 6.7127, classic: 7.429, source: "Opacus' accountant" },
];

test('alpha grid is Opacus\' [1 + x/10 for x in 1..99] + [12..63]', () => {
  assert.equal(DEFAULT_ALPHAS.length, 151);
  assert.equal(DEFAULT_ALPHAS[0], 1.1);
  assert.equal(DEFAULT_ALPHAS[98], 10.9);
  assert.equal(DEFAULT_ALPHAS[99], 12);
  assert.equal(DEFAULT_ALPHAS[150], 63);
});

test('RDP accountant equals the REFERENCES.md table to 4 significant figures (Balle 2020 and classic conversions)', () => {
  for (const r of RDP_TABLE) {
    const p = { sampleRate: r.q, noiseMultiplier: r.sigma, steps: r.steps, delta: 1e-5 };
    const balle = computeEpsilon(p);
    const classic = computeEpsilon(p, { conversion: 'classic' });
    assertSig(balle.epsilon, r.balle, 4, `Balle, ${r.source}`);
    assertSig(classic.epsilon, r.classic, 4, `classic, ${r.source}`);
    if (r.alpha !== undefined) assert.equal(balle.alpha, r.alpha, r.source);
  }
  // The two published full-precision values hold to 9 figures, not just 4.
  assertSig(computeEpsilon({ sampleRate: 0.04, noiseMultiplier: 1.5, steps: 2250, delta: 1e-5 }).epsilon, 7.32911117143, 9, 'Opacus');
  assertSig(computeEpsilon({ sampleRate: 150 / 60000, noiseMultiplier: 1.3, steps: 6000, delta: 1e-5 }).epsilon, 0.7242234026109595, 9, 'TF Privacy');
});

test('RDP of one step: q = 1 is alpha/(2 sigma^2); integer and fractional orders join continuously; q = 0 is free', () => {
  assert.equal(rdpSampledGaussian(1, 2, 3), 3 / 8);
  assert.equal(rdpSampledGaussian(0, 2, 3), 0);
  for (const a of [2, 3, 7, 20]) {
    const at = rdpSampledGaussian(0.05, 1.1, a);
    const near = rdpSampledGaussian(0.05, 1.1, a + 1e-7);
    assert.ok(Math.abs(near - at) / at < 1e-5, `alpha ${a}: ${at} vs ${near}`);
  }
  // Monotone in alpha, q and 1/sigma.
  assert.ok(rdpSampledGaussian(0.05, 1, 4.5) < rdpSampledGaussian(0.05, 1, 5.5));
  assert.ok(rdpSampledGaussian(0.02, 1, 4.5) < rdpSampledGaussian(0.05, 1, 4.5));
  assert.ok(rdpSampledGaussian(0.05, 2, 4.5) < rdpSampledGaussian(0.05, 1, 4.5));
});

test('special functions: erfc against reference values, including deep tails', () => {
  const ref: [number, number][] = [[0, 1], [0.5, 0.4795001221869535], [1, 0.157299207050285], [2, 0.004677734981047266], [3, 2.209049699858544e-5], [5, 1.5374597944280349e-12], [10, 2.088487583762545e-45], [-1, 1.842700792949715]];
  for (const [x, v] of ref) assert.ok(Math.abs(erfc(x) - v) / v < 1e-13, `erfc(${x}) = ${erfc(x)}, want ${v}`);
  assert.ok(Math.abs(normCdf(1.959963984540054) - 0.975) < 1e-15);
});

test('FFT equals a direct DFT', () => {
  const n = 16;
  const re = Float64Array.from({ length: n }, (_, i) => Math.sin(i * 1.3) + i / 7);
  const im = Float64Array.from({ length: n }, (_, i) => Math.cos(i * 0.7));
  const r2 = new Float64Array(re);
  const i2 = new Float64Array(im);
  fft(r2, i2);
  for (let k = 0; k < n; k++) {
    let sr = 0;
    let si = 0;
    for (let j = 0; j < n; j++) {
      const a = (-2 * Math.PI * j * k) / n;
      sr += re[j]! * Math.cos(a) - im[j]! * Math.sin(a);
      si += re[j]! * Math.sin(a) + im[j]! * Math.cos(a);
    }
    assert.ok(Math.abs(sr - r2[k]!) < 1e-12 && Math.abs(si - i2[k]!) < 1e-12, `bin ${k}`);
  }
  fft(r2, i2, true);
  for (let j = 0; j < n; j++) assert.ok(Math.abs(r2[j]! - re[j]!) < 1e-14);
});

test('PRV accountant: Opacus\' reported values (its upper bound) to 4 and 3 significant figures, bounds bracket the estimate', () => {
  // REFERENCES.md: q=0.04, sigma=1.5, 2249 steps: 6.7774; q=240/60000, sigma=1.3, 3750 steps: 0.844 (eps_error 0.01).
  // Opacus' PRVAccountant returns the upper end of its interval, so that is what `epsilon` holds.
  const a = computeEpsilon({ sampleRate: 0.04, noiseMultiplier: 1.5, steps: 2249, delta: 1e-5 }, { accountant: 'prv' });
  assertSig(a.epsilon, 6.7774, 4, 'PRV q=0.04');
  assert.ok(a.lower! < a.estimate! && a.estimate! < a.epsilon && a.epsilon - a.lower! < 0.021, JSON.stringify(a));
  // PRV is tighter than RDP on the same run.
  assert.ok(a.epsilon < computeEpsilon({ sampleRate: 0.04, noiseMultiplier: 1.5, steps: 2249, delta: 1e-5 }).epsilon);
  const b = computeEpsilon({ sampleRate: 240 / 60000, noiseMultiplier: 1.3, steps: 3750, delta: 1e-5 }, { accountant: 'prv' });
  assertSig(b.epsilon, 0.844, 3, 'PRV q=240/60000');
});

test('PRV accountant on the plain Gaussian (q = 1) matches the closed form to 1e-4', () => {
  // delta(eps) = Phi(-eps/mu + mu/2) - e^eps Phi(-eps/mu - mu/2), mu = sqrt(k)/sigma (Balle & Wang 2018).
  for (const [sigma, k] of [[1, 1], [2, 10], [5, 100]] as const) {
    const mu = Math.sqrt(k) / sigma;
    const delta = (e: number) => normCdf(-e / mu + mu / 2) - Math.exp(e) * normCdf(-e / mu - mu / 2);
    let lo = 0;
    let hi = 50;
    for (let i = 0; i < 100; i++) {
      const m = (lo + hi) / 2;
      if (delta(m) > 1e-5) lo = m;
      else hi = m;
    }
    const r = prvEpsilon(1, sigma, k, 1e-5);
    assert.ok(Math.abs(r.epsilon - lo) < 1e-4, `sigma ${sigma}, k ${k}: ${r.epsilon} vs ${lo}`);
    assert.ok(r.epsilonLower <= lo && lo <= r.epsilonUpper);
  }
});

test('noise calibration: target eps 8 at q=0.04 over 90 epochs (RDP) gives sigma 1.416 (Opacus)', () => {
  const c = calibrateNoise(8, { sampleRate: 0.04, steps: Math.round(90 / 0.04), delta: 1e-5 });
  assertSig(c.noiseMultiplier, 1.416, 4, 'sigma');
  assert.ok(c.epsilon.epsilon <= 8 && c.epsilon.epsilon > 7.999, String(c.epsilon.epsilon));
  // A hair less noise overshoots the target.
  assert.ok(computeEpsilon({ sampleRate: 0.04, noiseMultiplier: c.noiseMultiplier * (1 - 1e-4), steps: 2250, delta: 1e-5 }).epsilon > 8);
});

test('bad input: delta >= 1, sample rate outside (0, 1], sigma <= 0, unreachable target', () => {
  const ok = { sampleRate: 0.01, noiseMultiplier: 1, steps: 100, delta: 1e-5 };
  for (const delta of [1, 1.5, 0, -1e-5, NaN]) assert.throws(() => computeEpsilon({ ...ok, delta }), code('BULWARK_E_ARG'), `delta ${delta}`);
  for (const sampleRate of [0, -0.1, 1.0001, NaN]) assert.throws(() => computeEpsilon({ ...ok, sampleRate }), code('BULWARK_E_ARG'), `q ${sampleRate}`);
  for (const noiseMultiplier of [0, -1, Infinity]) assert.throws(() => computeEpsilon({ ...ok, noiseMultiplier }), code('BULWARK_E_ARG'), `sigma ${noiseMultiplier}`);
  assert.throws(() => computeEpsilon({ ...ok, steps: 1.5 }), code('BULWARK_E_ARG'));
  assert.throws(() => computeEpsilon(ok, { accountant: 'moments' as never }), code('BULWARK_E_ARG'));
  // With delta 1e-5 and alphas up to 63 the Balle bound never goes below ~0.103, however large sigma is.
  assert.throws(() => calibrateNoise(0.05, { sampleRate: 0.04, steps: 2250, delta: 1e-5 }), (e: unknown) => code('BULWARK_E_DP_ACCOUNTING')(e) && /no noise multiplier up to 1000 reaches epsilon 0.05/.test((e as Error).message));
  assert.throws(() => calibrateNoise(-1, { sampleRate: 0.04, steps: 10, delta: 1e-5 }), code('BULWARK_E_ARG'));
  assert.equal(computeEpsilon({ ...ok, steps: 0 }).epsilon, 0);
});

function cli(args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [path.join(repoRoot, 'bin', 'bulwark.js'), ...args], { encoding: 'utf8' });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

test('CLI: dp epsilon --json ends in {"epsilon", "alpha"}; dp calibrate; bad input exits 2 with a code and a hint', () => {
  const e = cli(['dp', 'epsilon', '--sample-rate', '0.04', '--noise-multiplier', '1.5', '--steps', '2250', '--delta', '1e-5', '--json']);
  assert.equal(e.code, 0, e.err);
  const last = JSON.parse(e.out.trim().split('\n').pop()!);
  assertSig(last.epsilon, 7.32911117143, 6, 'cli eps');
  assert.equal(last.alpha, 3.9);
  const c = cli(['dp', 'epsilon', '--sample-rate', '150/60000', '--noise-multiplier', '1.3', '--steps', '6000', '--delta', '1e-5', '--conversion', 'classic', '--json']);
  assertSig(JSON.parse(c.out.trim().split('\n').pop()!).epsilon, 0.9419, 4, 'cli classic');
  const k = cli(['dp', 'calibrate', '--target-epsilon', '8', '--sample-rate', '0.04', '--steps', '2250', '--delta', '1e-5', '--json']);
  assert.equal(k.code, 0, k.err);
  assertSig(JSON.parse(k.out.trim().split('\n').pop()!).noiseMultiplier, 1.416, 4, 'cli calibrate');
  for (const bad of [
    ['epsilon', '--sample-rate', '0.04', '--noise-multiplier', '1.5', '--steps', '10', '--delta', '1'],
    ['epsilon', '--sample-rate', '1.5', '--noise-multiplier', '1.5', '--steps', '10', '--delta', '1e-5'],
    ['epsilon', '--sample-rate', '0.04', '--noise-multiplier', '0', '--steps', '10', '--delta', '1e-5'],
    ['calibrate', '--target-epsilon', '0.01', '--sample-rate', '0.04', '--steps', '2250', '--delta', '1e-5'],
    ['epsilon', '--sample-rate', '0.04', '--steps', '10', '--delta', '1e-5'],
    ['frobnicate'],
  ]) {
    const r = cli(['dp', ...bad]);
    assert.equal(r.code, 2, `${bad.join(' ')}: ${r.err}`);
    assert.match(r.err, /^bulwark: BULWARK_E_[A-Z_]+: .+\nhint: /, bad.join(' '));
    assert.doesNotMatch(r.err, /\n\s+at /, 'no stack trace');
  }
});
