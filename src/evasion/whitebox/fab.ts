import { BulwarkError } from '../../core/errors.js';
import type { Float32Tensor } from '../../core/tensor.js';
import { rowNorm, rowSize, takeIdx, takeRows } from '../geometry.js';
import { commonFields, defineSchema } from '../options.js';
import { defineAttack } from '../runner.js';
import type { AttackContext, AttackDefinition, CommonOptions, Norm } from '../types.js';
import { candidateClasses, ctxTargetsForSuccess, logitDifferences, randomInBall, rowArgmax } from './common.js';

/** Options of {@link fab}. */
export interface FabOptions extends CommonOptions {
  steps: number;
  restarts: number;
  alphaMax: number;
  eta: number;
  beta: number;
  candidates: number;
}

const FAB = 'Croce & Hein 2020 (FAB), https://arxiv.org/abs/1907.02044';

/**
 * The minimum-`p`-norm δ with ⟨w, δ⟩ = r and a ≤ δ ≤ b (a ≤ 0 ≤ b: the box around the point), in closed form per
 * norm (each coordinate helps at most |w_j|·cap_j, cap_j the room toward sign(w_j)·sign(r)):
 *  - L∞: δ_j = s_j·min(t, cap_j) with the smallest t meeting the constraint (piecewise linear in t);
 *  - L2: δ_j = s_j·min(λ|w_j|, cap_j) (the KKT point; piecewise linear in λ);
 *  - L1: fill the coordinates by decreasing |w_j| (a fractional knapsack).
 * When the box cannot reach the hyperplane, every coordinate goes to its cap (the nearest reachable point).
 * @param out receives δ (length d)
 */
export function projectOnHyperplaneBox(w: Float32Array, wOff: number, r: number, a: Float32Array, b: Float32Array, off: number, d: number, norm: Norm, out: Float64Array): void {
  out.fill(0);
  if (r === 0) return;
  const sr = r > 0 ? 1 : -1;
  const target = Math.abs(r);
  const absw = new Float64Array(d);
  const cap = new Float64Array(d);
  const sgn = new Int8Array(d);
  for (let j = 0; j < d; j++) {
    const wj = w[wOff + j]! * sr;
    sgn[j] = wj > 0 ? 1 : wj < 0 ? -1 : 0;
    absw[j] = Math.abs(wj);
    cap[j] = wj > 0 ? b[off + j]! : wj < 0 ? -a[off + j]! : 0;
    if (cap[j]! < 0) cap[j] = 0;
  }
  const idx = Array.from({ length: d }, (_, j) => j).filter((j) => absw[j]! > 0 && cap[j]! > 0);
  const finish = (amount: (j: number) => number) => {
    for (const j of idx) out[j] = sgn[j]! * amount(j);
  };
  if (norm === 1) {
    idx.sort((p, q) => absw[q]! - absw[p]!);
    let rem = target;
    for (const j of idx) {
      if (rem <= 0) break;
      const take = Math.min(cap[j]!, rem / absw[j]!);
      out[j] = sgn[j]! * take;
      rem -= take * absw[j]!;
    }
    return;
  }
  // breakpoints where a coordinate saturates: t_j = cap_j (L∞) or λ_j = cap_j/|w_j| (L2)
  const bp = (j: number) => (norm === 'inf' ? cap[j]! : cap[j]! / absw[j]!);
  idx.sort((p, q) => bp(p) - bp(q));
  // G(s) = Σ_{saturated} |w_j| cap_j + s·Σ_{free} slope_j, slope_j = |w_j| (L∞) or w_j² (L2)
  let slope = 0;
  for (const j of idx) slope += norm === 'inf' ? absw[j]! : absw[j]! * absw[j]!;
  let fixed = 0;
  let s = Infinity;
  for (const j of idx) {
    const at = bp(j);
    if (fixed + at * slope >= target) {
      s = (target - fixed) / slope;
      break;
    }
    fixed += absw[j]! * cap[j]!;
    slope -= norm === 'inf' ? absw[j]! : absw[j]! * absw[j]!;
  }
  if (s === Infinity) {
    finish((j) => cap[j]!);
    return;
  }
  finish((j) => Math.min(norm === 'inf' ? s : s * absw[j]!, cap[j]!));
}

