import { BulwarkError } from '../../core/errors.js';
import type { Float32Tensor } from '../../core/tensor.js';
import { rowSize } from '../geometry.js';
import { commonFields, defineSchema } from '../options.js';
import { defineAttack, gradientModel } from '../runner.js';
import type { AttackContext, AttackDefinition, CommonOptions } from '../types.js';
import { Adam, ctxTargetsForSuccess, rowArgmax } from './common.js';

/** Options of {@link cw}. */
export interface CwOptions extends CommonOptions {
  /** Adam steps per binary-search step. */
  steps: number;
  /** Adam learning rate. */
  lr: number;
  /** Initial trade-off constant c. */
  initialConst: number;
  /** Binary-search steps over c (1: fixed c). */
  binarySearchSteps: number;
  /** Confidence kappa. */
  kappa: number;
  /** Stop a binary-search step early when the objective stalls. */
  abortEarly: boolean;
}

const CW = 'Carlini & Wagner 2017, https://arxiv.org/abs/1608.04644';

/**
 * The C&W L2 attack (Carlini & Wagner 2017). In the variable w with x' = lo + (hi − lo)·(tanh(w) + 1)/2 (so x'
 * always lies in the box), Adam minimizes ‖x' − x‖₂² + c·f(x') per example, with
 * f = max(z_y − max_{j≠y} z_j, −κ) untargeted or max(max_{j≠t} z_j − z_t, −κ) targeted (the C&W margin head).
 * A binary search over c per example keeps the smallest-L2 adversarial example found: c shrinks toward the
 * boundary on success and grows ×10 (or bisects) on failure, as in the paper.
 */
export async function cwCraft(ctx: AttackContext<CwOptions>): Promise<Float32Tensor> {
  const { x, y, targets, bounds, options: o } = ctx;
  const model = gradientModel(ctx.model);
  const n = x.shape[0]!;
  const d = rowSize(x);
  const k = model.numClasses;
  const [lo, hi] = bounds;
  const half = (hi - lo) / 2;
  const succT = ctxTargetsForSuccess(ctx);
  // w0 = atanh of x mapped to (−1, 1), shrunk a hair so that bounds map to finite w
  const w0 = new Float32Array(x.data.length);
  for (let j = 0; j < w0.length; j++) w0[j] = Math.atanh(Math.max(-1, Math.min(1, ((x.data[j]! - lo) / half - 1))) * 0.999999);
  const bestL2 = new Float64Array(n).fill(Infinity);
  const best = new Float32Array(x.data);
  const c = new Float64Array(n).fill(o.initialConst);
  const lower = new Float64Array(n);
  const upper = new Float64Array(n).fill(1e10);
  const labelsForHead = targets ?? y;
  const head = { kind: 'margin' as const, targeted: targets !== undefined, kappa: o.kappa };
  // A lead clipped at κ equals κ as the graph holds it: float32 (or float64 for a float64 model)
  const kappaHeld = Math.min(o.kappa, Math.fround(o.kappa));
  const xp = new Float32Array(x.data.length);
  const gw = new Float32Array(x.data.length);
  const tensor = (data: Float32Array): Float32Tensor => ({ data, shape: [...x.shape], dtype: 'float32' });
  for (let bs = 0; bs < o.binarySearchSteps; bs++) {
    // the paper repeats the last step at the upper bound when the search ran out: c = upper on the final step
    if (o.binarySearchSteps >= 10 && bs === o.binarySearchSteps - 1) for (let i = 0; i < n; i++) if (upper[i]! < 1e10) c[i] = upper[i]!;
    const w = new Float32Array(w0);
    const adam = new Adam(w.length, o.lr);
    const succeededThisRound = new Uint8Array(n);
    let prev = Infinity;
    for (let t = 0; t < o.steps; t++) {
      for (let j = 0; j < w.length; j++) xp[j] = lo + half * (Math.tanh(w[j]!) + 1);
      const r = await model.lossAndGradient(tensor(xp), labelsForHead, head);
      // the margin head returns the attacker's gain; f = −gain (untargeted) or the targeted margin itself
      let total = 0;
      for (let i = 0; i < n; i++) {
        let l2 = 0;
        for (let j = i * d; j < (i + 1) * d; j++) l2 += (xp[j]! - x.data[j]!) ** 2;
        const f = targets ? r.loss[i]! : -r.loss[i]!;
        total += l2 + c[i]! * f;
        const p = rowArgmax(r.output.data, i, k);
        // With κ > 0 a point counts only once the attacker's class leads by κ (the paper's compare(); the head's value
        // is that lead clipped at κ), so the search keeps confident examples rather than ones just over the boundary.
        const lead = targets ? -r.loss[i]! : r.loss[i]!;
        const ok = (succT ? p === succT[i] : targets ? p === targets[i] : p !== y[i]) && (o.kappa === 0 || lead >= kappaHeld);
        if (ok) {
          succeededThisRound[i] = 1;
          if (l2 < bestL2[i]! * bestL2[i]!) {
            bestL2[i] = Math.sqrt(l2);
            best.set(xp.subarray(i * d, (i + 1) * d), i * d);
          }
        }
      }
      if (o.abortEarly && t % Math.max(1, Math.floor(o.steps / 10)) === 0) {
        if (total > prev * 0.9999) break;
        prev = total;
      }
      const sign = targets ? 1 : -1;
      for (let i = 0; i < n; i++) {
        const ci = c[i]! * sign;
        for (let j = i * d; j < (i + 1) * d; j++) {
          const th = Math.tanh(w[j]!);
          // d/dw of ‖x' − x‖² + c·f through x' = lo + half·(tanh w + 1)
          gw[j] = (2 * (xp[j]! - x.data[j]!) + ci * r.grad.data[j]!) * half * (1 - th * th);
        }
      }
      adam.step(w, gw);
    }
    if (o.binarySearchSteps === 1) break;
    for (let i = 0; i < n; i++) {
      if (succeededThisRound[i]) {
        upper[i] = Math.min(upper[i]!, c[i]!);
        if (upper[i]! < 1e9) c[i] = (lower[i]! + upper[i]!) / 2;
      } else {
        lower[i] = Math.max(lower[i]!, c[i]!);
        c[i] = upper[i]! < 1e9 ? (lower[i]! + upper[i]!) / 2 : c[i]! * 10;
      }
    }
  }
  return tensor(best);
}

