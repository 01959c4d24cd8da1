/**
 * The PRV accountant (Gopi, Lee & Wutschitz 2021, "Numerical Composition of Differential Privacy",
 * arXiv:2106.02848) for the Poisson-subsampled Gaussian mechanism.
 *
 * The privacy loss random variable of one step is Y = log(P(t)/Q(t)), t ∼ P, for the dominating pair
 * P = (1 − q)N(0, σ²) + qN(1, σ²), Q = N(0, σ²): Y = log(1 − q + q·exp((2t − 1)/(2σ²))), so
 * Pr[Y <= y] = (1 − q)Φ(z/σ) + qΦ((z − 1)/σ) with z = σ² log((e^y − 1 + q)/q) + 1/2.
 * Composition adds independent copies, and δ(ε) = E[(1 − e^{ε − Y_total})₊].
 *
 * Steps: (1) discretize Y on a grid of mesh h, bin masses from the CDF (or the survival function, for tail bins),
 * each bin's mass at its centre, then shift every point by one constant so the discrete mean equals the truncated
 * mean; (2) compose by FFT on a circular grid wide enough that the total's window holds all but a negligible tail
 * (upper tail bounded with the RDP Chernoff bound, lower tail by Pr[Y_total < −t] <= e^{−t}); (3) read δ(ε) from the
 * composed mass function and solve for ε. Rounding errors have mean zero and width h per step, so by Hoeffding the
 * composed error exceeds ε_error with probability at most η when h = ε_error / √(k/2 · log(2/η)); this gives the
 * reported bounds ε_lower <= ε <= ε_upper.
 */
import { BulwarkError } from '../../core/errors.js';
import { selfConvolve } from './fft.js';
import { computeRdp, DEFAULT_ALPHAS, rdpToEpsilon } from './rdp.js';
import { normCdf, normSf } from './special.js';

/** Options of {@link prvEpsilon}. */
export interface PrvOptions {
  /** Half-width of the ε interval the discretization guarantees; default 0.01 (Opacus' default). */
  epsError?: number;
  /** δ slack of the bounds; default δ/1000. */
  deltaError?: number;
  /** Largest FFT length (power of two); default 2^23. A finer requested mesh raises BULWARK_E_DP_ACCOUNTING. */
  maxGridSize?: number;
}

/** What the PRV accountant reports. */
export interface PrvResult {
  /** The estimate: ε of the discretized composition at δ. */
  epsilon: number;
  /** A lower bound on the true ε at δ. */
  epsilonLower: number;
  /** An upper bound on the true ε at δ. */
  epsilonUpper: number;
  delta: number;
  epsError: number;
  deltaError: number;
  /** Grid mesh h. */
  mesh: number;
  /** FFT length. */
  gridSize: number;
}

interface Prv {
  cdf(y: number): number;
  sf(y: number): number;
  /** Smallest value of the support (log(1 − q)). */
  lower: number;
}

function subsampledGaussianPrv(q: number, sigma: number): Prv {
  const lower = q === 1 ? -Infinity : Math.log1p(-q);
  const z = (y: number): number => (q === 1 ? sigma * sigma * y + 0.5 : sigma * sigma * (Math.log(Math.expm1(y) + q) - Math.log(q)) + 0.5);
  return {
    lower,
    cdf: (y) => {
      if (y <= lower) return 0;
      const zz = z(y);
      return (1 - q) * normCdf(zz / sigma) + q * normCdf((zz - 1) / sigma);
    },
    sf: (y) => {
      if (y <= lower) return 1;
      const zz = z(y);
      return (1 - q) * normSf(zz / sigma) + q * normSf((zz - 1) / sigma);
    },
  };
}

/** Smallest y with sf(y) <= tail, by bisection. */
function upperQuantile(prv: Prv, tail: number): number {
  let lo = Number.isFinite(prv.lower) ? prv.lower : -1;
  let hi = Math.max(1, lo + 1);
  while (prv.sf(hi) > tail) hi = 2 * hi + 1;
  while (prv.cdf(lo) > tail && !Number.isFinite(prv.lower)) lo = 2 * lo - 1;
  for (let i = 0; i < 200 && hi - lo > 1e-12 * Math.max(1, Math.abs(hi)); i++) {
    const mid = 0.5 * (lo + hi);
    if (prv.sf(mid) > tail) lo = mid;
    else hi = mid;
  }
  return hi;
}

/** Largest y with cdf(y) <= tail (the support's start for q < 1). */
function lowerQuantile(prv: Prv, tail: number): number {
  if (Number.isFinite(prv.lower)) return prv.lower;
  let lo = -1;
  while (prv.cdf(lo) > tail) lo = 2 * lo - 1;
  let hi = lo + 1;
  while (prv.cdf(hi) <= tail) hi += 1;
  for (let i = 0; i < 200; i++) {
    const mid = 0.5 * (lo + hi);
    if (prv.cdf(mid) <= tail) lo = mid;
    else hi = mid;
  }
  return lo;
}

/**
 * ε at δ of `steps` compositions of the Poisson-subsampled Gaussian mechanism, by the PRV accountant.
 * @param q sampling rate in (0, 1]
 * @param sigma noise multiplier > 0
 * @param steps number of steps (integer >= 1)
 * @param delta target δ in (0, 1)
 * @param opts ε error (default 0.01), δ error (default δ/1000), largest grid
 * @returns the estimate and its bounds
 * @throws BulwarkError BULWARK_E_DP_ACCOUNTING when the requested precision needs a grid larger than maxGridSize
 * @example prvEpsilon(0.04, 1.5, 2249, 1e-5).epsilon // ≈ 6.777 (Opacus: 6.7774)
 */