/**
 * FAB (Croce & Hein 2020, Algorithm 1), per example: linearize at x(i) and pick the closest linearized boundary
 * s = argmin |f_l| / ‖∇f_l‖_q (q the dual norm); project both x(i) and x_orig onto that hyperplane ∩ box
 * (δ, δ_orig); step x(i+1) = clip((1 − α)(x(i) + η δ) + α(x_orig + η δ_orig)) with
 * α = min(‖δ‖/(‖δ‖ + ‖δ_orig‖), α_max); when x(i+1) is adversarial record it if smallest so far and step back
 * toward x_orig: x(i+1) = (1 − β) x_orig + β x(i+1). Restarts start at a uniform point of the ball of radius half
 * the best norm found so far (or eps).
 */
export async function fabCraft(ctx: AttackContext<FabOptions>): Promise<{ adversarial: Float32Tensor; extras: Record<string, unknown> }> {
  const { x, y, targets, threat, bounds, options: o } = ctx;
  const model = ctx.model;
  const n = x.shape[0]!;
  const d = rowSize(x);
  const norm = threat.norm;
  const [lo, hi] = bounds;
  const succT = ctxTargetsForSuccess(ctx);
  const best = new Float32Array(x.data);
  const bestNorm = new Float64Array(n).fill(Infinity);
  const m = targets ? 1 : Math.max(1, Math.min(o.candidates, model.numClasses - 1));
  const clean = await model.predict(x);
  const classes = targets ? Array.from(targets, (t) => Int32Array.of(t)) : candidateClasses(clean, y, m);
  const dual: Norm = norm === 'inf' ? 1 : norm === 1 ? 'inf' : 2;
  const aBox = new Float32Array(d);
  const bBox = new Float32Array(d);
  const delta = new Float64Array(d);
  const deltaOrig = new Float64Array(d);
  const kCls = model.numClasses;

  for (let restart = 0; restart < o.restarts; restart++) {
    const rows = Int32Array.from({ length: n }, (_, i) => i);
    const cur = new Float32Array(x.data);
    if (restart > 0) {
      for (const i of rows) {
        const radius = Math.min(bestNorm[i]!, threat.eps) / 2;
        if (!Number.isFinite(radius) || radius <= 0) continue;
        const noise = randomInBall(ctx.stream(i, restart), 1, d, norm, radius, new Float32Array(d));
        for (let j = 0; j < d; j++) cur[i * d + j] = Math.min(hi, Math.max(lo, x.data[i * d + j]! + noise[j]!));
      }
    }
    const live = rows;
    for (let it = 0; it < o.steps; it++) {
      const xs = takeRows({ data: cur, shape: x.shape, dtype: 'float32' }, live);
      const cls = Array.from(live, (i) => classes[i]!);
      const { f, w } = await logitDifferences(model, xs, takeIdx(y, live), cls, m);
      for (let q = 0; q < live.length; q++) {
        const i = live[q]!;
        const xo = i * d;
        // closest linearized boundary
        let s = 0;
        let bestDist = Infinity;
        for (let c = 0; c < m; c++) {
          const dist = Math.abs(f[q * m + c]!) / (rowNorm(w, (q * m + c) * d, d, dual) + 1e-12);
          if (dist < bestDist) {
            bestDist = dist;
            s = c;
          }
        }
        const wOff = (q * m + s) * d;
        const fs = f[q * m + s]!;
        // hyperplane f_s + ⟨w, z − x(i)⟩ = 0, seen from x(i) and from x_orig
        let shift = 0;
        for (let j = 0; j < d; j++) shift += w[wOff + j]! * (x.data[xo + j]! - cur[xo + j]!);
        for (let j = 0; j < d; j++) {
          aBox[j] = lo - cur[xo + j]!;
          bBox[j] = hi - cur[xo + j]!;
        }
        projectOnHyperplaneBox(w, wOff, -fs, aBox, bBox, 0, d, norm, delta);
        for (let j = 0; j < d; j++) {
          aBox[j] = lo - x.data[xo + j]!;
          bBox[j] = hi - x.data[xo + j]!;
        }
        projectOnHyperplaneBox(w, wOff, -(fs + shift), aBox, bBox, 0, d, norm, deltaOrig);
        const nd = rowNorm(delta, 0, d, norm);
        const no = rowNorm(deltaOrig, 0, d, norm);
        const alpha = Math.min(nd + no > 0 ? nd / (nd + no) : 0, o.alphaMax);
        for (let j = 0; j < d; j++) {
          const v = (1 - alpha) * (cur[xo + j]! + o.eta * delta[j]!) + alpha * (x.data[xo + j]! + o.eta * deltaOrig[j]!);
          cur[xo + j] = Math.min(hi, Math.max(lo, v));
        }
      }
      // adversarial check of the new points (one forward pass), record and step back toward x_orig
      const logits = await model.predict(takeRows({ data: cur, shape: x.shape, dtype: 'float32' }, live));
      for (let q = 0; q < live.length; q++) {
        const i = live[q]!;
        const p = rowArgmax(logits.data, q, kCls);
        const ok = succT ? p === succT[i] : p !== y[i];
        if (!ok) continue;
        const xo = i * d;
        const dd = new Float64Array(d);
        for (let j = 0; j < d; j++) dd[j] = cur[xo + j]! - x.data[xo + j]!;
        const s = rowNorm(dd, 0, d, norm);
        if (s < bestNorm[i]!) {
          bestNorm[i] = s;
          best.set(cur.subarray(xo, xo + d), xo);
        }
        for (let j = 0; j < d; j++) cur[xo + j] = (1 - o.beta) * x.data[xo + j]! + o.beta * cur[xo + j]!;
      }
    }
  }
  return { adversarial: { data: best, shape: [...x.shape], dtype: 'float32' }, extras: { minimumNorm: Float32Array.from(bestNorm) } };
}

