import { BulwarkError } from '../../core/errors.js';
import type { Float32Tensor } from '../../core/tensor.js';
import { project, rowSize, takeIdx, takeRows } from '../geometry.js';
import { commonFields, defineSchema } from '../options.js';
import { defineAttack } from '../runner.js';
import type { AttackContext, AttackDefinition, CommonOptions } from '../types.js';
import { ascentDirection, ctxTargetsForSuccess, objective, randomStartRows, successOnLogits } from './common.js';

/** Options of {@link apgd}. */
export interface ApgdOptions extends CommonOptions {
  loss: 'ce' | 'dlr';
  steps: number;
  restarts: number;
  rho: number;
  momentum: number;
  randomStart: boolean;
}

const APGD = 'Croce & Hein 2020, https://arxiv.org/abs/2003.01690';

/**
 * The APGD checkpoints w_0 = 0 < w_1 < ... ≤ N: w_j = ⌈p_j·N⌉ with p_0 = 0, p_1 = 0.22 and
 * p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06) (Croce & Hein 2020, section 3.2).
 */
export function apgdCheckpoints(steps: number): number[] {
  const p = [0, 0.22];
  while (true) {
    const j = p.length - 1;
    const next = p[j]! + Math.max(p[j]! - p[j - 1]! - 0.03, 0.06);
    if (next > 1) break;
    p.push(next);
  }
  // the tolerance keeps float noise (0.22 + 0.19 = 0.41000000000000003) from pushing a checkpoint one step later
  const w = p.map((v) => Math.ceil(v * steps - 1e-9));
  return [...new Set(w)].filter((v) => v <= steps);
}

/**
 * APGD (Croce & Hein 2020, Algorithm 1) on a batch, per example:
 *  x(1) = P(x(0) + η ∇f), then z(k+1) = P(x(k) + η(k)·s(∇f(x(k)))),
 *  x(k+1) = P(x(k) + α(z(k+1) − x(k)) + (1 − α)(x(k) − x(k−1))) with α = 0.75,
 * η(0) = 2ε, and at each checkpoint w_j the step is halved and the iterate restarted from the best point x_max when
 *  (1) fewer than ρ·(w_j − w_{j−1}) of the steps since w_{j−1} increased f (ρ = 0.75), or
 *  (2) η was not halved at w_{j−1} and f_max has not changed since w_{j−1}.
 * Returns, per example, the first iterate that meets the criterion, or x_max.
 */
