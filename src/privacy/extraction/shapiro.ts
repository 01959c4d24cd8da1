/**
 * The Shapiro-Wilk normality test with Royston's approximations (Royston 1992, "Approximating the Shapiro-Wilk
 * W-test for non-normality", Statistics and Computing 2:117-119; Royston 1995, Applied Statistics algorithm AS R94),
 * the statistic PRADA runs on its distance stream. Valid for 3 <= n <= 5000.
 */
import { BulwarkError } from '../../core/errors.js';

/** Result of {@link shapiroWilk}. */
export interface ShapiroWilkResult {
  /** The W statistic in (0, 1]; small values mean non-normal. */
  w: number;
  /** Royston's p-value for the null hypothesis that the sample is normal. */
  p: number;
  n: number;
}

/** Standard normal CDF (erfc through the Numerical Recipes Chebyshev fit, relative error < 1.2e-7). */
export function normalCdf(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.5 * x);
  const erfc = t * Math.exp(-x * x - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return z >= 0 ? 1 - erfc / 2 : erfc / 2;
}

/** Standard normal quantile (Wichura 1988, AS241 PPND16, about 1e-16 relative accuracy). */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) {
    if (p === 0) return -Infinity;
    if (p === 1) return Infinity;
    throw new BulwarkError('BULWARK_E_ARG', `normalQuantile needs p in [0, 1], got ${p}`);
  }
  const q = p - 0.5;
  if (Math.abs(q) <= 0.425) {
    const r = 0.180625 - q * q;
    return (q * (((((((2509.0809287301226727 * r + 33430.575583588128105) * r + 67265.770927008700853) * r + 45921.953931549871457) * r + 13731.693765509461125) * r + 1971.5909503065514427) * r + 133.14166789178437745) * r + 3.387132872796366608)) /
      (((((((5226.495278852545925 * r + 28729.085735721942674) * r + 39307.89580009271061) * r + 21213.794301586595867) * r + 5394.1960214247511077) * r + 687.1870074920579083) * r + 42.313330701600911252) * r + 1);
  }
  let r = q < 0 ? p : 1 - p;
  r = Math.sqrt(-Math.log(r));
  let v: number;
  if (r <= 5) {
    r -= 1.6;
    v = (((((((7.7454501427834140764e-4 * r + 0.0227238449892691845833) * r + 0.24178072517745061177) * r + 1.27045825245236838258) * r + 3.64784832476320460504) * r + 5.7694972214606914055) * r + 4.6303378461565452959) * r + 1.42343711074968357734) /
      (((((((1.05075007164441684324e-9 * r + 5.475938084995344946e-4) * r + 0.0151986665636164571966) * r + 0.14810397642748007459) * r + 0.68976733498510000455) * r + 1.6763848301838038494) * r + 2.05319162663775882187) * r + 1);
  } else {
    r -= 5;
    v = (((((((2.01033439929228813265e-7 * r + 2.71155556874348757815e-5) * r + 0.0012426609473880784386) * r + 0.026532189526576123093) * r + 0.29656057182850489123) * r + 1.7848265399172913358) * r + 5.4637849111641143699) * r + 6.6579046435011037772) /
      (((((((2.04426310338993978564e-15 * r + 1.4215117583164458887e-7) * r + 1.8463183175100546818e-5) * r + 7.868691311456132591e-4) * r + 0.0148753612908506148525) * r + 0.13692988092273580531) * r + 0.59983220655588793769) * r + 1);
  }
  return q < 0 ? -v : v;
}

function poly(c: readonly number[], x: number): number {
  let s = 0;
  for (let i = c.length - 1; i >= 0; i--) s = s * x + c[i]!;
  return s;
}

/**
 * Shapiro-Wilk W and its p-value (Royston's approximation of the coefficients and of W's null distribution).
 * @param sample values (not modified); 3 to 5000 of them, not all equal
 * @returns W, p and n
 * @throws BulwarkError BULWARK_E_ARG for fewer than 3 or more than 5000 values, non-finite values, or zero range
 * @example shapiroWilk([2.1, 1.9, 2.4, 2.0, 1.7]).w
 */
