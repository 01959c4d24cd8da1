/**
 * Randomized smoothing (Cohen, Rosenfeld & Kolter 2019, https://arxiv.org/abs/1902.02918): the smoothed classifier
 * g(x) = argmax_c P(f(x + δ) = c), δ ~ N(0, σ²I), with PREDICT (abstain unless a two-sided binomial test separates
 * the top two classes at level alpha) and CERTIFY (the top class from n0 samples, a one-sided Clopper-Pearson lower
 * bound pA on its probability from n fresh samples, abstain unless pA > 1/2, else the L2 radius σ·Φ⁻¹(pA)).
 */
import { BulwarkError } from '../../core/errors.js';
import { Rng } from '../../core/rng.js';
import { sizeOf, type Float32Tensor } from '../../core/tensor.js';
import { argmax, project } from '../geometry.js';
import { gradientModel } from '../runner.js';
import type { Model } from '../types.js';
import { binomialTestHalf, clopperPearsonLower, normalQuantile } from './stats.js';

const COHEN = 'Cohen et al. 2019, https://arxiv.org/abs/1902.02918';

/** Options of {@link smoothPredict} and {@link smoothCertify}. */
export interface SmoothingOptions {
  /** Noise std σ (> 0), in input units; should match the σ the base classifier was trained with. */
  sigma: number;
  /** Samples for the estimate (CERTIFY's n, PREDICT's n); default 100000 (Cohen et al.). */
  n?: number;
  /** Selection samples of CERTIFY; default 100. */
  n0?: number;
  /** Error probability; default 0.001. */
  alpha?: number;
  /** Noisy copies per model call; default 1000. */
  batchSize?: number;
  /** Seed of the noise; default 0. */
  seed?: number;
}

/** Sentinel class of an abstention. */
export const ABSTAIN = -1;

/** Result of {@link smoothCertify} for a set of examples. */
export interface CertifyResult {
  /** Predicted class per example, or {@link ABSTAIN}. */
  prediction: Int32Array;
  /** Certified L2 radius per example (0 when abstaining). */
  radius: Float64Array;
  /** Clopper-Pearson lower bound on p_A per example. */
  pALower: Float64Array;
  /** Count of the selected class among the n samples. */
  countA: Int32Array;
  abstentions: number;
  /** Warnings about settings that cannot certify (see {@link samplingWarnings}). */
  warnings: string[];
  settings: { sigma: number; n: number; n0: number; alpha: number; seed: number; paper: string };
  seconds: number;
}

function resolve(o: SmoothingOptions): Required<SmoothingOptions> {
  if (!(typeof o.sigma === 'number' && o.sigma > 0 && Number.isFinite(o.sigma))) {
    throw new BulwarkError('BULWARK_E_SMOOTHING', `sigma must be a positive number, got ${o.sigma}`, { hint: 'Pass the noise level the model was trained with (--noise-sigma), e.g. --sigma 0.25.' });
  }
  const r = { sigma: o.sigma, n: o.n ?? 100000, n0: o.n0 ?? 100, alpha: o.alpha ?? 0.001, batchSize: o.batchSize ?? 1000, seed: o.seed ?? 0 };
  for (const [k, v] of [['n', r.n], ['n0', r.n0], ['batchSize', r.batchSize]] as const) {
    if (!Number.isSafeInteger(v) || v < 1) throw new BulwarkError('BULWARK_E_SMOOTHING', `${k} must be an integer >= 1, got ${v}`);
  }
  if (!(r.alpha > 0 && r.alpha < 1)) throw new BulwarkError('BULWARK_E_SMOOTHING', `alpha must be in (0, 1), got ${r.alpha}`);
  return r;
}

/**
 * What n can do at level alpha: CERTIFY's best lower bound is alpha^(1/n) (all n samples agree), so it certifies
 * anything only when alpha^(1/n) > 1/2 (n > log2(1/alpha)), and then at most radius σ·Φ⁻¹(alpha^(1/n)); PREDICT's
 * smallest p-value is 2^(1−n), so it always abstains when 2^(1−n) > alpha.
 * @returns the largest certifiable radius in units of σ (0 if none) and human warnings
 * @example samplingWarnings(10, 0.001).maxRadiusOverSigma // 0.003: n = 10 is useless at alpha = 0.001
 */