export async function apgdCraft(ctx: AttackContext<ApgdOptions>): Promise<Float32Tensor> {
  const { x, y, targets, threat, bounds, options: o } = ctx;
  const n = x.shape[0]!;
  const d = rowSize(x);
  const eps = threat.eps;
  const N = o.steps;
  const checkpoints = new Set(apgdCheckpoints(N).filter((w) => w > 0));
  const cps = apgdCheckpoints(N);
  const succT = ctxTargetsForSuccess(ctx);
  const out = new Float32Array(x.data);
  const done = new Uint8Array(n);
  const alpha = o.momentum;

  for (let restart = 0; restart < o.restarts; restart++) {
    const rows = Int32Array.from({ length: n }, (_, i) => i).filter((i) => !done[i]);
    if (rows.length === 0) break;
    const m = rows.length;
    const x0 = takeRows(x, rows);
    const ys = takeIdx(y, rows);
    const ts = targets ? takeIdx(targets, rows) : undefined;
    const st = succT ? takeIdx(succT, rows) : undefined;
    // state per example (row r of this restart)
    const cur = takeRows(x, rows);
    if (o.randomStart) {
      const noise = randomStartRows(ctx, rows, restart, d, threat.norm, eps);
      for (let j = 0; j < cur.data.length; j++) cur.data[j] = cur.data[j]! + noise[j]!;
      project(cur, x0, threat.norm, eps, bounds);
    }
    const prev = new Float32Array(cur.data);
    const xmax = new Float32Array(cur.data);
    const gmax = new Float32Array(cur.data.length);
    const grad = new Float32Array(cur.data.length);
    const eta = new Float64Array(m).fill(2 * eps);
    const fmax = new Float64Array(m).fill(-Infinity);
    const fHist: Float64Array[] = Array.from({ length: m }, () => new Float64Array(N + 1));
    const fmaxAtLast = new Float64Array(m);
    const reducedAtLast = new Uint8Array(m);
    const finished = new Uint8Array(m);
    let live = Int32Array.from({ length: m }, (_, r) => r);

    for (let k = 0; k <= N && live.length > 0; k++) {
      const xs = takeRows(cur, live);
      const obj = await objective(ctx.model, xs, takeIdx(ys, live), ts ? takeIdx(ts, live) : undefined, o.loss);
      const ok = successOnLogits(obj.logits, takeIdx(ys, live), st ? takeIdx(st, live) : undefined);
      const next: number[] = [];
      for (let q = 0; q < live.length; q++) {
        const r = live[q]!;
        const off = r * d;
        const gq = obj.grad.data.subarray(q * d, (q + 1) * d);
        if (ok[q]) {
          finished[r] = 1;
          out.set(cur.data.subarray(off, off + d), rows[r]! * d);
          continue;
        }
        const f = obj.value[q]!;
        fHist[r]![k] = f;
        grad.set(gq, off);
        if (f > fmax[r]!) {
          fmax[r] = f;
          xmax.set(cur.data.subarray(off, off + d), off);
          gmax.set(gq, off);
        }
        if (k === 1) fmaxAtLast[r] = fmax[r]!;
        const kp = k - 1; // the paper's loop index that produced x(k)
        if (k >= 2 && checkpoints.has(kp)) {
          const j = cps.indexOf(kp);
          const wPrev = cps[j - 1]!;
          let increases = 0;
          for (let i = wPrev; i <= kp - 1; i++) if (fHist[r]![i + 1]! > fHist[r]![i]!) increases++;
          const cond1 = increases < o.rho * (kp - wPrev);
          const cond2 = !reducedAtLast[r] && fmaxAtLast[r] === fmax[r];
          const reduce = cond1 || cond2;
          reducedAtLast[r] = reduce ? 1 : 0;
          fmaxAtLast[r] = fmax[r]!;
          if (reduce) {
            eta[r] = eta[r]! / 2;
            cur.data.set(xmax.subarray(off, off + d), off);
            grad.set(gmax.subarray(off, off + d), off);
          }
        }
        next.push(r);
      }
      live = Int32Array.from(next);
      if (k === N || live.length === 0) break;
      // step every live example from x(k) to x(k+1)
      const g = takeRows({ data: grad, shape: cur.shape, dtype: 'float32' }, live);
      const xl = takeRows(cur, live);
      const dir = ascentDirection(g, threat.norm, new Float32Array(g.data.length));
      const z: Float32Tensor = { data: new Float32Array(xl.data.length), shape: [...xl.shape], dtype: 'float32' };
      for (let q = 0; q < live.length; q++) {
        const e = eta[live[q]!]!;
        for (let j = q * d; j < (q + 1) * d; j++) z.data[j] = xl.data[j]! + e * dir[j]!;
      }
      const xo = takeRows(x0, live);
      project(z, xo, threat.norm, eps, bounds);
      if (k > 0) {
        const pl = takeRows({ data: prev, shape: cur.shape, dtype: 'float32' }, live);
        for (let j = 0; j < z.data.length; j++) z.data[j] = xl.data[j]! + alpha * (z.data[j]! - xl.data[j]!) + (1 - alpha) * (xl.data[j]! - pl.data[j]!);
        project(z, xo, threat.norm, eps, bounds);
      }
      for (let q = 0; q < live.length; q++) {
        const off = live[q]! * d;
        prev.set(cur.data.subarray(off, off + d), off);
        cur.data.set(z.data.subarray(q * d, (q + 1) * d), off);
      }
    }
    for (let r = 0; r < m; r++) {
      if (finished[r]) done[rows[r]!] = 1;
      else if (restart === 0) out.set(xmax.subarray(r * d, (r + 1) * d), rows[r]! * d);
    }
  }
  return { data: out, shape: [...x.shape], dtype: 'float32' };
}

