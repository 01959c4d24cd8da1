/**
 * Per-example perturbation geometry shared by the runner and the attacks: norms, projections onto eps-balls
 * intersected with the input box, steepest-ascent directions. Tensors are [N, ...] float32; work is row by row.
 */
import type { Float32Tensor } from '../core/tensor.js';
import type { Norm, PerturbationNorms } from './types.js';

/** Elements per example of a [N, ...] tensor. */
export function rowSize(t: { shape: number[] }): number {
  let d = 1;
  for (let i = 1; i < t.shape.length; i++) d *= t.shape[i]!;
  return d;
}

/** A float32 tensor with the shape of `t` (copy of its data, or zeros). */
export function like(t: Float32Tensor, data?: Float32Array): Float32Tensor {
  return { data: data ?? new Float32Array(t.data.length), shape: [...t.shape], dtype: 'float32' };
}

/** A copy of a tensor. */
export function clone(t: Float32Tensor): Float32Tensor {
  return like(t, new Float32Array(t.data));
}

/** Spatial positions per example for L0-over-pixels (H·W of NCHW; the whole row otherwise). */
export function pixelLayout(shape: number[]): { channels: number; positions: number } {
  if (shape.length === 4) return { channels: shape[1]!, positions: shape[2]! * shape[3]! };
  return { channels: 1, positions: rowSize({ shape }) };
}

/** Norms of adv − x per example, in float64. Differences below `tiny` count as zero for L0. */
export function perturbationNorms(adv: Float32Tensor, x: Float32Tensor, tiny = 1e-7): PerturbationNorms {
  const n = x.shape[0]!;
  const d = rowSize(x);
  const { channels, positions } = pixelLayout(x.shape);
  const out: PerturbationNorms = { linf: new Float32Array(n), l2: new Float32Array(n), l1: new Float32Array(n), l0: new Float32Array(n) };
  for (let i = 0; i < n; i++) {
    let mx = 0;
    let s2 = 0;
    let s1 = 0;
    let l0 = 0;
    const o = i * d;
    for (let j = 0; j < d; j++) {
      const v = Math.abs(adv.data[o + j]! - x.data[o + j]!);
      if (v > mx) mx = v;
      s2 += v * v;
      s1 += v;
    }
    for (let p = 0; p < positions; p++) {
      for (let c = 0; c < channels; c++) {
        const j = o + c * positions + p;
        if (Math.abs(adv.data[j]! - x.data[j]!) > tiny) {
          l0++;
          break;
        }
      }
    }
    out.linf[i] = mx;
    out.l2[i] = Math.sqrt(s2);
    out.l1[i] = s1;
    out.l0[i] = l0;
  }
  return out;
}

/** The norm of one row of a perturbation (float64). */
export function rowNorm(delta: Float32Array | Float64Array, offset: number, d: number, norm: Norm): number {
  if (norm === 'inf') {
    let m = 0;
    for (let j = 0; j < d; j++) m = Math.max(m, Math.abs(delta[offset + j]!));
    return m;
  }
  if (norm === 2) {
    let s = 0;
    for (let j = 0; j < d; j++) s += delta[offset + j]! * delta[offset + j]!;
    return Math.sqrt(s);
  }
  if (norm === 1) {
    let s = 0;
    for (let j = 0; j < d; j++) s += Math.abs(delta[offset + j]!);
    return s;
  }
  let c = 0;
  for (let j = 0; j < d; j++) if (delta[offset + j] !== 0) c++;
  return c;
}

/** Clamps every element into [lo, hi] in place. */
export function clipInPlace(a: Float32Array, lo: number, hi: number): Float32Array {
  for (let i = 0; i < a.length; i++) {
    const v = a[i]!;
    a[i] = v < lo ? lo : v > hi ? hi : v;
  }
  return a;
}

/**
 * Projects `adv` in place onto `{x' : lo ≤ x' ≤ hi, ‖x' − x‖ ≤ eps}` for one row range, for L∞ (exact), L2
 * (radial scaling then clipping: lands inside the set, the usual PGD projection), L1 (exact Euclidean projection
 * onto the L1 ball intersected with the box, by bisection on the soft threshold) and L0 over pixel positions
 * (keep the `eps` positions with the largest change).
 */
