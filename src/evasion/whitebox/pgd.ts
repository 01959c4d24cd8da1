import { BulwarkError } from '../../core/errors.js';
import type { Float32Tensor } from '../../core/tensor.js';
import { argmax, project, rowSize, scatterRows, takeIdx, takeRows } from '../geometry.js';
import { commonFields, defineSchema } from '../options.js';
import { defineAttack } from '../runner.js';
import type { AttackContext, AttackDefinition, CommonOptions } from '../types.js';
import { ascentDirection, ctxTargetsForSuccess, objective, randomStartRows, successOnLogits, type AttackLoss } from './common.js';

/**
 * x ← clip(x + a·sign(g), max(lo, x0 − eps), min(hi, x0 + eps)) in place: an L∞ PGD step and its projection in one
 * pass over the batch (the attack's per-step JavaScript work, serial beside onnxruntime's threads).
 */
export function signStepLinf(x: Float32Array, g: Float32Array, x0: Float32Array, a: number, eps: number, lo: number, hi: number): void {
  for (let j = 0; j < x.length; j++) {
    const gj = g[j]!;
    // Stored to float32 between the step and the clamp, as the two-pass form does.
    x[j] = x[j]! + a * (gj > 0 ? 1 : gj < 0 ? -1 : 0);
    const v = x[j]!;
    const below = Math.max(lo, x0[j]! - eps);
    const above = Math.min(hi, x0[j]! + eps);
    x[j] = v < below ? below : v > above ? above : v;
  }
}

/** Step-size schedules of {@link pgd}: a_t for step t of T. */
export type StepSchedule = 'constant' | 'cosine' | 'linear';

/** Options of {@link pgd}. */
export interface PgdOptions extends CommonOptions {
  steps: number;
  /** Step size; undefined means 2.5·eps/steps. */
  stepSize: number | undefined;
  randomStart: boolean;
  restarts: number;
  loss: AttackLoss;
  schedule: StepSchedule;
  /** SLIDE's quantile q for L1 steps. */
  l1Quantile: number;
  keepSuccess: boolean;
}

const MADRY = 'Madry et al. 2018, https://arxiv.org/abs/1706.06083';

export const pgdSchema = defineSchema<PgdOptions>(
  {
    ...commonFields({ norms: ['inf', 2, 1] }),
    steps: { type: 'number', integer: true, min: 1, max: 100000, default: 40, doc: 'Gradient steps per restart (Madry et al. use 40 on MNIST, 7 on CIFAR-10).', ref: MADRY },
    stepSize: {
      type: 'custom',
      optional: true,
      describeDefault: '2.5·eps/steps',
      parse: (v, k, a) => {
        if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) throw new BulwarkError('BULWARK_E_ARG', `${a}: option ${k} must be a positive number, got ${JSON.stringify(v)}`);
        return v;
      },
      doc: 'Step size in the norm of the threat model; default 2.5·eps/steps, so that the walk can cross the ball (the rule of Madry et al.\'s robustness library).',
      ref: MADRY,
    },
    randomStart: { type: 'boolean', default: true, doc: 'Start from a uniform random point of the eps-ball (Madry et al.); false starts at x (the BIM/textbook form).', ref: MADRY },
    restarts: { type: 'number', integer: true, min: 1, max: 10000, default: 1, doc: 'Independent random restarts; each runs on the examples not yet broken.', ref: MADRY },
    loss: { type: 'enum', values: ['ce', 'margin', 'dlr'], default: 'ce', doc: 'Loss ascended: cross-entropy (Madry et al.), C&W margin (Carlini & Wagner 2017) or DLR (Croce & Hein 2020).' },
    schedule: { type: 'enum', values: ['constant', 'cosine', 'linear'], default: 'constant', doc: 'Step-size schedule over the steps: constant, cosine annealing to 0, or linear decay to 0.' },
    l1Quantile: { type: 'number', min: 0, max: 1, exclusiveMin: true, default: 0.99, doc: 'L1 only: SLIDE steps move the coordinates with |gradient| at or above this quantile (Tramèr & Boneh 2019 use 0.8-0.99).', ref: 'https://arxiv.org/abs/1904.13000' },
    keepSuccess: { type: 'boolean', default: true, doc: 'Keep, per example, the first iterate that meets the criterion (seen on the logits of the gradient call), so later steps cannot undo it; false returns the final iterate, as the textbook algorithm.' },
  },
  (o, a) => {
    if (!Number.isFinite(o.eps)) throw new BulwarkError('BULWARK_E_ARG', `${a}: PGD needs a finite eps`);
    if (o.restarts > 1 && !o.randomStart) throw new BulwarkError('BULWARK_E_ARG', `${a}: restarts > 1 repeat the same run without randomStart`, { hint: 'Set randomStart: true (--random-start) or restarts: 1.' });
  },
);

/** Step size at step t of T under a schedule. */
export function scheduledStep(a: number, t: number, T: number, s: StepSchedule): number {
  if (s === 'cosine') return a * 0.5 * (1 + Math.cos((Math.PI * t) / T));
  if (s === 'linear') return a * (1 - t / T);
  return a;
}

