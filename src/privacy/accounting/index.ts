/**
 * Privacy accountants for DP-SGD: RDP of the sampled Gaussian mechanism (with the Balle et al. 2020 or the classic
 * conversion), the PRV accountant, and noise calibration for a target ε.
 */
import { BulwarkError } from '../../core/errors.js';
import { prvEpsilon, type PrvOptions } from './prv.js';
import { computeRdp, DEFAULT_ALPHAS, rdpToEpsilon, type RdpConversion } from './rdp.js';

export { DEFAULT_ALPHAS, computeRdp, rdpSampledGaussian, rdpToEpsilon, type RdpConversion, type RdpEpsilon } from './rdp.js';
export { prvEpsilon, epsilonFromPmf, type PrvOptions, type PrvResult } from './prv.js';
export { fft, selfConvolve } from './fft.js';
export { erfc, logErfc, normCdf, normSf } from './special.js';

/** Accountant names. */
export const ACCOUNTANTS = ['rdp', 'prv'] as const;
export type AccountantName = (typeof ACCOUNTANTS)[number];

/** The parameters of a DP-SGD run that accounting needs. */
export interface DpParams {
  /** Poisson sampling rate q in (0, 1]. */
  sampleRate: number;
  /** Noise multiplier σ > 0 (noise std = σ · max grad norm). */
  noiseMultiplier: number;
  /** Steps taken (integer >= 0). */
  steps: number;
  /** Target δ in (0, 1). */
  delta: number;
}

/** Options of {@link computeEpsilon}. */
export interface EpsilonOptions {
  /** Default rdp. */
  accountant?: AccountantName;
  /** RDP conversion; default balle. */
  conversion?: RdpConversion;
  /** RDP orders; default {@link DEFAULT_ALPHAS}. */
  alphas?: readonly number[];
  /** PRV precision. */
  prv?: PrvOptions;
}

/** ε of a run with the accountant's details. */
export interface EpsilonResult {
  /** The guarantee: RDP's ε, or the PRV accountant's upper bound (as Opacus reports). */
  epsilon: number;
  delta: number;
  accountant: AccountantName;
  /** RDP: the order attaining the bound; PRV: null. */
  alpha: number | null;
  /** RDP only: which conversion. */
  conversion?: RdpConversion;
  /** PRV only: the estimate and the lower bound (epsilon holds the upper bound). */
  estimate?: number;
  lower?: number;
}

/**
 * Validates accounting parameters.
 * @throws BulwarkError BULWARK_E_ARG naming the parameter out of range
 */
export function checkDpParams(p: DpParams): void {
  if (!(p.sampleRate > 0 && p.sampleRate <= 1)) throw new BulwarkError('BULWARK_E_ARG', `sample rate must be in (0, 1], got ${p.sampleRate}`, { hint: 'The sample rate q is the expected batch size divided by the dataset size.' });
  if (!(p.noiseMultiplier > 0 && Number.isFinite(p.noiseMultiplier))) throw new BulwarkError('BULWARK_E_ARG', `noise multiplier must be a positive number, got ${p.noiseMultiplier}`, { hint: 'Without noise (sigma 0) there is no privacy guarantee; DP-SGD typically uses sigma 0.5 to 2.' });
  if (!(Number.isSafeInteger(p.steps) && p.steps >= 0)) throw new BulwarkError('BULWARK_E_ARG', `steps must be an integer >= 0, got ${p.steps}`);
  checkDelta(p.delta);
}

function checkDelta(delta: number): void {
  if (!(delta > 0 && delta < 1)) throw new BulwarkError('BULWARK_E_ARG', `delta must be in (0, 1), got ${delta}`, { hint: 'Pick delta well below 1/N for N training examples, e.g. 1e-5.' });
}

/**
 * ε at δ of DP-SGD with Poisson sampling.
 * @param p sample rate, noise multiplier, steps, δ
 * @param opts accountant (rdp or prv) and its options
 * @returns ε and how it was obtained
 * @throws BulwarkError BULWARK_E_ARG for parameters out of range
 * @example computeEpsilon({ sampleRate: 0.04, noiseMultiplier: 1.5, steps: 2250, delta: 1e-5 }).epsilon // 7.3291
 */