export const cwDefinition: AttackDefinition<CwOptions> = {
  name: 'cw',
  summary: 'Carlini & Wagner L2: tanh box, Adam, binary search over c, confidence kappa (minimum-norm)',
  paper: CW,
  whiteBox: true,
  minimumNorm: true,
  norms: [2],
  targeted: true,
  schema: defineSchema<CwOptions>(
    {
      ...commonFields({ norms: [2], eps: Infinity, epsDoc: 'Optional L2 budget: Infinity (default) reports every adversarial example found; a finite eps counts only those within it.' }),
      steps: { type: 'number', integer: true, min: 1, max: 1000000, default: 1000, doc: 'Adam iterations per binary-search step (the paper uses up to 10000 with early abort).', ref: CW },
      lr: { type: 'number', min: 0, exclusiveMin: true, max: 1e3, default: 0.01, doc: 'Adam learning rate (paper: 0.01).', ref: CW },
      initialConst: { type: 'number', min: 0, exclusiveMin: true, max: 1e10, default: 1e-3, doc: 'Initial trade-off constant c (paper: 1e-3, searched upward).', ref: CW },
      binarySearchSteps: { type: 'number', integer: true, min: 1, max: 100, default: 9, doc: 'Binary-search steps over c per example (paper: 9); 1 runs with a fixed c.', ref: CW },
      kappa: { type: 'number', min: 0, default: 0, doc: 'Confidence κ: the margin the adversarial class must win by (paper: 0 for minimum distortion).', ref: CW },
      abortEarly: { type: 'boolean', default: true, doc: 'End a binary-search step when the total objective has not fallen by 0.01% over a tenth of the steps (paper).', ref: CW },
    },
    (o, a) => {
      if (o.criterion.kind === 'targeted-topk') throw new BulwarkError('BULWARK_E_ARG', `${a}: use explicit targets with C&W (targeted-topk is for APGD-T)`);
    },
  ),
  craft: cwCraft,
};

/**
 * C&W L2 (Carlini & Wagner 2017, https://arxiv.org/abs/1608.04644), run and verified by the shared runner.
 * @param model a white-box model
 * @param x clean inputs [N, ...]
 * @param y true labels
 * @param options see {@link CwOptions}
 * @returns the verified {@link AttackResult}; `norms.l2` holds the distortion found
 * @throws BulwarkError BULWARK_E_ARG, BULWARK_E_MODEL (no gradients), BULWARK_E_SHAPE, BULWARK_E_LABELS
 * @example const r = await cw(model, x, y, { binarySearchSteps: 5, steps: 200 });
 */
export const cw = defineAttack<CwOptions>(cwDefinition);
