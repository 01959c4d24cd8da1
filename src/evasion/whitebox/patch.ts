import { BulwarkError } from '../../core/errors.js';
import type { Rng } from '../../core/rng.js';
import type { Float32Tensor } from '../../core/tensor.js';
import { commonFields, defineSchema } from '../options.js';
import { defineAttack } from '../runner.js';
import type { AttackDefinition, CommonOptions, ThreatModel } from '../types.js';
import { Adam, objective } from './common.js';

/** Options of {@link patch}. */
export interface PatchOptions extends CommonOptions {
  steps: number;
  batchSize: number;
  lr: number;
}

const BROWN = 'Brown, Mané, Roy, Abadi & Gilmer 2017, https://arxiv.org/abs/1712.09665';

/** Side of the square patch covering a fraction `area` of an H×W image (at least 1 pixel). */
export function patchSide(area: number, h: number, w: number): number {
  return Math.max(1, Math.min(h, w, Math.round(Math.sqrt(area * h * w))));
}

/** Geometry of NCHW inputs. */
function dims(shape: number[]): { c: number; h: number; w: number } {
  if (shape.length !== 4) throw new BulwarkError('BULWARK_E_SHAPE', `the patch attack needs images [N,C,H,W], got [${shape.join(',')}]`);
  return { c: shape[1]!, h: shape[2]!, w: shape[3]! };
}

/** Writes x with the patch pasted at (top, left) into out (all rows of x, one position per row). */
export function pastePatch(x: Float32Tensor, patch: Float32Array, side: number, positions: Int32Array, out: Float32Array): void {
  const { c, h, w } = dims(x.shape);
  const n = x.shape[0]!;
  out.set(x.data);
  for (let i = 0; i < n; i++) {
    const top = positions[2 * i]!;
    const left = positions[2 * i + 1]!;
    for (let ch = 0; ch < c; ch++) {
      for (let r = 0; r < side; r++) {
        const o = ((i * c + ch) * h + top + r) * w + left;
        out.set(patch.subarray((ch * side + r) * side, (ch * side + r + 1) * side), o);
      }
    }
  }
}

/** Uniform random top-left positions (2 per row) that keep the patch inside the image. */
export function randomPositions(rng: Rng, n: number, side: number, h: number, w: number): Int32Array {
  const p = new Int32Array(2 * n);
  for (let i = 0; i < n; i++) {
    p[2 * i] = rng.int(h - side + 1);
    p[2 * i + 1] = rng.int(w - side + 1);
  }
  return p;
}

