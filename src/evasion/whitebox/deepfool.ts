import { BulwarkError } from '../../core/errors.js';
import type { Float32Tensor } from '../../core/tensor.js';
import { rowSize, takeIdx, takeRows } from '../geometry.js';
import { commonFields, defineSchema } from '../options.js';
import { defineAttack } from '../runner.js';
import type { AttackContext, AttackDefinition, CommonOptions, Model, Norm } from '../types.js';
import { candidateClasses, logitDifferences, rowArgmax } from './common.js';

/** Options of {@link deepfool}. */
export interface DeepFoolOptions extends CommonOptions {
  steps: number;
  overshoot: number;
  candidates: number;
}

const DF = 'Moosavi-Dezfooli, Fawzi & Frossard 2016, https://arxiv.org/abs/1511.04599';

/**
 * DeepFool on a batch: iteratively linearizes the classifier around the current point and steps to the nearest
 * linearized decision boundary among the candidate classes, in L2 (r = |f_k|/‖w_k‖₂² · w_k) or L∞
 * (r = |f_k|/‖w_k‖₁ · sign(w_k)), with f_k = z_k − z_y and w_k = ∇f_k; the accumulated perturbation is applied
 * with a (1 + overshoot) factor. Per-class gradients come from one batched call (see `logitDifferences`).
 * @returns the adversarial inputs and the iteration count each example needed
 */
export async function deepfoolBatch(model: Model, x: Float32Tensor, y: Int32Array, norm: Norm, opts: { steps: number; overshoot: number; candidates: number }, bounds: [number, number]): Promise<{ adversarial: Float32Tensor; iterations: Int32Array; fooled: Uint8Array }> {
  const n = x.shape[0]!;
  const d = rowSize(x);
  const rTot = new Float64Array(n * d);
  const adv = new Float32Array(x.data);
  const iterations = new Int32Array(n);
  const fooled = new Uint8Array(n);
  let live = Int32Array.from({ length: n }, (_, i) => i);
  let classes: Int32Array[] | undefined;
  const m0 = Math.max(1, Math.min(opts.candidates, model.numClasses - 1));
  const [lo, hi] = bounds;
  for (let it = 0; it <= opts.steps && live.length > 0; it++) {
    const xs = takeRows({ data: adv, shape: x.shape, dtype: 'float32' }, live);
    const ys = takeIdx(y, live);
    if (!classes) {
      // candidate classes are fixed from the clean logits (the paper's top-k restriction); one predict call
      const logits = await model.predict(takeRows(x, live));
      classes = candidateClasses(logits, ys, m0);
    }
    const cls = Array.from(live, (i) => classes![i]!);
    const { f, w, logits } = await logitDifferences(model, xs, ys, cls, m0);
    const k = logits.data.length / live.length;
    const next: number[] = [];
    for (let r = 0; r < live.length; r++) {
      const i = live[r]!;
      if (rowArgmax(logits.data, r, k) !== ys[r]) {
        fooled[i] = 1;
        continue;
      }
      if (it === opts.steps) continue;
      // nearest linearized boundary: |f_k| / ‖w_k‖_dual
      let bestK = -1;
      let bestDist = Infinity;
      for (let c = 0; c < m0; c++) {
        const wo = (r * m0 + c) * d;
        let dual = 0;
        if (norm === 2) {
          for (let j = 0; j < d; j++) dual += w[wo + j]! * w[wo + j]!;
          dual = Math.sqrt(dual);
        } else {
          for (let j = 0; j < d; j++) dual += Math.abs(w[wo + j]!);
        }
        const dist = Math.abs(f[r * m0 + c]!) / (dual + 1e-12);
        if (dist < bestDist) {
          bestDist = dist;
          bestK = c;
        }
      }
      const wo = (r * m0 + bestK) * d;
      const fk = Math.abs(f[r * m0 + bestK]!);
      if (norm === 2) {
        let s = 0;
        for (let j = 0; j < d; j++) s += w[wo + j]! * w[wo + j]!;
        const scale = (fk + 1e-4) / (s + 1e-12);
        for (let j = 0; j < d; j++) rTot[i * d + j] = rTot[i * d + j]! + scale * w[wo + j]!;
      } else {
        let s = 0;
        for (let j = 0; j < d; j++) s += Math.abs(w[wo + j]!);
        const scale = (fk + 1e-4) / (s + 1e-12);
        for (let j = 0; j < d; j++) rTot[i * d + j] = rTot[i * d + j]! + scale * Math.sign(w[wo + j]!);
      }
      for (let j = 0; j < d; j++) adv[i * d + j] = Math.min(hi, Math.max(lo, x.data[i * d + j]! + (1 + opts.overshoot) * rTot[i * d + j]!));
      iterations[i] = it + 1;
      next.push(i);
    }
    live = Int32Array.from(next);
  }
  return { adversarial: { data: adv, shape: [...x.shape], dtype: 'float32' }, iterations, fooled };
}

export const deepfoolDefinition: AttackDefinition<DeepFoolOptions> = {
  name: 'deepfool',
  summary: 'DeepFool: steps to the nearest linearized decision boundary, L2 or L∞ (minimum-norm, untargeted)',
  paper: DF,
  whiteBox: true,
  minimumNorm: true,
  norms: [2, 'inf'],
  targeted: false,
  schema: defineSchema<DeepFoolOptions>(
    {
      ...commonFields({ norms: [2, 'inf'], eps: Infinity, epsDoc: 'Optional budget: Infinity (default) keeps every perturbation DeepFool finds; a finite eps counts only those within it.' }),
      steps: { type: 'number', integer: true, min: 1, max: 10000, default: 50, doc: 'Maximum linearization steps (paper: 50).', ref: DF },
      overshoot: { type: 'number', min: 0, max: 10, default: 0.02, doc: 'Overshoot η: the accumulated perturbation is applied as (1 + η)·r (paper: 0.02).', ref: DF },
      candidates: { type: 'number', integer: true, min: 1, max: 100000, default: 10, doc: 'Candidate classes per example: the most likely classes other than the label (paper: 10 on ImageNet).', ref: DF },
    },
    (o, a) => {
      if (o.criterion.kind !== 'untargeted') throw new BulwarkError('BULWARK_E_ARG', `${a}: DeepFool is untargeted`);
    },
  ),
  async craft(ctx: AttackContext<DeepFoolOptions>) {
    const o = ctx.options;
    const r = await deepfoolBatch(ctx.model, ctx.x, ctx.y, ctx.threat.norm, o, ctx.bounds);
    return { adversarial: r.adversarial, extras: { iterations: r.iterations } };
  },
};

/**
 * DeepFool (Moosavi-Dezfooli et al. 2016, https://arxiv.org/abs/1511.04599), run and verified by the runner.
 * @param options `{ norm: 2 | 'inf', steps, overshoot, candidates, eps }`
 * @returns the verified {@link AttackResult}; `extras.iterations` per attacked example
 * @throws BulwarkError BULWARK_E_ARG, BULWARK_E_MODEL (no gradients), BULWARK_E_SHAPE, BULWARK_E_LABELS
 * @example const r = await deepfool(model, x, y, { norm: 2 }); r.summary.meanPerturbation.l2
 */
export const deepfool = defineAttack<DeepFoolOptions>(deepfoolDefinition);
