/**
 * A small in-place radix-2 FFT over split real/imaginary Float64Arrays (iterative Cooley-Tukey with a bit-reversal
 * permutation), enough to compose privacy-loss distributions by convolution.
 */
import { BulwarkError } from '../../core/errors.js';

/**
 * In-place FFT of length n (a power of two): X_k = Σ_j x_j e^{∓2πi jk/n}; the inverse (`inverse = true`) also
 * divides by n.
 * @param re real parts, replaced by the transform's
 * @param im imaginary parts, replaced by the transform's
 * @param inverse compute the inverse transform
 * @throws BulwarkError BULWARK_E_INTERNAL when the length is not a power of two
 */
export function fft(re: Float64Array, im: Float64Array, inverse = false): void {
  const n = re.length;
  if (n !== im.length || (n & (n - 1)) !== 0) throw new BulwarkError('BULWARK_E_INTERNAL', `fft needs two arrays of one power-of-two length, got ${n} and ${im.length}`);
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      let t = re[i]!;
      re[i] = re[j]!;
      re[j] = t;
      t = im[i]!;
      im[i] = im[j]!;
      im[j] = t;
    }
  }
  // Twiddles are computed once per size from cos/sin, not by repeated multiplication (which drifts).
  const sign = inverse ? 1 : -1;
  const cosT = new Float64Array(n >> 1);
  const sinT = new Float64Array(n >> 1);
  for (let k = 0; k < n >> 1; k++) {
    cosT[k] = Math.cos((2 * Math.PI * k) / n);
    sinT[k] = sign * Math.sin((2 * Math.PI * k) / n);
  }
  for (let len = 2; len <= n; len <<= 1) {
    const half = len >> 1;
    const stride = n / len;
    for (let start = 0; start < n; start += len) {
      for (let k = 0; k < half; k++) {
        const wr = cosT[k * stride]!;
        const wi = sinT[k * stride]!;
        const a = start + k;
        const b = a + half;
        const xr = re[b]! * wr - im[b]! * wi;
        const xi = re[b]! * wi + im[b]! * wr;
        re[b] = re[a]! - xr;
        im[b] = im[a]! - xi;
        re[a] = re[a]! + xr;
        im[a] = im[a]! + xi;
      }
    }
  }
  if (inverse) {
    for (let i = 0; i < n; i++) {
      re[i]! /= n;
      im[i]! /= n;
    }
  }
}

/**
 * The k-fold circular self-convolution of a real sequence (length a power of two): FFT, raise each coefficient to
 * the k-th power in polar form, inverse FFT.
 * @param p the sequence (e.g. a probability mass function on a circular grid)
 * @param k the number of copies (integer >= 1)
 * @returns the real part of the result
 */
export function selfConvolve(p: Float64Array, k: number): Float64Array {
  const re = new Float64Array(p);
  const im = new Float64Array(p.length);
  fft(re, im);
  for (let i = 0; i < re.length; i++) {
    const mag = Math.hypot(re[i]!, im[i]!);
    if (mag === 0) continue;
    const m = Math.exp(k * Math.log(mag));
    const phase = k * Math.atan2(im[i]!, re[i]!);
    re[i] = m * Math.cos(phase);
    im[i] = m * Math.sin(phase);
  }
  fft(re, im, true);
  return re;
}
