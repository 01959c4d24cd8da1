/**
 * Per-example statistics of a model's outputs that membership attacks threshold: the cross-entropy loss and the
 * logit-scaled confidence φ(p) = log(p_y / (1 − p_y)) of the true class (Carlini et al. 2022, §4.2), computed as
 * z_y − logsumexp_{j≠y} z_j so it stays finite for confidences that round to 1 in float32.
 */
import type { OutputKind } from '../../runtime/model.js';

/** Per-example loss and logit-scaled confidence. */
export interface OutputStats {
  /** Cross-entropy −log p_y. */
  loss: Float64Array;
  /** log(p_y/(1 − p_y)). */
  confidence: Float64Array;
}

/**
 * Loss and logit-scaled confidence of each example from model outputs [N·K].
 * @param outputs logits, or probabilities when `kind` is probs (their logs act as logits)
 * @param y labels
 * @param k classes
 * @param kind what the outputs are; default logits
 */
export function outputStats(outputs: ArrayLike<number>, y: ArrayLike<number>, k: number, kind: OutputKind = 'logits'): OutputStats {
  const n = y.length;
  const loss = new Float64Array(n);
  const confidence = new Float64Array(n);
  const z = new Float64Array(k);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < k; j++) {
      const v = outputs[i * k + j]!;
      z[j] = kind === 'probs' ? Math.log(Math.max(v, 1e-38)) : v;
    }
    const label = y[i]!;
    let max = -Infinity;
    let maxOther = -Infinity;
    for (let j = 0; j < k; j++) {
      max = Math.max(max, z[j]!);
      if (j !== label) maxOther = Math.max(maxOther, z[j]!);
    }
    let all = 0;
    let other = 0;
    for (let j = 0; j < k; j++) {
      all += Math.exp(z[j]! - max);
      if (j !== label) other += Math.exp(z[j]! - maxOther);
    }
    loss[i] = max + Math.log(all) - z[label]!;
    confidence[i] = k > 1 ? z[label]! - (maxOther + Math.log(other)) : Infinity;
  }
  return { loss, confidence };
}
