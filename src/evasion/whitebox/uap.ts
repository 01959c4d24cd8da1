import { BulwarkError } from '../../core/errors.js';
import { Rng } from '../../core/rng.js';
import type { Float32Tensor } from '../../core/tensor.js';
import { argmax, projectRow, rowSize, takeIdx, takeRows } from '../geometry.js';
import { commonFields, defineSchema } from '../options.js';
import { defineAttack, gradientModel } from '../runner.js';
import type { AttackDefinition, CommonOptions, Model, Norm } from '../types.js';
import { deepfoolBatch } from './deepfool.js';
import { ascentDirection } from './common.js';

/** Options of {@link uap}. */
export interface UapOptions extends CommonOptions {
  /** Inner attack: DeepFool (the paper) or signed-gradient (PGD) steps on the batch loss. */
  inner: 'deepfool' | 'pgd';
  /** Stop when the fooling rate on the data reaches this (the paper's 1 − δ). */
  targetFoolingRate: number;
  /** Passes over the data at most. */
  maxPasses: number;
  /** Examples per inner update (1: the paper's sequential form for DeepFool). */
  batchSize: number;
  /** DeepFool steps (inner: deepfool). */
  deepfoolSteps: number;
  /** DeepFool overshoot (inner: deepfool). */
  overshoot: number;
  /** Step size of the PGD inner update; undefined means eps/10. */
  stepSize: number | undefined;
}

const UAP = 'Moosavi-Dezfooli, Fawzi, Fawzi & Frossard 2017, https://arxiv.org/abs/1610.08401';

/** x + v clipped to the bounds, for every row of x (v is one example's shape). */
export function applyUniversal(x: Float32Tensor, v: Float32Array, bounds: [number, number]): Float32Tensor {
  const d = rowSize(x);
  const out = new Float32Array(x.data.length);
  for (let j = 0; j < out.length; j++) out[j] = Math.min(bounds[1], Math.max(bounds[0], x.data[j]! + v[j % d]!));
  return { data: out, shape: [...x.shape], dtype: 'float32' };
}

/** Fraction of rows whose prediction on x + v differs from `reference`. */
async function foolingRate(model: Model, x: Float32Tensor, v: Float32Array, reference: Int32Array, bounds: [number, number]): Promise<number> {
  const p = argmax(await model.predict(applyUniversal(x, v, bounds)));
  let c = 0;
  for (let i = 0; i < p.length; i++) if (p[i] !== reference[i]) c++;
  return c / p.length;
}

/**
 * Computes a universal adversarial perturbation v (one for all inputs) with ‖v‖_p ≤ eps (Moosavi-Dezfooli et al.
 * 2017, Algorithm 1): pass over the data in a seeded random order; for each example still classified as on its clean
 * input, find the minimal extra L2 perturbation Δv with DeepFool at x + v and set v ← P_{p,eps}(v + Δv); stop when the
 * fooling rate reaches `targetFoolingRate` or after `maxPasses`. With `inner: 'pgd'` the update is instead a signed
 * (L∞) or normalized (L2) gradient step on the summed cross-entropy of the batch at x + v.
 * @returns v (one example's shape, flat) and the fooling rate on x
 * @throws BulwarkError BULWARK_E_ARG for a bad option, BULWARK_E_MODEL for a model without gradients
 * @example const { perturbation } = await universalPerturbation(model, xTrain, { eps: 0.2, norm: 'inf' });
 */
export async function universalPerturbation(model: Model, x: Float32Tensor, options: Partial<UapOptions> & { eps: number }): Promise<{ perturbation: Float32Array; foolingRate: number; passes: number }> {
  const o = uapSchema.parse(options, 'uap');
  return fitUap(model, x, o, model.bounds, new Rng(o.seed));
}

async function fitUap(model: Model, x: Float32Tensor, o: UapOptions, bounds: [number, number], rng: Rng): Promise<{ perturbation: Float32Array; foolingRate: number; passes: number }> {
  gradientModel(model);
  const n = x.shape[0]!;
  const d = rowSize(x);
  const norm: Norm = o.norm;
  const v = new Float32Array(d);
  const zero = new Float32Array(d);
  const reference = argmax(await model.predict(x));
  const a = o.stepSize ?? o.eps / 10;
  let rate = 0;
  let pass = 0;
  for (; pass < o.maxPasses; pass++) {
    const order = rng.permutation(n);
    for (let s = 0; s < n; s += o.batchSize) {
      const idx = order.subarray(s, Math.min(n, s + o.batchSize));
      const xb = takeRows(x, idx);
      const ref = takeIdx(reference, idx);
      const xv = applyUniversal(xb, v, bounds);
      const pred = argmax(await model.predict(xv));
      const still = Array.from(idx.keys()).filter((r) => pred[r] === ref[r]);
      if (still.length === 0) continue;
      const xs = takeRows(xv, still);
      const ys = takeIdx(ref, still);
      if (o.inner === 'deepfool') {
        // the paper's inner problem is the minimal L2 perturbation (DeepFool L2) whatever the ball v is projected on
        const df = await deepfoolBatch(model, xs, ys, 2, { steps: o.deepfoolSteps, overshoot: o.overshoot, candidates: model.numClasses - 1 }, bounds);
        for (let r = 0; r < still.length; r++) {
          if (!df.fooled[r]) continue;
          for (let j = 0; j < d; j++) v[j] = v[j]! + (df.adversarial.data[r * d + j]! - xs.data[r * d + j]!);
          projectRow(v, zero, 0, d, norm, o.eps, -Infinity, Infinity);
        }
      } else {
        const g = await gradientModel(model).lossAndGradient(xs, ys, { kind: 'ce' });
        const sum = new Float32Array(d);
        for (let r = 0; r < still.length; r++) for (let j = 0; j < d; j++) sum[j] = sum[j]! + g.grad.data[r * d + j]!;
        const dir = ascentDirection({ data: sum, shape: [1, ...x.shape.slice(1)], dtype: 'float32' }, norm, new Float32Array(d));
        for (let j = 0; j < d; j++) v[j] = v[j]! + a * dir[j]!;
        projectRow(v, zero, 0, d, norm, o.eps, -Infinity, Infinity);
      }
    }
    rate = await foolingRate(model, x, v, reference, bounds);
    if (rate >= o.targetFoolingRate) {
      pass++;
      break;
    }
  }
  return { perturbation: v, foolingRate: rate, passes: pass };
}

