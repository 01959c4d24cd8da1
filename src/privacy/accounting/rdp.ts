/**
 * Rényi DP of the Poisson-sampled Gaussian mechanism (Mironov, Talwar & Zhang 2019, "Rényi Differential Privacy of
 * the Sampled Gaussian Mechanism", arXiv:1908.10530), and conversions from RDP to (ε, δ)-DP.
 *
 * With μ₀ = N(0, σ²), μ₁ = N(1, σ²) and μ = (1 − q)μ₀ + qμ₁, the RDP of one step at order α is
 * log A_α / (α − 1), A_α = E_{z∼μ₀}[(μ(z)/μ₀(z))^α]. Integer α: the binomial expansion (MTZ §3.2). Fractional α:
 * the two convergent series split at z₀ = σ² log(1/q − 1) + 1/2 (MTZ §3.3). Every term is summed in log space, the
 * alternating tails of the fractional series with their signs.
 */
import { BulwarkError } from '../../core/errors.js';
import { addSignedLog, logAdd, logErfc, type SignedLog } from './special.js';

/** Opacus' default orders: 1 + x/10 for x in 1..99, then 12..63 (151 orders). */
export const DEFAULT_ALPHAS: readonly number[] = Object.freeze([
  ...Array.from({ length: 99 }, (_, i) => 1 + (i + 1) / 10),
  ...Array.from({ length: 52 }, (_, i) => 12 + i),
]);

/** How RDP is turned into (ε, δ)-DP. */
export type RdpConversion = 'balle' | 'classic';

function logBinomInt(n: number, k: number): number {
  return lgammaInt(n + 1) - lgammaInt(k + 1) - lgammaInt(n - k + 1);
}

/** log Γ(m) = log (m−1)! for integer m >= 1, exact summation (orders here are small). */
const logFactCache: number[] = [0];
function lgammaInt(m: number): number {
  for (let i = logFactCache.length; i < m; i++) logFactCache[i] = logFactCache[i - 1]! + Math.log(i);
  return logFactCache[m - 1]!;
}

/** log A_α for integer α >= 2: Σ_k C(α,k) (1−q)^{α−k} q^k exp((k² − k)/(2σ²)). */
function logAInt(q: number, sigma: number, alpha: number): number {
  let acc = -Infinity;
  const logQ = Math.log(q);
  const log1Q = Math.log1p(-q);
  for (let k = 0; k <= alpha; k++) {
    const t = logBinomInt(alpha, k) + (alpha - k === 0 ? 0 : (alpha - k) * log1Q) + k * logQ + (k * k - k) / (2 * sigma * sigma);
    acc = logAdd(acc, t);
  }
  return acc;
}

/** log A_α for fractional α > 1 by MTZ 2019 §3.3 (both series until their terms fall 40 nats below the sum). */
function logAFrac(q: number, sigma: number, alpha: number): number {
  const s2 = 2 * sigma * sigma;
  const logQ = Math.log(q);
  const log1Q = Math.log1p(-q);
  const z0 = sigma * sigma * Math.log(1 / q - 1) + 0.5;
  const scale = Math.SQRT2 * sigma;
  let a1: SignedLog = { sign: 0, log: -Infinity };
  let a2: SignedLog = { sign: 0, log: -Infinity };
  // C(α, i) kept as sign and log magnitude, updated by C(α, i+1) = C(α, i)·(α − i)/(i + 1).
  let coefSign: 1 | -1 = 1;
  let logCoef = 0;
  for (let i = 0; i < 100000; i++) {
    const j = alpha - i;
    const t1 = logCoef + i * logQ + j * log1Q + (i * i - i) / s2 + Math.log(0.5) + logErfc((i - z0) / scale);
    const t2 = logCoef + j * logQ + i * log1Q + (j * j - j) / s2 + Math.log(0.5) + logErfc((z0 - j) / scale);
    a1 = addSignedLog(a1, coefSign, t1);
    a2 = addSignedLog(a2, coefSign, t2);
    const total = Math.max(a1.log, a2.log);
    if (i > alpha && Math.max(t1, t2) < total - 40) break;
    const factor = alpha - i;
    if (factor < 0) coefSign = coefSign === 1 ? -1 : 1;
    logCoef += Math.log(Math.abs(factor)) - Math.log(i + 1);
  }
  if (a1.sign < 0 || a2.sign < 0) throw new BulwarkError('BULWARK_E_INTERNAL', `RDP series for q=${q}, sigma=${sigma}, alpha=${alpha} did not converge to a positive value`);
  return logAdd(a1.log, a2.log);
}