/**
 * Projected gradient descent (ascent on the loss) in L∞, L2 or L1 (Madry et al. 2018).
 * Each step is x ← Π(x + a·s(∇ loss)), Π the projection onto the eps-ball ∩ bounds and s the steepest-ascent
 * direction of the norm (sign for L∞; normalized gradient for L2; the sparse SLIDE direction for L1, with the exact
 * projection onto the L1 ball ∩ box). With `randomStart: false` and a constant step it is exactly the textbook
 * update x ← clip(proj(x + a·sign(∇CE))).
 */
export async function pgdCraft(ctx: AttackContext<PgdOptions>): Promise<Float32Tensor> {
  const { x, y, targets, threat, bounds, options: o } = ctx;
  const n = x.shape[0]!;
  const d = rowSize(x);
  const eps = threat.eps;
  const a = o.stepSize ?? (2.5 * eps) / o.steps;
  const succTargets = ctxTargetsForSuccess(ctx);
  const best: Float32Tensor = { data: new Float32Array(x.data), shape: [...x.shape], dtype: 'float32' };
  const found = new Uint8Array(n);
  for (let r = 0; r < o.restarts; r++) {
    let live = Int32Array.from({ length: n }, (_, i) => i).filter((i) => !found[i]);
    if (live.length === 0) break;
    const x0 = takeRows(x, live);
    let cur = takeRows(x, live);
    if (o.randomStart) {
      const noise = randomStartRows(ctx, live, r, d, threat.norm, eps);
      for (let j = 0; j < cur.data.length; j++) cur.data[j] = cur.data[j]! + noise[j]!;
      project(cur, x0, threat.norm, eps, bounds);
    }
    let xs = x0;
    let ys = takeIdx(y, live);
    let ts = targets ? takeIdx(targets, live) : undefined;
    let st = succTargets ? takeIdx(succTargets, live) : undefined;
    for (let t = 0; t < o.steps && live.length > 0; t++) {
      const obj = await objective(ctx.model, cur, ys, ts, o.loss);
      if (o.keepSuccess) {
        const ok = successOnLogits(obj.logits, ys, st);
        if (ok.some((v) => v === 1)) {
          const keep: number[] = [];
          for (let r2 = 0; r2 < live.length; r2++) {
            if (ok[r2]) {
              found[live[r2]!] = 1;
              scatterRows(best, cur, [live[r2]!], [r2]);
            } else keep.push(r2);
          }
          if (keep.length === 0) {
            live = new Int32Array(0);
            break;
          }
          if (keep.length < live.length) {
            live = takeIdx(live, keep);
            cur = takeRows(cur, keep);
            xs = takeRows(xs, keep);
            ys = takeIdx(ys, keep);
            ts = ts ? takeIdx(ts, keep) : undefined;
            st = st ? takeIdx(st, keep) : undefined;
            obj.grad = takeRows(obj.grad, keep);
          }
        }
      }
      const step = scheduledStep(a, t, o.steps, o.schedule);
      if (threat.norm === 'inf') {
        // One pass: the sign step and the L∞ ∩ box projection (the same float operations as the general path).
        signStepLinf(cur.data, obj.grad.data, xs.data, step, eps, bounds[0], bounds[1]);
        continue;
      }
      const dir = ascentDirection(obj.grad, threat.norm, new Float32Array(cur.data.length), { q: o.l1Quantile, x: cur.data, bounds });
      for (let j = 0; j < cur.data.length; j++) cur.data[j] = cur.data[j]! + step * dir[j]!;
      project(cur, xs, threat.norm, eps, bounds);
    }
    if (live.length === 0) continue;
    const pred = argmax(await ctx.model.predict(cur));
    for (let r2 = 0; r2 < live.length; r2++) {
      const i = live[r2]!;
      const ok = st ? pred[r2] === st[r2] : pred[r2] !== ys[r2];
      // failures keep the latest restart's iterate; successes are frozen
      scatterRows(best, cur, [i], [r2]);
      if (ok) found[i] = 1;
    }
  }
  return best;
}

export const pgdDefinition: AttackDefinition<PgdOptions> = {
  name: 'pgd',
  summary: 'Projected gradient descent in L∞, L2 or L1 (sparse SLIDE steps), random start, restarts, schedules (Madry et al. 2018)',
  paper: `${MADRY}; L1: Tramèr & Boneh 2019, https://arxiv.org/abs/1904.13000`,
  whiteBox: true,
  norms: ['inf', 2, 1],
  targeted: true,
  schema: pgdSchema,
  craft: pgdCraft,
};

/**
 * PGD (Madry et al. 2018, https://arxiv.org/abs/1706.06083), run and verified by the shared runner.
 * @param model a white-box model
 * @param x clean inputs [N, ...] in the model bounds
 * @param y true labels
 * @param options see {@link PgdOptions}; `eps` is required
 * @returns the verified {@link AttackResult}
 * @throws BulwarkError BULWARK_E_ARG, BULWARK_E_MODEL (no gradients), BULWARK_E_SHAPE, BULWARK_E_LABELS
 * @example const r = await pgd(model, x, y, { eps: 0.3, steps: 40, stepSize: 0.01 }); r.summary.robustAccuracy
 */
export const pgd = defineAttack<PgdOptions>(pgdDefinition);