export const patchDefinition: AttackDefinition<PatchOptions> = {
  name: 'patch',
  summary: 'Universal adversarial patch: a square patch at random positions, optimized by expectation over positions (Brown et al. 2017)',
  paper: BROWN,
  whiteBox: true,
  norms: [0],
  targeted: true,
  wholeBatch: true,
  schema: defineSchema<PatchOptions>(
    {
      ...commonFields({ norms: [0], eps: 0.1, epsDoc: 'Patch area as a fraction of the image area (a square of side round(√(eps·H·W))); the runner checks the L0 count of changed pixel positions against side².' }),
      steps: { type: 'number', integer: true, min: 1, max: 1000000, default: 500, doc: 'Optimization steps, each on a random batch of images with random positions (expectation over transformations).', ref: BROWN },
      batchSize: { type: 'number', integer: true, min: 1, max: 100000, default: 32, doc: 'Images (each at its own random position) per step.', ref: BROWN },
      lr: { type: 'number', min: 0, exclusiveMin: true, default: 0.05, doc: 'Adam learning rate on the patch values (input units).', ref: BROWN },
    },
    (o, a) => {
      if (!(o.eps > 0 && o.eps <= 1)) throw new BulwarkError('BULWARK_E_ARG', `${a}: eps is the patch area as a fraction of the image, in (0, 1]; got ${o.eps}`);
      if (o.criterion.kind === 'targeted-topk') throw new BulwarkError('BULWARK_E_ARG', `${a}: a universal patch aims at one target class; give targets`);
    },
  ),
  threat(o: PatchOptions, _bounds: [number, number], shape: number[]): ThreatModel {
    const { h, w } = dims(shape);
    const side = patchSide(o.eps, h, w);
    return { norm: 0, eps: side * side };
  },
  async craft(ctx) {
    const { x, y, targets, bounds, options: o, rng } = ctx;
    const { c, h, w } = dims(x.shape);
    const side = patchSide(o.eps, h, w);
    let target: number | undefined;
    if (targets) {
      const distinct = new Set(targets);
      if (distinct.size !== 1) throw new BulwarkError('BULWARK_E_ARG', `patch: a universal patch aims at one target class; got ${distinct.size} different targets`);
      target = targets[0]!;
    }
    const train = Array.from({ length: x.shape[0]! }, (_, i) => i).filter((i) => target === undefined || y[i] !== target);
    if (train.length === 0) throw new BulwarkError('BULWARK_E_ARG', 'patch: no example to train on (every label equals the target)');
    const patch = new Float32Array(c * side * side);
    rng.fillUniform(patch, bounds[0], bounds[1]);
    const adam = new Adam(patch.length, o.lr);
    const b = Math.min(o.batchSize, train.length);
    const d = c * h * w;
    const gPatch = new Float32Array(patch.length);
    for (let step = 0; step < o.steps; step++) {
      const pick = Int32Array.from({ length: b }, () => train[rng.int(train.length)]!);
      const xb = new Float32Array(b * d);
      for (let r = 0; r < b; r++) xb.set(x.data.subarray(pick[r]! * d, (pick[r]! + 1) * d), r * d);
      const pos = randomPositions(rng, b, side, h, w);
      const xt: Float32Tensor = { data: xb, shape: [b, c, h, w], dtype: 'float32' };
      const adv = new Float32Array(xb.length);
      pastePatch(xt, patch, side, pos, adv);
      const ys = Int32Array.from(pick, (i) => y[i]!);
      const obj = await objective(ctx.model, { data: adv, shape: [b, c, h, w], dtype: 'float32' }, ys, target === undefined ? undefined : new Int32Array(b).fill(target), 'ce');
      // the patch gradient is the input gradient gathered at each image's patch window, averaged over the batch
      gPatch.fill(0);
      for (let r = 0; r < b; r++) {
        const top = pos[2 * r]!;
        const left = pos[2 * r + 1]!;
        for (let ch = 0; ch < c; ch++) {
          for (let i = 0; i < side; i++) {
            for (let j = 0; j < side; j++) {
              gPatch[(ch * side + i) * side + j] = gPatch[(ch * side + i) * side + j]! - obj.grad.data[((r * c + ch) * h + top + i) * w + left + j]! / b;
            }
          }
        }
      }
      adam.step(patch, gPatch);
      for (let j = 0; j < patch.length; j++) patch[j] = Math.min(bounds[1], Math.max(bounds[0], patch[j]!));
    }
    // evaluation: every image gets the patch at its own random position
    const n = x.shape[0]!;
    const positions = randomPositions(rng, n, side, h, w);
    const out = new Float32Array(x.data.length);
    pastePatch(x, patch, side, positions, out);
    return {
      adversarial: { data: out, shape: [...x.shape], dtype: 'float32' },
      extras: { patch: { data: patch, shape: [c, side, side], dtype: 'float32' } as Float32Tensor, side, positions, target },
    };
  },
};

/**
 * Adversarial patch (Brown et al. 2017, https://arxiv.org/abs/1712.09665): a universal square patch, optimized with
 * Adam over random positions (expectation over transformations, location only) to raise the target class
 * (targeted, one class for all images) or the true-class loss (untargeted); evaluated with the patch at a seeded
 * random position per image. The threat model is L0 over pixel positions (side² positions may change).
 * @param options `{ eps: area fraction, steps, batchSize, lr, criterion, seed }`
 * @returns the verified {@link AttackResult}; `extras.patch` [C, side, side], `extras.positions` (top, left per image)
 * @example const r = await patch(model, x, y, { eps: 0.1, criterion: { kind: 'targeted', targets: new Int32Array(n).fill(3) } });
 */
export const patch = defineAttack<PatchOptions>(patchDefinition);