export const fabDefinition: AttackDefinition<FabOptions> = {
  name: 'fab',
  summary: 'Fast adaptive boundary attack: minimum-norm adversarial examples in L∞, L2 or L1 (Croce & Hein 2020)',
  paper: FAB,
  whiteBox: true,
  minimumNorm: true,
  norms: ['inf', 2, 1],
  targeted: true,
  schema: defineSchema<FabOptions>(
    {
      ...commonFields({ norms: ['inf', 2, 1], eps: Infinity, epsDoc: 'Optional budget: Infinity (default) reports the minimum norm found for every example; a finite eps counts only those within it and bounds the restart radius.' }),
      steps: { type: 'number', integer: true, min: 1, max: 100000, default: 100, doc: 'Iterations per restart (paper: 100).', ref: FAB },
      restarts: { type: 'number', integer: true, min: 1, max: 1000, default: 1, doc: 'Restarts; each after the first starts at a random point of the ball of radius min(best norm, eps)/2.', ref: FAB },
      alphaMax: { type: 'number', min: 0, max: 1, default: 0.1, doc: 'α_max, the largest weight of the step from x_orig (paper: 0.1).', ref: FAB },
      eta: { type: 'number', min: 1, max: 10, default: 1.05, doc: 'η, the extrapolation factor past the hyperplane (paper: 1.05).', ref: FAB },
      beta: { type: 'number', min: 0, max: 1, exclusiveMin: true, default: 0.9, doc: 'β of the backward step toward x_orig after an adversarial point (paper: 0.9).', ref: FAB },
      candidates: { type: 'number', integer: true, min: 1, max: 100000, default: 9, doc: 'Classes linearized per step (untargeted): the most likely classes other than the label at x_orig.' },
    },
    (o, a) => {
      if (o.criterion.kind === 'targeted-topk' && o.criterion.k < 1) throw new BulwarkError('BULWARK_E_ARG', `${a}: targeted-topk needs k >= 1`);
    },
  ),
  craft: fabCraft,
};

/**
 * FAB (Croce & Hein 2020, https://arxiv.org/abs/1907.02044): minimum-norm adversarial examples, run and
 * verified by the shared runner. Targeted (given targets, or `targeted-topk` as FAB-T) linearizes only the target.
 * @param options see {@link FabOptions}
 * @returns the verified {@link AttackResult}; `extras.minimumNorm` per attacked example (Infinity if none found)
 * @throws BulwarkError BULWARK_E_ARG, BULWARK_E_MODEL (no gradients), BULWARK_E_SHAPE, BULWARK_E_LABELS
 * @example const r = await fab(model, x, y, { norm: 'inf' }); r.norms.linf
 */
export const fab = defineAttack<FabOptions>(fabDefinition);
