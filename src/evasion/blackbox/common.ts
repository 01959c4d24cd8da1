/**
 * Pieces shared by the black-box attacks: image layout, success tests on outputs, per-example generators.
 */
import { BulwarkError } from '../../core/errors.js';
import type { Rng } from '../../core/rng.js';
import type { Float32Tensor } from '../../core/tensor.js';

/** Channel, height and width of an image row: [N, C, H, W] or [N, H, W] (one channel). */
export function imageLayout(shape: number[], attack: string): { c: number; h: number; w: number } {
  if (shape.length === 4) return { c: shape[1]!, h: shape[2]!, w: shape[3]! };
  if (shape.length === 3) return { c: 1, h: shape[1]!, w: shape[2]! };
  throw new BulwarkError('BULWARK_E_SHAPE', `${attack} perturbs square windows of images and needs inputs [N, C, H, W] or [N, H, W]; got rank ${shape.length}`, {
    hint: 'For non-image inputs use hsj (decision-based) or nes (gradient estimation).',
  });
}

/** Index of the largest score in row r of [n, k] scores. */
export function argmaxRow(z: Float32Array, r: number, k: number): number {
  let best = 0;
  let bv = -Infinity;
  for (let j = 0; j < k; j++) {
    const v = z[r * k + j]!;
    if (v > bv) {
      bv = v;
      best = j;
    }
  }
  return best;
}

/**
 * Whether row r of the outputs meets the attack criterion: misclassified away from `label` (untargeted), or
 * classified as `target` (targeted). The same rule the runner applies when it recomputes success.
 */
export function isAdversarial(out: Float32Array, r: number, k: number, label: number, target: number | undefined): boolean {
  const p = argmaxRow(out, r, k);
  return target === undefined ? p !== label : p === target;
}

/**
 * One generator per row, keyed by the example's global index (`ctx.stream(row)`), so an example's run does not
 * depend on which others share its batch or on its position in it.
 */
export function exampleStreams(ctx: { x: Float32Tensor; stream(row: number, restart?: number, sub?: number): Rng }): Rng[] {
  return Array.from({ length: ctx.x.shape[0]! }, (_, i) => ctx.stream(i));
}

/** A [m, ...row shape] float32 tensor over `data`. */
export function rowsTensor(data: Float32Array, m: number, rowShape: number[]): Float32Tensor {
  return { data, shape: [m, ...rowShape], dtype: 'float32' };
}

/** Clamp v into [lo, hi]. */
export function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}