export function samplingWarnings(n: number, alpha: number): { maxRadiusOverSigma: number; predictCanDecide: boolean; warnings: string[] } {
  const best = Math.pow(alpha, 1 / n);
  const maxR = best > 0.5 ? normalQuantile(best) : 0;
  const predictCanDecide = Math.pow(2, 1 - n) <= alpha;
  const warnings: string[] = [];
  const need = Math.ceil(Math.log2(1 / alpha) + 1e-12);
  if (maxR === 0) warnings.push(`n = ${n} can never certify at alpha = ${alpha}: even when all samples agree the lower bound is ${best.toFixed(4)} <= 0.5 (use n > ${need}; Cohen et al. use 100000)`);
  else if (maxR < 0.1) warnings.push(`n = ${n} at alpha = ${alpha} certifies at most radius ${maxR.toPrecision(3)}·sigma even when all samples agree (use n >= 1000; Cohen et al. use 100000)`);
  if (!predictCanDecide) warnings.push(`PREDICT with n = ${n} at alpha = ${alpha} always abstains: the smallest two-sided p-value is 2^(1-n) = ${Math.pow(2, 1 - n).toPrecision(3)} > alpha`);
  return { maxRadiusOverSigma: maxR, predictCanDecide, warnings };
}

/** Class counts of f(x + δ) over `num` noise draws, for one example. */
async function sampleCounts(model: Model, x: Float32Array, shape: number[], num: number, sigma: number, batchSize: number, rng: Rng): Promise<Int32Array> {
  const d = x.length;
  const k = model.numClasses;
  const counts = new Int32Array(k);
  for (let done = 0; done < num; ) {
    const b = Math.min(batchSize, num - done);
    const data = new Float32Array(b * d);
    for (let r = 0; r < b; r++) for (let j = 0; j < d; j++) data[r * d + j] = x[j]! + sigma * rng.normal();
    const pred = argmax(await model.predict({ data, shape: [b, ...shape], dtype: 'float32' }));
    for (const c of pred) counts[c]!++;
    done += b;
  }
  return counts;
}

function top2(counts: Int32Array): [number, number] {
  let a = 0;
  let b = -1;
  for (let c = 1; c < counts.length; c++) {
    if (counts[c]! > counts[a]!) {
      b = a;
      a = c;
    } else if (b < 0 || counts[c]! > counts[b]!) b = c;
  }
  return [a, b < 0 ? a : b];
}

/**
 * PREDICT (Cohen et al. 2019, Algorithm 1 left): n noisy samples; return the top class when a two-sided binomial
 * test of nA vs nB at p = 1/2 rejects at level alpha, else abstain. With probability ≥ 1 − alpha a returned class
 * is g(x).
 * @param model base classifier (any Model; only predict is used)
 * @param x inputs [N, ...]
 * @param opts sigma, n (default 100000), alpha, batch size, seed
 * @returns class per example or ABSTAIN
 * @throws BulwarkError BULWARK_E_SMOOTHING for sigma ≤ 0 or bad n / alpha
 */
export async function smoothPredict(model: Model, x: Float32Tensor, opts: SmoothingOptions): Promise<Int32Array> {
  const o = resolve(opts);
  const rng = new Rng(o.seed);
  const n = x.shape[0]!;
  const d = sizeOf(x.shape.slice(1));
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const counts = await sampleCounts(model, x.data.subarray(i * d, (i + 1) * d), x.shape.slice(1), o.n, o.sigma, o.batchSize, rng);
    const [a, b] = top2(counts);
    out[i] = binomialTestHalf(counts[a]!, counts[a]! + counts[b]!) <= o.alpha ? a : ABSTAIN;
  }
  return out;
}

/**
 * CERTIFY (Cohen et al. 2019, Algorithm 1 right): guess cA from n0 samples, then from n fresh samples the one-sided
 * Clopper-Pearson lower bound pA of P(f(x+δ) = cA) at level alpha; abstain if pA ≤ 1/2, else certify g(x) = cA
 * within L2 radius σ·Φ⁻¹(pA). With probability ≥ 1 − alpha per example, a certified answer is correct.
 * @param model base classifier (only predict is used)
 * @param x inputs [N, ...]
 * @param opts sigma, n, n0, alpha, batch size, seed
 * @returns per-example class, radius and bound, abstentions, warnings for hopeless n
 * @throws BulwarkError BULWARK_E_SMOOTHING for sigma ≤ 0 or bad n, n0, alpha
 * @example const c = await smoothCertify(model, x, { sigma: 0.25, n: 10000 }); certifiedAccuracy(c, y, [0.25, 0.5])
 */