function apgdSchema(defaultLoss: 'ce' | 'dlr', lossFixed: boolean) {
  return defineSchema<ApgdOptions>(
    {
      ...commonFields({ norms: ['inf', 2] }),
      loss: lossFixed
        ? { type: 'enum', values: [defaultLoss], default: defaultLoss, doc: `Loss: ${defaultLoss === 'ce' ? 'cross-entropy' : 'the difference of logits ratio, DLR'} (fixed by the attack name).`, ref: APGD }
        : { type: 'enum', values: ['ce', 'dlr'], default: defaultLoss, doc: 'Loss: cross-entropy or the difference of logits ratio (DLR, shift- and scale-invariant).', ref: APGD },
      steps: { type: 'number', integer: true, min: 1, max: 100000, default: 100, doc: 'Iterations N_iter (paper and AutoAttack: 100).', ref: APGD },
      restarts: { type: 'number', integer: true, min: 1, max: 1000, default: 1, doc: 'Random restarts on the examples not yet broken (AutoAttack standard: 1 for APGD-CE; APGD-T runs once per target class).', ref: APGD },
      rho: { type: 'number', min: 0, max: 1, default: 0.75, doc: 'ρ of condition 1: halve the step when fewer than ρ of the steps since the last checkpoint increased the loss (paper: 0.75).', ref: APGD },
      momentum: { type: 'number', min: 0, max: 1, default: 0.75, doc: 'α, the weight of the new point against the previous direction (paper: 0.75).', ref: APGD },
      randomStart: { type: 'boolean', default: true, doc: 'Start from a uniform random point of the eps-ball (as AutoAttack); false starts at x.', ref: APGD },
    },
    (o, a) => {
      if (!Number.isFinite(o.eps) || o.eps <= 0) throw new BulwarkError('BULWARK_E_ARG', `${a}: APGD needs a positive, finite eps`);
    },
  );
}

function apgdDefinitionFor(name: string, loss: 'ce' | 'dlr', fixed: boolean): AttackDefinition<ApgdOptions> {
  return {
    name,
    summary: fixed
      ? `Auto-PGD with the ${loss === 'ce' ? 'cross-entropy' : 'DLR'} loss: momentum 0.75, checkpoint step-size halving; targeted-topk is APGD-T (Croce & Hein 2020)`
      : 'Auto-PGD: budget-aware PGD with momentum and checkpoint step-size halving, CE or DLR loss (Croce & Hein 2020)',
    paper: APGD,
    whiteBox: true,
    norms: ['inf', 2],
    targeted: true,
    schema: apgdSchema(loss, fixed),
    craft: apgdCraft,
  };
}

export const apgdDefinition = apgdDefinitionFor('apgd', 'ce', false);
export const apgdCeDefinition = apgdDefinitionFor('apgd-ce', 'ce', true);
export const apgdDlrDefinition = apgdDefinitionFor('apgd-dlr', 'dlr', true);

/**
 * APGD (Croce & Hein 2020, https://arxiv.org/abs/2003.01690) with a `loss` option, run and verified by the runner.
 * APGD-T: `criterion: { kind: 'targeted-topk', k: 9 }` with `loss: 'dlr'` (targeted DLR per target class).
 * @param options see {@link ApgdOptions}; `eps` is required
 * @returns the verified {@link AttackResult}
 * @throws BulwarkError BULWARK_E_ARG, BULWARK_E_MODEL (no gradients), BULWARK_E_SHAPE, BULWARK_E_LABELS
 * @example const r = await apgd(model, x, y, { eps: 0.3, loss: 'dlr', criterion: { kind: 'targeted-topk', k: 9 } });
 */
export const apgd = defineAttack<ApgdOptions>(apgdDefinition);
/** APGD-CE: {@link apgd} with the cross-entropy loss. */
export const apgdCe = defineAttack<ApgdOptions>(apgdCeDefinition);
/** APGD-DLR: {@link apgd} with the DLR loss (with `targeted-topk`, APGD-T). */
export const apgdDlr = defineAttack<ApgdOptions>(apgdDlrDefinition);
