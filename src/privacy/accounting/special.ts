/**
 * Special functions the accountants need, in float64 and in log space where values underflow: erfc and its log
 * (series below 2, Laplace's continued fraction above), the normal CDF and survival function, and signed log-sum
 * arithmetic. Written from the textbook definitions (Abramowitz & Stegun 7.1.5, 7.1.14).
 */

const SQRT_PI = Math.sqrt(Math.PI);
const LOG_SQRT_PI = 0.5 * Math.log(Math.PI);

/** erf(x) for |x| < ~3 by the positive-term series erf x = (2/√π) e^{−x²} Σ 2ⁿ x^{2n+1} / (1·3···(2n+1)) (A&S 7.1.6). */
function erfSeries(x: number): number {
  const x2 = x * x;
  let term = x;
  let sum = x;
  for (let n = 1; n < 500; n++) {
    term *= (2 * x2) / (2 * n + 1);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return ((2 / SQRT_PI) * Math.exp(-x2)) * sum;
}

/**
 * log of the continued-fraction factor K(x) in erfc x = e^{−x²}/√π · K(x), K = 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...))))
 * (A&S 7.1.14), evaluated by the modified Lentz method; for x >= 2.
 */
function logErfcCf(x: number): number {
  const tiny = 1e-300;
  let f = x;
  let c = x;
  let d = 0;
  for (let n = 1; n < 5000; n++) {
    const a = n / 2;
    d = x + a * d;
    d = d === 0 ? tiny : d;
    c = x + a / c;
    c = c === 0 ? tiny : c;
    d = 1 / d;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return -Math.log(f);
}

/** Complementary error function erfc(x) = 1 − erf(x), accurate in relative terms for large x (down to ~1e-308). */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x < 0) return 2 - erfc(-x);
  if (x < 2) return 1 - erfSeries(x);
  if (x > 27.3) return 0;
  return (Math.exp(-x * x) / SQRT_PI) * Math.exp(logErfcCf(x));
}

/** log erfc(x), finite for every finite x (≈ −x² − log(x√π) for large x). */
export function logErfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x < 2) return Math.log(erfc(x));
  return -x * x - LOG_SQRT_PI + logErfcCf(x);
}

/** Standard normal CDF Φ(x). */
export function normCdf(x: number): number {
  return 0.5 * erfc(-x / Math.SQRT2);
}

/** Standard normal survival function 1 − Φ(x), without cancellation for large x. */
export function normSf(x: number): number {
  return 0.5 * erfc(x / Math.SQRT2);
}

/** log(e^a + e^b) without overflow. */
export function logAdd(a: number, b: number): number {
  if (a === -Infinity) return b;
  if (b === -Infinity) return a;
  const m = Math.max(a, b);
  return m + Math.log1p(Math.exp(-Math.abs(a - b)));
}

/** log(e^a − e^b) for a >= b (−Infinity when equal). */
export function logSub(a: number, b: number): number {
  if (b === -Infinity) return a;
  if (a === b) return -Infinity;
  return a + Math.log(-Math.expm1(b - a));
}

/** A signed number kept as (sign, log |value|), for sums of alternating terms too large or small for a float. */
export interface SignedLog {
  sign: 1 | -1 | 0;
  log: number;
}

/** Adds a signed term (sign, log|t|) to a signed accumulator. */
export function addSignedLog(acc: SignedLog, sign: 1 | -1, logAbs: number): SignedLog {
  if (logAbs === -Infinity) return acc;
  if (acc.sign === 0) return { sign, log: logAbs };
  if (acc.sign === sign) return { sign, log: logAdd(acc.log, logAbs) };
  if (acc.log > logAbs) return { sign: acc.sign, log: logSub(acc.log, logAbs) };
  if (acc.log < logAbs) return { sign, log: logSub(logAbs, acc.log) };
  return { sign: 0, log: -Infinity };
}
