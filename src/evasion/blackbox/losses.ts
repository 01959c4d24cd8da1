/**
 * Losses computed from a model's outputs alone (no graph): what score-based black-box attacks and gradient
 * estimators optimize. They mirror the fused heads of `autodiff/heads.ts` so that an estimated gradient is an
 * estimate of the same quantity a white-box model differentiates.
 */
import { BulwarkError } from '../../core/errors.js';
import type { HeadSpec } from '../../autodiff/heads.js';
import type { OutputKind } from '../../runtime/model.js';

/** Floor of probabilities before their log (the same clamp the white-box probs head uses). */
const TINY = 1e-30;

/**
 * Logit-like scores of model outputs: logits as they are (the same array), probabilities as log-probabilities in
 * a new array (they differ from the logits before a softmax by a per-row constant, so margins and cross-entropy
 * agree).
 * @param out model outputs [n, K]
 * @param kind what the model outputs
 * @returns scores [n, K] (the same array for logits)
 */
export function scoresOf(out: Float32Array, kind: OutputKind): Float32Array {
  if (kind === 'logits') return out;
  const s = new Float32Array(out.length);
  for (let i = 0; i < out.length; i++) s[i] = Math.log(Math.max(out[i]!, TINY));
  return s;
}

/** max_{j ≠ y} z_j − z_y of row `r` (positive when the row is misclassified away from y). */
export function marginOf(z: Float32Array, r: number, k: number, y: number): number {
  let other = -Infinity;
  for (let j = 0; j < k; j++) if (j !== y && z[r * k + j]! > other) other = z[r * k + j]!;
  return other - z[r * k + y]!;
}

/** −log softmax(z)_y of row `r`, computed stably. */
export function crossEntropyOf(z: Float32Array, r: number, k: number, y: number): number {
  let m = -Infinity;
  for (let j = 0; j < k; j++) m = Math.max(m, z[r * k + j]!);
  let s = 0;
  for (let j = 0; j < k; j++) s += Math.exp(z[r * k + j]! - m);
  return m + Math.log(s) - z[r * k + y]!;
}

function sortedDesc(z: Float32Array, r: number, k: number): number[] {
  return Array.from(z.subarray(r * k, (r + 1) * k)).sort((a, b) => b - a);
}

/**
 * The per-example loss of a head on scores (logits or log-probabilities), as `autodiff/heads.ts` defines it:
 *  - ce: −log softmax(z)_y
 *  - margin: max_{j≠y} z_j − z_y, clipped above at kappa (untargeted) or below at −kappa (targeted; y = target)
 *  - dlr: Croce & Hein 2020 (arXiv:2003.01690), untargeted and targeted
 * @param z scores [n, K]
 * @param labels class ids [n] (targets for targeted ce and margin)
 * @param targets target classes [n] for targeted DLR
 * @returns losses [n]
 * @throws BulwarkError BULWARK_E_ARG for the mse head (it needs regression targets, not classes)
 */
export function headLoss(z: Float32Array, k: number, head: HeadSpec, labels: ArrayLike<number>, targets?: ArrayLike<number>): Float32Array {
  const n = labels.length;
  const out = new Float32Array(n);
  const kappa = head.kappa ?? Infinity;
  for (let r = 0; r < n; r++) {
    const y = labels[r]!;
    switch (head.kind) {
      case 'ce': {
        const eps = head.labelSmoothing ?? 0;
        let v = crossEntropyOf(z, r, k, y);
        if (eps > 0) {
          let mean = 0;
          for (let j = 0; j < k; j++) mean += crossEntropyOf(z, r, k, j);
          v = (1 - eps) * v + (eps / k) * mean;
        }
        out[r] = v;
        break;
      }
      case 'margin': {
        let v = marginOf(z, r, k, y);
        if (Number.isFinite(kappa)) v = head.targeted ? Math.max(v, -kappa) : Math.min(v, kappa);
        out[r] = v;
        break;
      }
      case 'dlr': {
        const s = sortedDesc(z, r, k);
        if (!head.targeted) {
          out[r] = marginOf(z, r, k, y) / (s[0]! - s[2]! + 1e-12);
        } else {
          if (!targets) throw new BulwarkError('BULWARK_E_ARG', 'the targeted DLR loss needs target classes');
          const t = targets[r]!;
          out[r] = (z[r * k + y]! - z[r * k + t]!) / (s[0]! - (s[2]! + s[3]!) * 0.5 + 1e-12);
        }
        break;
      }
      default:
        throw new BulwarkError('BULWARK_E_ARG', `the ${head.kind} loss cannot be estimated from class scores`, { hint: 'Use the ce, margin or dlr loss with a gradient estimator.' });
    }
  }
  return out;
}
