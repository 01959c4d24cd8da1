/** Image similarity scores for judging reconstructions. */
import { BulwarkError } from '../../core/errors.js';

/** Cosine similarity of two equally long vectors (0 when either is all zeros). */
export function cosineSimilarity(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new BulwarkError('BULWARK_E_SHAPE', `cosine similarity of vectors of ${a.length} and ${b.length} values`);
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i]! * b[i]!;
    aa += a[i]! * a[i]!;
    bb += b[i]! * b[i]!;
  }
  return aa === 0 || bb === 0 ? 0 : ab / Math.sqrt(aa * bb);
}

/**
 * Mean structural similarity (Wang, Bovik, Sheikh, Simoncelli 2004) over `win`x`win` windows (uniform weights,
 * stride 1, valid positions), per channel then averaged, with C1 = (0.01 L)², C2 = (0.03 L)².
 * @param a image CHW
 * @param b image CHW
 * @param shape [C, H, W]
 * @param range dynamic range L; default 1
 * @param win window size; default 7 (scikit-image's default)
 */
export function ssim(a: ArrayLike<number>, b: ArrayLike<number>, shape: number[], range = 1, win = 7): number {
  const [c, h, w] = shape.length === 3 ? shape : [1, shape[0]!, shape[1]!];
  if (a.length !== c! * h! * w! || b.length !== a.length) throw new BulwarkError('BULWARK_E_SHAPE', `SSIM of ${a.length} and ${b.length} values for shape [${shape.join(',')}]`);
  const k = Math.min(win, h!, w!);
  const c1 = (0.01 * range) ** 2;
  const c2 = (0.03 * range) ** 2;
  let total = 0;
  let count = 0;
  const np = k * k;
  for (let ch = 0; ch < c!; ch++) {
    const off = ch * h! * w!;
    for (let y = 0; y + k <= h!; y++) {
      for (let x = 0; x + k <= w!; x++) {
        let sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0;
        for (let dy = 0; dy < k; dy++) {
          for (let dx = 0; dx < k; dx++) {
            const i = off + (y + dy) * w! + x + dx;
            const va = a[i]!;
            const vb = b[i]!;
            sa += va;
            sb += vb;
            saa += va * va;
            sbb += vb * vb;
            sab += va * vb;
          }
        }
        const ma = sa / np;
        const mb = sb / np;
        // Sample (n-1) covariances, as scikit-image's default.
        const va = (saa - np * ma * ma) / (np - 1);
        const vb = (sbb - np * mb * mb) / (np - 1);
        const cov = (sab - np * ma * mb) / (np - 1);
        total += ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2));
        count++;
      }
    }
  }
  return total / count;
}