export function prvEpsilon(q: number, sigma: number, steps: number, delta: number, opts: PrvOptions = {}): PrvResult {
  const epsError = opts.epsError ?? 0.01;
  const deltaError = opts.deltaError ?? delta / 1000;
  const k = steps;
  if (!(epsError > 0) || !(deltaError > 0 && deltaError < delta)) {
    throw new BulwarkError('BULWARK_E_ARG', `PRV errors must be positive with deltaError < delta; got epsError ${epsError}, deltaError ${deltaError}, delta ${delta}`);
  }
  const prv = subsampledGaussianPrv(q, sigma);
  // The δ slack is split: half for the Hoeffding bound on rounding, half for truncation and wrap-around.
  const eta = deltaError / 2;
  const tail = deltaError / 1000;
  const mesh = epsError / Math.sqrt((k / 2) * Math.log(2 / eta));

  // One step's support, cut where the dropped mass is negligible over k steps.
  const yLo = lowerQuantile(prv, tail / (2 * k));
  const yHi = upperQuantile(prv, tail / (2 * k));
  // The composed window: above by the RDP Chernoff bound Pr[Y_total >= t] <= exp((α−1)(k·rdp(α) − t)), below by
  // Pr[Y_total <= −t] <= E_P[Q/P]·e^{−t} <= e^{−t}.
  const tUp = rdpToEpsilon(DEFAULT_ALPHAS, computeRdp(q, sigma, k), tail, 'classic').epsilon + 1;
  const tLow = -(Math.log(1 / tail) + 1);
  const width = Math.max(tUp - tLow, yHi - yLo) + 4 * mesh;
  let size = 1;
  while (size * mesh < width) size *= 2;
  const maxGrid = opts.maxGridSize ?? 1 << 23;
  if (size > maxGrid) {
    throw new BulwarkError('BULWARK_E_DP_ACCOUNTING', `the PRV accountant needs a grid of ${size} points for eps error ${epsError} over ${k} steps (limit ${maxGrid})`, {
      hint: 'Raise the eps error (e.g. 0.05), or use --accountant rdp for very long runs.',
    });
  }

  // Bins centred on i·h; the mass of [i·h − h/2, i·h + h/2), from the CDF below the median, the survival above.
  const iLo = Math.floor(yLo / mesh + 0.5);
  const iHi = Math.ceil(yHi / mesh - 0.5);
  const pmf = new Float64Array(size);
  let total = 0;
  let meanCorrection = 0;
  let prevEdge = (iLo - 0.5) * mesh;
  let prevF = prv.cdf(prevEdge);
  let prevS = prv.sf(prevEdge);
  for (let i = iLo; i <= iHi; i++) {
    const edge = (i + 0.5) * mesh;
    const mid = i * mesh;
    const fB = prv.cdf(edge);
    const sB = prv.sf(edge);
    const useSf = prevF > 0.5;
    const mass = useSf ? prevS - sB : fB - prevF;
    // ∫_bin (y − y_i) dF = (h/3)(F(a) + F(b) − 2F(y_i)) by Simpson's rule (and the same with −S).
    const curv = useSf ? -(prevS + sB - 2 * prv.sf(mid)) : prevF + fB - 2 * prv.cdf(mid);
    if (mass > 0) {
      pmf[((i % size) + size) % size]! += mass;
      total += mass;
      meanCorrection += (mesh / 3) * curv;
    }
    prevF = fB;
    prevS = sB;
  }
  const shift = meanCorrection / total;

  const composed = selfConvolve(pmf, k);
  // Decode circular indices into the window [tLow, tLow + size·h) of the composed (unshifted) grid.
  const base = Math.floor((tLow - k * shift) / mesh) - 1;
  const values = new Float64Array(size);
  const probs = new Float64Array(size);
  for (let r = 0; r < size; r++) {
    const i = base + r;
    values[r] = i * mesh + k * shift;
    probs[r] = Math.max(0, composed[((i % size) + size) % size]!);
  }
  const truncated = 1 - Math.min(1, total) ** k;
  const slack = eta + truncated + tail;
  const epsAt = (d: number): number => epsilonFromPmf(values, probs, d);
  const epsilon = epsAt(delta);
  const upper = delta - slack > 0 ? epsAt(delta - slack) + epsError : Infinity;
  const lower = Math.max(0, epsAt(delta + slack) - epsError);
  return { epsilon, epsilonLower: lower, epsilonUpper: upper, delta, epsError, deltaError, mesh, gridSize: size };
}

/**
 * Solves δ(ε) = Σ_v p(v)(1 − e^{ε − v})₊ = δ for ε >= 0 on a discrete distribution with increasing values.
 * Between two support points δ(ε) = P − e^ε·E (P, E the tail sums of p and p·e^{−v}), so each segment is solved exactly.
 */
export function epsilonFromPmf(values: Float64Array, probs: Float64Array, delta: number): number {
  let p = 0;
  let e = 0;
  for (let r = values.length - 1; r >= 0; r--) {
    const v = values[r]!;
    if (v <= 0) break;
    p += probs[r]!;
    e += probs[r]! * Math.exp(-v);
    const prev = r > 0 ? Math.max(0, values[r - 1]!) : 0;
    // δ(ε) for ε in [prev, v): P − e^ε·E
    if (p - Math.exp(prev) * e > delta) {
      return Math.max(prev, Math.min(v, Math.log((p - delta) / e)));
    }
  }
  return 0;
}