export function computeEpsilon(p: DpParams, opts: EpsilonOptions = {}): EpsilonResult {
  checkDpParams(p);
  const accountant = opts.accountant ?? 'rdp';
  if (!(ACCOUNTANTS as readonly string[]).includes(accountant)) throw new BulwarkError('BULWARK_E_ARG', `unknown accountant ${JSON.stringify(accountant)}; use rdp or prv`);
  if (p.steps === 0) return { epsilon: 0, delta: p.delta, accountant, alpha: null };
  if (accountant === 'prv') {
    const r = prvEpsilon(p.sampleRate, p.noiseMultiplier, p.steps, p.delta, opts.prv);
    return { epsilon: r.epsilonUpper, delta: p.delta, accountant, alpha: null, estimate: r.epsilon, lower: r.epsilonLower };
  }
  const conversion = opts.conversion ?? 'balle';
  if (conversion !== 'balle' && conversion !== 'classic') throw new BulwarkError('BULWARK_E_ARG', `unknown RDP conversion ${JSON.stringify(conversion)}; use balle or classic`);
  const alphas = opts.alphas ?? DEFAULT_ALPHAS;
  const r = rdpToEpsilon(alphas, computeRdp(p.sampleRate, p.noiseMultiplier, p.steps, alphas), p.delta, conversion);
  return { epsilon: r.epsilon, delta: p.delta, accountant, alpha: r.alpha, conversion };
}

/** Options of {@link calibrateNoise}. */
export interface CalibrateOptions extends EpsilonOptions {
  /** Largest noise multiplier tried; default 1000. */
  maxNoise?: number;
  /** Relative precision of σ; default 1e-6. */
  tolerance?: number;
}

/** A calibrated noise multiplier. */
export interface Calibration {
  /** The smallest σ found (to the tolerance) whose ε does not exceed the target. */
  noiseMultiplier: number;
  /** ε at that σ (<= target). */
  epsilon: EpsilonResult;
}

/**
 * Finds the smallest noise multiplier whose ε (at δ, after `steps` steps at rate q) is at most the target, by
 * bisection on σ (ε decreases as σ grows). The σ returned is the upper end of the final bracket, so its ε never
 * exceeds the target.
 * @param target target ε > 0
 * @param p sample rate, steps and δ
 * @param opts accountant, largest σ, tolerance
 * @throws BulwarkError BULWARK_E_DP_ACCOUNTING when even σ = maxNoise does not reach the target; BULWARK_E_ARG
 * @example calibrateNoise(8, { sampleRate: 0.04, steps: 2250, delta: 1e-5 }).noiseMultiplier // ≈ 1.416
 */
export function calibrateNoise(target: number, p: Omit<DpParams, 'noiseMultiplier'>, opts: CalibrateOptions = {}): Calibration {
  if (!(target > 0 && Number.isFinite(target))) throw new BulwarkError('BULWARK_E_ARG', `target epsilon must be a positive number, got ${target}`);
  checkDpParams({ ...p, noiseMultiplier: 1 });
  const maxNoise = opts.maxNoise ?? 1000;
  const tol = opts.tolerance ?? 1e-6;
  const eps = (sigma: number) => computeEpsilon({ ...p, noiseMultiplier: sigma }, opts);
  let hi = 1;
  let atHi = eps(hi);
  while (atHi.epsilon > target) {
    if (hi >= maxNoise) {
      throw new BulwarkError('BULWARK_E_DP_ACCOUNTING', `no noise multiplier up to ${maxNoise} reaches epsilon ${target} at delta ${p.delta} with sample rate ${p.sampleRate} over ${p.steps} steps (sigma ${maxNoise} gives epsilon ${atHi.epsilon.toPrecision(4)})`, {
        hint: 'Raise the target epsilon or delta, train for fewer steps, or lower the sample rate (smaller expected batches).',
      });
    }
    hi = Math.min(maxNoise, hi * 2);
    atHi = eps(hi);
  }
  let lo = 0;
  if (hi === 1) {
    lo = 0.5;
    while (eps(lo).epsilon <= target && lo > 1e-3) {
      hi = lo;
      lo /= 2;
    }
    atHi = eps(hi);
  } else lo = hi / 2;
  while ((hi - lo) / hi > tol) {
    const mid = 0.5 * (lo + hi);
    const at = eps(mid);
    if (at.epsilon <= target) {
      hi = mid;
      atHi = at;
    } else lo = mid;
  }
  return { noiseMultiplier: hi, epsilon: atHi };
}
