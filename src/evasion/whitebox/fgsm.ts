import { defineAttack } from '../runner.js';
import { commonFields, defineSchema } from '../options.js';
import { ascentDirection, objective, type AttackLoss } from './common.js';
import type { AttackDefinition, CommonOptions, Norm } from '../types.js';

/** Options of {@link fgsm}. */
export interface FgsmOptions extends CommonOptions {
  /** Loss whose gradient sign is followed. */
  loss: AttackLoss;
}

/**
 * FGSM, the fast gradient sign method (Goodfellow, Shlens & Szegedy 2015, arXiv:1412.6572): one step of size eps
 * along sign(∇ loss) (L∞), or along ∇ loss / ‖∇ loss‖₂ (the L2 fast gradient method), then clipped to the bounds.
 * Targeted: one step down the cross-entropy of the target class.
 */
export const fgsmDefinition: AttackDefinition<FgsmOptions> = {
  name: 'fgsm',
  summary: 'Fast gradient sign method: one signed-gradient step of size eps (Goodfellow et al. 2015)',
  paper: 'Goodfellow, Shlens & Szegedy 2015, https://arxiv.org/abs/1412.6572',
  whiteBox: true,
  norms: ['inf', 2] as Norm[],
  targeted: true,
  schema: defineSchema<FgsmOptions>({
    ...commonFields({ norms: ['inf', 2] }),
    loss: { type: 'enum', values: ['ce', 'margin', 'dlr'], default: 'ce', doc: 'Loss differentiated: cross-entropy as in the paper, or the C&W margin / DLR.', ref: 'https://arxiv.org/abs/1412.6572' },
  }),
  async craft(ctx) {
    const { x, y, targets, threat, bounds, options } = ctx;
    const obj = await objective(ctx.model, x, y, targets, options.loss);
    const dir = ascentDirection(obj.grad, threat.norm, new Float32Array(x.data.length));
    const out = new Float32Array(x.data.length);
    for (let j = 0; j < out.length; j++) out[j] = Math.min(bounds[1], Math.max(bounds[0], x.data[j]! + threat.eps * dir[j]!));
    return { data: out, shape: [...x.shape], dtype: 'float32' };
  },
};

/**
 * FGSM (Goodfellow et al. 2015, https://arxiv.org/abs/1412.6572), run and verified by the shared runner.
 * @param model a white-box model
 * @param x clean inputs [N, ...]
 * @param y true labels
 * @param options `{ eps, norm: 'inf' | 2, loss, criterion, seed }`
 * @returns the verified {@link AttackResult}
 * @throws BulwarkError BULWARK_E_ARG, BULWARK_E_MODEL (no gradients), BULWARK_E_SHAPE, BULWARK_E_LABELS
 * @example const r = await fgsm(model, x, y, { eps: 0.1 });
 */
export const fgsm = defineAttack<FgsmOptions>(fgsmDefinition);