export function projectRow(adv: Float32Array, x: Float32Array, offset: number, d: number, norm: Norm, eps: number, lo: number, hi: number, layout?: { channels: number; positions: number }): void {
  if (norm === 'inf') {
    for (let j = offset; j < offset + d; j++) {
      const a = Math.max(lo, x[j]! - eps);
      const b = Math.min(hi, x[j]! + eps);
      const v = adv[j]!;
      adv[j] = v < a ? a : v > b ? b : v;
    }
    return;
  }
  // L1 projects the unclipped point: clipping first and then projecting is not the projection (x = 0, box [0, 1]²,
  // eps 1: (3, 0.5) projects to (1, 0), but its clip (1, 0.5) to (0.75, 0.25))
  if (norm === 1 && Number.isFinite(eps)) {
    projectL1BoxRow(adv, x, offset, d, eps, lo, hi);
    return;
  }
  for (let j = offset; j < offset + d; j++) adv[j] = Math.min(hi, Math.max(lo, adv[j]!));
  if (!Number.isFinite(eps) || norm === 1) return;
  if (norm === 2) {
    let s = 0;
    for (let j = offset; j < offset + d; j++) s += (adv[j]! - x[j]!) ** 2;
    const nrm = Math.sqrt(s);
    if (nrm > eps) {
      const f = eps / nrm;
      for (let j = offset; j < offset + d; j++) adv[j] = Math.min(hi, Math.max(lo, x[j]! + (adv[j]! - x[j]!) * f));
      // float32 rounding can leave the norm a hair above eps: shrink once more by the excess
      let s2 = 0;
      for (let j = offset; j < offset + d; j++) s2 += (adv[j]! - x[j]!) ** 2;
      const n2 = Math.sqrt(s2);
      if (n2 > eps) {
        const g = (eps / n2) * (1 - 1e-6);
        for (let j = offset; j < offset + d; j++) adv[j] = x[j]! + (adv[j]! - x[j]!) * g;
      }
    }
    return;
  }
  const lay = layout ?? { channels: 1, positions: d };
  const k = Math.floor(eps);
  if (k >= lay.positions) return;
  const mag = new Float64Array(lay.positions);
  for (let p = 0; p < lay.positions; p++) {
    let m = 0;
    for (let c = 0; c < lay.channels; c++) m = Math.max(m, Math.abs(adv[offset + c * lay.positions + p]! - x[offset + c * lay.positions + p]!));
    mag[p] = m;
  }
  const order = Array.from(mag.keys()).sort((a, b) => mag[b]! - mag[a]! || a - b);
  for (let r = k; r < order.length; r++) {
    const p = order[r]!;
    for (let c = 0; c < lay.channels; c++) adv[offset + c * lay.positions + p] = x[offset + c * lay.positions + p]!;
  }
}

/**
 * Exact projection of a row of `adv` onto `{x' in [lo, hi]^d : ‖x' − x‖₁ ≤ eps}`: the solution is
 * δ_j = clip(soft(z_j, λ), lo − x_j, hi − x_j) with λ ≥ 0 the smallest value giving ‖δ‖₁ ≤ eps (found by
 * bisection; the L1 norm of δ(λ) is non-increasing in λ).
 */