/**
 * RDP ε(α) of one step of the Poisson-sampled Gaussian mechanism with sampling rate q and noise multiplier σ
 * (sensitivity 1, noise std σ).
 * @param q sampling rate in [0, 1]
 * @param sigma noise multiplier > 0
 * @param alpha order > 1
 * @returns the RDP at order α (Infinity when σ = 0)
 * @example rdpSampledGaussian(1, 1, 2) // α/(2σ²) = 1
 */
export function rdpSampledGaussian(q: number, sigma: number, alpha: number): number {
  if (q === 0) return 0;
  if (sigma === 0) return Infinity;
  if (q === 1) return alpha / (2 * sigma * sigma);
  if (!Number.isFinite(alpha)) return Infinity;
  const logA = Number.isInteger(alpha) ? logAInt(q, sigma, alpha) : logAFrac(q, sigma, alpha);
  return Math.max(0, logA / (alpha - 1));
}

/**
 * RDP of `steps` compositions of the sampled Gaussian mechanism at each order.
 * @param q sampling rate in (0, 1]
 * @param sigma noise multiplier > 0
 * @param steps number of steps (integer >= 0)
 * @param alphas orders; default {@link DEFAULT_ALPHAS}
 * @returns one RDP value per order
 */
export function computeRdp(q: number, sigma: number, steps: number, alphas: readonly number[] = DEFAULT_ALPHAS): Float64Array {
  return Float64Array.from(alphas, (a) => steps * rdpSampledGaussian(q, sigma, a));
}

/** The (ε, α) an RDP curve gives at δ. */
export interface RdpEpsilon {
  epsilon: number;
  /** The order that attains the minimum. */
  alpha: number;
}

/**
 * Converts an RDP curve to (ε, δ)-DP and picks the best order.
 *  - balle (default): ε = ρ(α) + log((α−1)/α) − (log δ + log α)/(α − 1) (Balle et al. 2020, "Hypothesis Testing
 *    Interpretations and Renyi Differential Privacy", Theorem 21), as current Opacus and TF Privacy;
 *  - classic: ε = ρ(α) + log(1/δ)/(α − 1) (Mironov 2017, Proposition 3).
 * @param alphas the orders
 * @param rdp RDP at each order
 * @param delta target δ in (0, 1)
 * @param conversion which bound
 * @returns the smallest ε over the orders and its α
 */
export function rdpToEpsilon(alphas: readonly number[], rdp: ArrayLike<number>, delta: number, conversion: RdpConversion = 'balle'): RdpEpsilon {
  let best: RdpEpsilon = { epsilon: Infinity, alpha: NaN };
  const logDelta = Math.log(delta);
  for (let i = 0; i < alphas.length; i++) {
    const a = alphas[i]!;
    const r = rdp[i]!;
    if (!Number.isFinite(r)) continue;
    const eps = conversion === 'classic' ? r - logDelta / (a - 1) : r + Math.log1p(-1 / a) - (logDelta + Math.log(a)) / (a - 1);
    if (eps < best.epsilon) best = { epsilon: eps, alpha: a };
  }
  return { epsilon: Math.max(0, best.epsilon), alpha: best.alpha };
}