export async function smoothCertify(model: Model, x: Float32Tensor, opts: SmoothingOptions): Promise<CertifyResult> {
  const o = resolve(opts);
  const t0 = performance.now();
  const rng = new Rng(o.seed);
  const n = x.shape[0]!;
  const d = sizeOf(x.shape.slice(1));
  const prediction = new Int32Array(n);
  const radius = new Float64Array(n);
  const pALower = new Float64Array(n);
  const countA = new Int32Array(n);
  let abstentions = 0;
  for (let i = 0; i < n; i++) {
    const xi = x.data.subarray(i * d, (i + 1) * d);
    const c0 = await sampleCounts(model, xi, x.shape.slice(1), o.n0, o.sigma, o.batchSize, rng);
    const cA = top2(c0)[0];
    const counts = await sampleCounts(model, xi, x.shape.slice(1), o.n, o.sigma, o.batchSize, rng);
    const nA = counts[cA]!;
    const p = clopperPearsonLower(nA, o.n, o.alpha);
    countA[i] = nA;
    pALower[i] = p;
    if (p > 0.5) {
      prediction[i] = cA;
      radius[i] = o.sigma * normalQuantile(p);
    } else {
      prediction[i] = ABSTAIN;
      abstentions++;
    }
  }
  return {
    prediction,
    radius,
    pALower,
    countA,
    abstentions,
    warnings: samplingWarnings(o.n, o.alpha).warnings.filter((w) => !w.startsWith('PREDICT')),
    settings: { sigma: o.sigma, n: o.n, n0: o.n0, alpha: o.alpha, seed: o.seed, paper: COHEN },
    seconds: (performance.now() - t0) / 1000,
  };
}

/**
 * Certified accuracy at each L2 radius: the fraction of examples certified correct with radius ≥ r (Cohen et al.'s
 * curve; abstentions and wrong certified classes count as failures).
 */
export function certifiedAccuracy(res: Pick<CertifyResult, 'prediction' | 'radius'>, y: ArrayLike<number>, radii: number[]): { radius: number; accuracy: number }[] {
  const n = y.length;
  return radii.map((r) => {
    let ok = 0;
    for (let i = 0; i < n; i++) if (res.prediction[i] === y[i] && res.radius[i]! >= r) ok++;
    return { radius: r, accuracy: n ? ok / n : 0 };
  });
}

/**
 * L2 PGD against the smoothed classifier (Salman et al. 2019, https://arxiv.org/abs/1906.04584, SmoothAdv): ascends
 * the cross-entropy of the Monte-Carlo soft classifier, its gradient averaged over `samples` noise draws per step.
 * @param model white-box base classifier
 * @param x inputs [N, ...]
 * @param y the class to move away from (the smoothed prediction)
 * @param o L2 radius per example, steps, noise samples, sigma, seed
 * @returns adversarial inputs within the per-example L2 radius and the bounds
 */
export async function smoothAdvPgd(model: Model, x: Float32Tensor, y: ArrayLike<number>, o: { eps: ArrayLike<number>; sigma: number; steps?: number; samples?: number; seed?: number }): Promise<Float32Tensor> {
  const gm = gradientModel(model);
  const n = x.shape[0]!;
  const d = sizeOf(x.shape.slice(1));
  const m = o.samples ?? 16;
  const steps = o.steps ?? 20;
  const rng = new Rng(o.seed ?? 0);
  const adv: Float32Tensor = { data: new Float32Array(x.data), shape: [...x.shape], dtype: 'float32' };
  for (let i = 0; i < n; i++) {
    const eps = o.eps[i]!;
    if (!(eps > 0)) continue;
    const x0: Float32Tensor = { data: x.data.slice(i * d, (i + 1) * d), shape: [1, ...x.shape.slice(1)], dtype: 'float32' };
    const cur: Float32Tensor = { data: x0.data.slice(), shape: x0.shape, dtype: 'float32' };
    const labels = new Int32Array(m).fill(y[i]!);
    for (let t = 0; t < steps; t++) {
      const batch = new Float32Array(m * d);
      for (let r = 0; r < m; r++) for (let j = 0; j < d; j++) batch[r * d + j] = cur.data[j]! + o.sigma * rng.normal();
      const g = (await gm.lossAndGradient({ data: batch, shape: [m, ...x.shape.slice(1)], dtype: 'float32' }, labels)).grad.data;
      const mean = new Float64Array(d);
      for (let r = 0; r < m; r++) for (let j = 0; j < d; j++) mean[j]! += g[r * d + j]!;
      let norm = 0;
      for (let j = 0; j < d; j++) norm += mean[j]! * mean[j]!;
      norm = Math.sqrt(norm) + 1e-12;
      const a = (2.5 * eps) / steps;
      for (let j = 0; j < d; j++) cur.data[j] = cur.data[j]! + (a * mean[j]!) / norm;
      project(cur, x0, 2, eps, model.bounds);
    }
    adv.data.set(cur.data, i * d);
  }
  return adv;
}