export function projectL1BoxRow(adv: Float32Array, x: Float32Array, offset: number, d: number, eps: number, lo: number, hi: number): void {
  const z = new Float64Array(d);
  let total = 0;
  let zmax = 0;
  for (let j = 0; j < d; j++) {
    const xj = x[offset + j]!;
    const v = Math.min(hi - xj, Math.max(lo - xj, adv[offset + j]! - xj));
    z[j] = adv[offset + j]! - xj;
    total += Math.abs(v);
    zmax = Math.max(zmax, Math.abs(z[j]!));
  }
  const apply = (lam: number, write: boolean): number => {
    let s = 0;
    for (let j = 0; j < d; j++) {
      const zj = z[j]!;
      const a = Math.abs(zj) - lam;
      let v = a > 0 ? Math.sign(zj) * a : 0;
      const xj = x[offset + j]!;
      if (v < lo - xj) v = lo - xj;
      if (v > hi - xj) v = hi - xj;
      s += Math.abs(v);
      if (write) adv[offset + j] = xj + v;
    }
    return s;
  };
  if (total <= eps) {
    apply(0, true);
    return;
  }
  let a = 0;
  let b = zmax;
  for (let it = 0; it < 60; it++) {
    const m = 0.5 * (a + b);
    if (apply(m, false) > eps) a = m;
    else b = m;
  }
  apply(b, true);
  // float32 rounding of x + δ can add a hair of norm: shrink toward x if needed
  let s = 0;
  for (let j = 0; j < d; j++) s += Math.abs(adv[offset + j]! - x[offset + j]!);
  if (s > eps) {
    const g = (eps / s) * (1 - 1e-6);
    for (let j = 0; j < d; j++) adv[offset + j] = x[offset + j]! + (adv[offset + j]! - x[offset + j]!) * g;
  }
}

/** Projects every row of `adv` in place (see {@link projectRow}). */
export function project(adv: Float32Tensor, x: Float32Tensor, norm: Norm, eps: number, bounds: [number, number]): Float32Tensor {
  const n = x.shape[0]!;
  const d = rowSize(x);
  const layout = norm === 0 ? pixelLayout(x.shape) : undefined;
  for (let i = 0; i < n; i++) projectRow(adv.data, x.data, i * d, d, norm, eps, bounds[0], bounds[1], layout);
  return adv;
}

/** Like {@link project} with a per-example radius. */
export function projectPerExample(adv: Float32Tensor, x: Float32Tensor, norm: Norm, eps: ArrayLike<number>, bounds: [number, number]): Float32Tensor {
  const n = x.shape[0]!;
  const d = rowSize(x);
  const layout = norm === 0 ? pixelLayout(x.shape) : undefined;
  for (let i = 0; i < n; i++) projectRow(adv.data, x.data, i * d, d, norm, eps[i]!, bounds[0], bounds[1], layout);
  return adv;
}

/** Per-row norms of a tensor (float64 accumulation). */
export function rowNorms(t: Float32Tensor, norm: Norm): Float64Array {
  const n = t.shape[0]!;
  const d = rowSize(t);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = rowNorm(t.data, i * d, d, norm);
  return out;
}

/** Argmax per row of [N, K] scores. */
export function argmax(scores: Float32Tensor): Int32Array {
  const n = scores.shape[0]!;
  const k = scores.data.length / n;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    let bv = -Infinity;
    for (let j = 0; j < k; j++) {
      const v = scores.data[i * k + j]!;
      if (v > bv) {
        bv = v;
        best = j;
      }
    }
    out[i] = best;
  }
  return out;
}

/** Copies rows `idx` of `src` into rows `idx` of `dst` (same shapes). */
export function scatterRows(dst: Float32Tensor, src: Float32Tensor, rows: ArrayLike<number>, srcRows?: ArrayLike<number>): void {
  const d = rowSize(dst);
  for (let r = 0; r < rows.length; r++) {
    const i = rows[r]!;
    const s = srcRows ? srcRows[r]! : i;
    dst.data.set(src.data.subarray(s * d, (s + 1) * d), i * d);
  }
}

/** Rows `idx` of `t` as a new tensor. */
export function takeRows(t: Float32Tensor, idx: ArrayLike<number>): Float32Tensor {
  const d = rowSize(t);
  const out = new Float32Array(idx.length * d);
  for (let r = 0; r < idx.length; r++) out.set(t.data.subarray(idx[r]! * d, (idx[r]! + 1) * d), r * d);
  return { data: out, shape: [idx.length, ...t.shape.slice(1)], dtype: 'float32' };
}

/** Picks entries `idx` of an array. */
export function takeIdx<T extends Int32Array | Float32Array | Float64Array | Uint8Array>(a: T, idx: ArrayLike<number>): T {
  const Ctor = a.constructor as new (n: number) => T;
  const out = new Ctor(idx.length);
  for (let r = 0; r < idx.length; r++) out[r] = a[idx[r]!]!;
  return out;
}