export function shapiroWilk(sample: ArrayLike<number>): ShapiroWilkResult {
  const n = sample.length;
  if (n < 3 || n > 5000) throw new BulwarkError('BULWARK_E_ARG', `the Shapiro-Wilk test needs 3 to 5000 values, got ${n}`);
  const x = Float64Array.from(sample).sort();
  if (!x.every(Number.isFinite)) throw new BulwarkError('BULWARK_E_ARG', 'the Shapiro-Wilk sample holds a non-finite value');
  if (x[n - 1]! - x[0]! < 1e-19 * Math.max(1, Math.abs(x[0]!))) throw new BulwarkError('BULWARK_E_ARG', 'the Shapiro-Wilk sample has zero range (all values equal)');
  const a = new Float64Array(n);
  if (n === 3) {
    a[0] = -Math.SQRT1_2;
    a[2] = Math.SQRT1_2;
  } else {
    const m = new Float64Array(n);
    let mm = 0;
    for (let i = 0; i < n; i++) {
      m[i] = normalQuantile((i + 1 - 0.375) / (n + 0.25));
      mm += m[i]! * m[i]!;
    }
    const u = 1 / Math.sqrt(n);
    const rs = Math.sqrt(mm);
    const an = m[n - 1]! / rs + poly([0, 0.221157, -0.147981, -2.07119, 4.434685, -2.706056], u);
    if (n > 5) {
      const an1 = m[n - 2]! / rs + poly([0, 0.042981, -0.293762, -1.752461, 5.682633, -3.582633], u);
      const phi = (mm - 2 * m[n - 1]! ** 2 - 2 * m[n - 2]! ** 2) / (1 - 2 * an ** 2 - 2 * an1 ** 2);
      const s = Math.sqrt(phi);
      for (let i = 2; i < n - 2; i++) a[i] = m[i]! / s;
      a[n - 1] = an;
      a[n - 2] = an1;
      a[0] = -an;
      a[1] = -an1;
    } else {
      const phi = (mm - 2 * m[n - 1]! ** 2) / (1 - 2 * an ** 2);
      const s = Math.sqrt(phi);
      for (let i = 1; i < n - 1; i++) a[i] = m[i]! / s;
      a[n - 1] = an;
      a[0] = -an;
    }
  }
  let mean = 0;
  for (let i = 0; i < n; i++) mean += x[i]!;
  mean /= n;
  let ss = 0;
  let num = 0;
  for (let i = 0; i < n; i++) {
    ss += (x[i]! - mean) ** 2;
    num += a[i]! * x[i]!;
  }
  const w = Math.min(1, (num * num) / ss);
  return { w, p: shapiroP(w, n), n };
}

/** Royston's normalizing transformation of W to a p-value. */
function shapiroP(w: number, n: number): number {
  if (n === 3) {
    // Exact for n = 3: p = (6/pi)(asin(sqrt(W)) - asin(sqrt(3/4))).
    return Math.max(0, Math.min(1, (6 / Math.PI) * (Math.asin(Math.sqrt(w)) - Math.asin(Math.sqrt(0.75)))));
  }
  const w1 = Math.log(1 - w);
  if (!Number.isFinite(w1)) return 1;
  let z: number;
  if (n <= 11) {
    const gamma = -2.273 + 0.459 * n;
    const mu = poly([0.544, -0.39978, 0.025054, -6.714e-4], n);
    const sigma = Math.exp(poly([1.3822, -0.77857, 0.062767, -0.0020322], n));
    const inner = gamma - w1;
    if (inner <= 0) return 0;
    z = (-Math.log(inner) - mu) / sigma;
  } else {
    const ln = Math.log(n);
    const mu = poly([-1.5861, -0.31082, -0.083751, 0.0038915], ln);
    const sigma = Math.exp(poly([-0.4803, -0.082676, 0.0030302], ln));
    z = (w1 - mu) / sigma;
  }
  return 1 - normalCdf(z);
}
