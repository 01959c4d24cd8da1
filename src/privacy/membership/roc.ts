/**
 * ROC curves of membership scores (higher = more likely a member), AUC, and TPR at a fixed FPR read off the curve
 * with linear interpolation between its vertices (the TPR a randomized threshold achieves), never rounded to the
 * nearest point. With n negatives the curve moves in FPR steps of 1/n: a TPR at an FPR below 1/n is an
 * interpolation toward (0, TPR at the top score) and is flagged.
 */
import { BulwarkError } from '../../core/errors.js';

/** A ROC curve. */
export interface Roc {
  /** Vertex FPRs, from 0 to 1 (non-decreasing). */
  fpr: Float64Array;
  /** Vertex TPRs, from 0 to 1. */
  tpr: Float64Array;
  /** Score threshold of each vertex (member when score >= threshold; +Infinity at the origin). */
  thresholds: Float64Array;
  /** Area under the curve (ties count one half, as the Mann-Whitney U statistic). */
  auc: number;
  /** Number of members (positives). */
  positives: number;
  /** Number of non-members (negatives): the FPR resolution is 1/negatives. */
  negatives: number;
}

/** TPR at one FPR. */
export interface TprAtFpr {
  fpr: number;
  tpr: number;
  /** True when fpr < 1/negatives: the value is interpolated below the curve's first step. */
  belowResolution: boolean;
}

/**
 * The ROC curve of membership scores.
 * @param scores one score per example (higher = member)
 * @param member whether each example is a member
 * @throws BulwarkError BULWARK_E_ARG when lengths differ, a score is NaN, or a class is empty
 */
export function rocCurve(scores: ArrayLike<number>, member: ArrayLike<boolean>): Roc {
  const n = scores.length;
  if (member.length !== n) throw new BulwarkError('BULWARK_E_ARG', `${n} scores for ${member.length} membership labels`);
  let pos = 0;
  for (let i = 0; i < n; i++) {
    if (Number.isNaN(scores[i]!)) throw new BulwarkError('BULWARK_E_ARG', `membership score ${i} is NaN`);
    if (member[i]) pos++;
  }
  const neg = n - pos;
  if (pos === 0 || neg === 0) throw new BulwarkError('BULWARK_E_ARG', `a ROC curve needs members and non-members; got ${pos} and ${neg}`);
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[b]! - scores[a]!);
  const fpr = [0];
  const tpr = [0];
  const thr = [Infinity];
  let tp = 0;
  let fp = 0;
  let auc = 0;
  for (let i = 0; i < n; ) {
    const s = scores[order[i]!]!;
    let dtp = 0;
    let dfp = 0;
    while (i < n && scores[order[i]!]! === s) {
      if (member[order[i]!]) dtp++;
      else dfp++;
      i++;
    }
    // Trapezoid over the tie group: a diagonal step, so tied pairs count one half.
    auc += (dfp / neg) * ((tp + dtp / 2) / pos);
    tp += dtp;
    fp += dfp;
    fpr.push(fp / neg);
    tpr.push(tp / pos);
    thr.push(s);
  }
  return { fpr: Float64Array.from(fpr), tpr: Float64Array.from(tpr), thresholds: Float64Array.from(thr), auc, positives: pos, negatives: neg };
}

/**
 * TPR at a given FPR, linearly interpolated between the ROC vertices around it (the best TPR at exactly that FPR
 * when vertices share it).
 * @param roc the curve
 * @param fpr target FPR in [0, 1]
 */
export function tprAtFpr(roc: Roc, fpr: number): TprAtFpr {
  if (!(fpr >= 0 && fpr <= 1)) throw new BulwarkError('BULWARK_E_ARG', `FPR must be in [0, 1], got ${fpr}`);
  const f = roc.fpr;
  const t = roc.tpr;
  let i = 0;
  while (i + 1 < f.length && f[i + 1]! <= fpr) i++;
  let tpr: number;
  if (f[i] === fpr || i + 1 >= f.length) tpr = t[i]!;
  else tpr = t[i]! + ((t[i + 1]! - t[i]!) * (fpr - f[i]!)) / (f[i + 1]! - f[i]!);
  return { fpr, tpr, belowResolution: fpr < 1 / roc.negatives };
}

/** max over thresholds of (TPR + TNR)/2: the accuracy of the best single threshold on a balanced set. */
export function bestBalancedAccuracy(roc: Roc): number {
  let best = 0.5;
  for (let i = 0; i < roc.fpr.length; i++) best = Math.max(best, (roc.tpr[i]! + 1 - roc.fpr[i]!) / 2);
  return best;
}