export const uapSchema = defineSchema<UapOptions>(
  {
    ...commonFields({ norms: ['inf', 2] }),
    inner: {
      type: 'enum',
      values: ['deepfool', 'pgd'],
      default: 'pgd',
      doc: 'Inner update: the minimal DeepFool L2 perturbation at x + v (the paper\'s Algorithm 1), or a signed (L∞) / normalized (L2) gradient step on the summed cross-entropy of the batch at x + v, as in universal adversarial training. Default pgd: on the MNIST reference model at L∞ 0.3 it fooled 61% of 200 images against 3% for the DeepFool inner loop.',
      ref: 'Shafahi et al. 2020, https://arxiv.org/abs/1812.03705',
    },
    targetFoolingRate: { type: 'number', min: 0, max: 1, default: 0.8, doc: 'Stop once this fraction of the data is fooled (paper: 1 − δ with δ = 0.2).', ref: UAP },
    maxPasses: { type: 'number', integer: true, min: 1, max: 1000, default: 10, doc: 'Passes over the data at most.', ref: UAP },
    batchSize: { type: 'number', integer: true, min: 1, max: 100000, default: 16, doc: 'Examples per inner update; 1 is the paper\'s strictly sequential loop, larger batches compute DeepFool for several examples at the same v.', ref: UAP },
    deepfoolSteps: { type: 'number', integer: true, min: 1, max: 1000, default: 10, doc: 'DeepFool iterations per example (inner: deepfool).', ref: 'https://arxiv.org/abs/1511.04599' },
    overshoot: { type: 'number', min: 0, max: 10, default: 0.02, doc: 'DeepFool overshoot (inner: deepfool).', ref: 'https://arxiv.org/abs/1511.04599' },
    stepSize: {
      type: 'custom',
      optional: true,
      describeDefault: 'eps/10',
      parse: (v, k, a) => {
        if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) throw new BulwarkError('BULWARK_E_ARG', `${a}: option ${k} must be a positive number`);
        return v;
      },
      doc: 'Step of the PGD inner update (inner: pgd).',
    },
  },
  (o, a) => {
    if (!Number.isFinite(o.eps) || o.eps <= 0) throw new BulwarkError('BULWARK_E_ARG', `${a}: a universal perturbation needs a positive, finite eps`);
    if (o.criterion.kind !== 'untargeted') throw new BulwarkError('BULWARK_E_ARG', `${a}: the universal perturbation is untargeted`);
  },
);

export const uapDefinition: AttackDefinition<UapOptions> = {
  name: 'uap',
  summary: 'Universal adversarial perturbation: one eps-bounded perturbation for all inputs, DeepFool or PGD inner steps',
  paper: UAP,
  whiteBox: true,
  norms: ['inf', 2],
  targeted: false,
  wholeBatch: true,
  schema: uapSchema,
  async craft(ctx) {
    const fit = await fitUap(ctx.model, ctx.x, ctx.options, ctx.bounds, ctx.rng);
    return {
      adversarial: applyUniversal(ctx.x, fit.perturbation, ctx.bounds),
      extras: { perturbation: { data: fit.perturbation, shape: ctx.x.shape.slice(1), dtype: 'float32' } as Float32Tensor, foolingRate: fit.foolingRate, passes: fit.passes },
    };
  },
};

/**
 * UAP (Moosavi-Dezfooli et al. 2017, https://arxiv.org/abs/1610.08401) fitted on x and applied to x, verified by
 * the runner. `extras.perturbation` is v; `extras.foolingRate` the fraction of x whose prediction v changes. To fit
 * on one set and evaluate on another, use {@link universalPerturbation} and {@link applyUniversal}.
 * @example const r = await uap(model, x, y, { eps: 0.2 }); r.extras.foolingRate
 */
export const uap = defineAttack<UapOptions>(uapDefinition);
