/**
 * Exact binomial tail probabilities and Clopper-Pearson bounds, computed through the regularized incomplete beta
 * function (Lentz's continued fraction, Numerical Recipes §6.4) with a Lanczos log-gamma, plus the standard normal
 * CDF and its inverse. Everything in float64 and in log space where the values underflow.
 */

const LANCZOS = [676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];

/** ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9: about 15 significant digits). */
export function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - logGamma(1 - x);
  const z = x - 1;
  let a = 0.99999999999980993;
  const t = z + 7.5;
  for (let i = 0; i < 8; i++) a += LANCZOS[i]! / (z + i + 1);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Continued fraction of I_x(a, b) (modified Lentz), valid for x < (a+1)/(a+b+2). */
function betaCf(x: number, a: number, b: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 10000; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-16) break;
  }
  return h;
}

/**
 * The regularized incomplete beta function I_x(a, b) = P(Beta(a, b) ≤ x).
 * @param x in [0, 1]
 * @param a > 0
 * @param b > 0
 */
export function regIncBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const lbt = logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log1p(-x);
  if (x < (a + 1) / (a + b + 2)) return (Math.exp(lbt) * betaCf(x, a, b)) / a;
  return 1 - (Math.exp(lbt) * betaCf(1 - x, b, a)) / b;
}

/**
 * P(X ≤ k) for X ~ Binomial(n, p), exact: I_{1−p}(n − k, k + 1).
 * @example binomialCdf(3, 10, 0.5) // 0.171875
 */
export function binomialCdf(k: number, n: number, p: number): number {
  if (k < 0) return 0;
  if (k >= n) return 1;
  if (p <= 0) return 1;
  if (p >= 1) return 0;
  return regIncBeta(1 - p, n - k, k + 1);
}

/**
 * Quantile of Beta(a, b): the x with I_x(a, b) = q, by bisection on the monotone CDF (to 1e-15 in x; bisection
 * cannot diverge where Newton steps on a steep CDF would).
 */
export function betaQuantile(q: number, a: number, b: number): number {
  if (q <= 0) return 0;
  if (q >= 1) return 1;
  let lo = 0;
  let hi = 1;
  for (let i = 0; i < 200 && hi - lo > 1e-15; i++) {
    const mid = 0.5 * (lo + hi);
    if (regIncBeta(mid, a, b) < q) lo = mid;
    else hi = mid;
  }
  return 0.5 * (lo + hi);
}

/**
 * One-sided Clopper-Pearson lower confidence bound on a binomial proportion: with probability ≥ 1 − alpha the
 * true p is at least the bound. Equals the lower end of the two-sided exact interval at level 1 − 2·alpha (as
 * Cohen et al.'s `proportion_confint(k, n, alpha=2*alpha, method="beta")[0]`).
 * @param k successes, 0 ≤ k ≤ n
 * @param n trials
 * @param alpha error probability in (0, 1)
 */
export function clopperPearsonLower(k: number, n: number, alpha: number): number {
  if (k <= 0) return 0;
  return betaQuantile(alpha, k, n - k + 1);
}

/** One-sided Clopper-Pearson upper bound (see {@link clopperPearsonLower}). */
export function clopperPearsonUpper(k: number, n: number, alpha: number): number {
  if (k >= n) return 1;
  return betaQuantile(1 - alpha, k + 1, n - k);
}

/**
 * Two-sided exact binomial test of H0: p = 1/2 (scipy's binomtest for p = 0.5, where the distribution is
 * symmetric): min(1, 2·P(X ≤ min(k, n − k))).
 */
export function binomialTestHalf(k: number, n: number): number {
  return Math.min(1, 2 * binomialCdf(Math.min(k, n - k), n, 0.5));
}

/** Standard normal CDF Φ(x) by W. J. Cody's rational approximations (double precision; as R's pnorm). */
export function normalCdf(x: number): number {
  // Cody 1969 (as in R's pnorm): |x| ≤ 0.67449, ≤ √32, beyond.
  const a = [2.2352520354606839287, 161.02823106855587881, 1067.6894854603709582, 18154.981253343561249, 0.065682337918207449113];
  const b = [47.20258190468824187, 976.09855173777669322, 10260.932208618978205, 45507.789335026729956];
  const c = [0.39894151208813466764, 8.8831497943883759412, 93.506656132177855979, 597.27027639480026226, 2494.5375852903726711, 6848.1904505362823326, 11602.651437647350124, 9842.7148383839780218, 1.0765576773720192317e-8];
  const d = [22.266688044328115691, 235.38790178262499861, 1519.377599407554805, 6485.558298266760755, 18615.571640885098091, 34900.952721145977266, 38912.003286093271411, 19685.429676859990727];
  const p = [0.21589853405795699, 0.1274011611602473639, 0.022235277870649807, 0.001421619193227893466, 2.9112874951168792e-5, 0.02307344176494017303];
  const q = [1.28426009614491121, 0.468238212480865118, 0.0659881378689285515, 0.00378239633202758244, 7.29751555083966205e-5];
  const y = Math.abs(x);
  if (y <= 0.67448975) {
    const z = y > 1.11e-16 ? x * x : 0;
    let xn = a[4]! * z;
    let xd = z;
    for (let i = 0; i < 3; i++) {
      xn = (xn + a[i]!) * z;
      xd = (xd + b[i]!) * z;
    }
    const t = (x * (xn + a[3]!)) / (xd + b[3]!);
    return 0.5 + t;
  }
  let tail: number;
  if (y <= Math.sqrt(32)) {
    let xn = c[8]! * y;
    let xd = y;
    for (let i = 0; i < 7; i++) {
      xn = (xn + c[i]!) * y;
      xd = (xd + d[i]!) * y;
    }
    const r = (xn + c[7]!) / (xd + d[7]!);
    const xsq = Math.trunc(y * 16) / 16;
    tail = Math.exp(-xsq * xsq * 0.5) * Math.exp(-(y - xsq) * (y + xsq) * 0.5) * r;
  } else {
    const z = 1 / (x * x);
    let xn = p[5]! * z;
    let xd = z;
    for (let i = 0; i < 4; i++) {
      xn = (xn + p[i]!) * z;
      xd = (xd + q[i]!) * z;
    }
    let r = (z * (xn + p[4]!)) / (xd + q[4]!);
    r = (0.3989422804014327 - r) / y;
    const xsq = Math.trunc(y * 16) / 16;
    tail = Math.exp(-xsq * xsq * 0.5) * Math.exp(-(y - xsq) * (y + xsq) * 0.5) * r;
  }
  return x > 0 ? 1 - tail : tail;
}

/**
 * Φ⁻¹(p): Acklam's rational approximation refined by two Halley steps on {@link normalCdf} (about 1e-15 relative).
 * @param p in (0, 1)
 */
export function normalQuantile(p: number): number {
  if (p <= 0) return -Infinity;
  if (p >= 1) return Infinity;
  const a = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
  const b = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
  const c = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const lo = 0.02425;
  let x: number;
  if (p < lo) {
    const q = Math.sqrt(-2 * Math.log(p));
    x = (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) / ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  } else if (p <= 1 - lo) {
    const q = p - 0.5;
    const r = q * q;
    x = ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) / (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1);
  } else {
    const q = Math.sqrt(-2 * Math.log1p(-p));
    x = -(((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) / ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  }
  for (let i = 0; i < 2; i++) {
    const e = normalCdf(x) - p;
    const u = e * Math.sqrt(2 * Math.PI) * Math.exp((x * x) / 2);
    x = x - u / (1 + (x * u) / 2);
  }
  return x;
}
