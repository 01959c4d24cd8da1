/**
 * Gradient-masking checks: signs that a robustness number is an artefact of attacks that cannot see the model,
 * not of robustness (Athalye, Carlini & Wagner 2018, arXiv:1802.00420; Carlini et al. 2019, arXiv:1902.06705,
 * section 5). Each check passes, raises a flag (the result is unreliable) or is skipped with a reason.
 */
import { Rng } from '../../core/rng.js';
import type { Float32Tensor } from '../../core/tensor.js';
import type { HeadSpec } from '../../autodiff/heads.js';
import { clone, project, rowSize, takeRows } from '../geometry.js';
import type { Model } from '../types.js';
import { randomInBall } from '../whitebox/common.js';
import type { RobustnessCurve } from './curves.js';
import type { EnsembleResult } from './ensemble.js';
import { ENSEMBLE_PAPERS } from './suites.js';
import { gradientsAvailable, type EvalNorm } from './validate.js';

/** The checks, by id. */
export type MaskingCheckId = 'blackbox-beats-whitebox' | 'non-monotone-curve' | 'zero-gradients' | 'randomized-output' | 'saturated-probs';

/** Every check id, in report order. */
export const MASKING_CHECK_IDS: readonly MaskingCheckId[] = ['blackbox-beats-whitebox', 'non-monotone-curve', 'zero-gradients', 'randomized-output', 'saturated-probs'];

/** Outcome of one check. */
export interface MaskingCheck {
  id: MaskingCheckId;
  title: string;
  /** `flag`: the evaluation is unreliable for this reason. */
  status: 'pass' | 'flag' | 'skipped';
  /** How much the flag undermines the result (meaningful when flagged). */
  severity: 'low' | 'medium' | 'high';
  /** One sentence: what was seen, or why the check was skipped. */
  message: string;
  /** The measured value (a count, a fraction, a difference), null when skipped. */
  value: number | null;
  /** The value above which the check flags. */
  threshold: number;
  evidence: Record<string, unknown>;
  /** Where the check comes from. */
  reference: string;
}

/** Thresholds of the checks (documented in docs/REPORT.md). */
export const MASKING_THRESHOLDS = {
  /** Examples a black-box attack broke after every white-box attack failed: any is a flag. */
  blackBoxWins: 0,
  /** Smallest rise of robust accuracy with eps that flags, as a fraction (raised to 1/n for small curves). */
  curveRise: 0.01,
  /** Fraction of examples with an all-zero or non-finite input gradient that flags. */
  zeroGradientFraction: 0.1,
  /** Relative difference between two predictions of the same inputs that flags (float noise is far below). */
  randomizedRelativeDifference: 1e-6,
  /** Fraction of examples whose probability output is all zeros and ones to float32 precision that flags. */
  saturatedFraction: 0.5,
} as const;

/** Options of {@link maskingChecks}. */
export interface MaskingOptions {
  /** The main ensemble run on x. */
  ensemble: EnsembleResult;
  /** The robustness curve on (a prefix of) x, when one was drawn. */
  curve?: RobustnessCurve;
  eps: number;
  norm: EvalNorm;
  seed?: number;
  /** Examples used by the gradient and randomness checks (the first ones of x); default 32. */
  examples?: number;
}

/**
 * Runs every gradient-masking check.
 * @param model the evaluated model
 * @param x the evaluated inputs (as given to the ensemble)
 * @param y their labels
 * @returns one {@link MaskingCheck} per id of {@link MASKING_CHECK_IDS}
 * @example const checks = await maskingChecks(model, x, y, { ensemble, curve, eps: 0.3, norm: 'inf' });
 */
export async function maskingChecks(model: Model, x: Float32Tensor, y: ArrayLike<number>, opts: MaskingOptions): Promise<MaskingCheck[]> {
  const m = Math.min(x.shape[0]!, opts.examples ?? 32);
  const rows = Int32Array.from({ length: m }, (_, i) => i);
  const xs = takeRows(x, rows);
  const ys = Int32Array.from(rows, (i) => y[i]!);
  const first = await model.predict(xs);
  const second = await model.predict(xs);
  return [
    blackBoxBeatsWhiteBox(opts.ensemble, opts.curve),
    nonMonotoneCurve(opts.curve),
    await zeroGradients(model, xs, ys, opts),
    randomizedOutput(first, second, opts.ensemble),
    saturatedProbs(model, first),
  ];
}

/** Whether any check raised a flag. */
export function isReliable(checks: MaskingCheck[]): boolean {
  return checks.every((c) => c.status !== 'flag');
}

function check(id: MaskingCheckId, title: string, threshold: number, reference: string) {
  return {
    pass: (message: string, value: number, evidence: Record<string, unknown> = {}): MaskingCheck => ({ id, title, status: 'pass', severity: 'low', message, value, threshold, evidence, reference }),
    flag: (severity: MaskingCheck['severity'], message: string, value: number, evidence: Record<string, unknown> = {}): MaskingCheck => ({ id, title, status: 'flag', severity, message, value, threshold, evidence, reference }),
    skip: (message: string, evidence: Record<string, unknown> = {}): MaskingCheck => ({ id, title, status: 'skipped', severity: 'low', message, value: null, threshold, evidence, reference }),
  };
}

/** A black-box attack broke examples that every white-box attack failed on: the gradients mislead. */
function blackBoxBeatsWhiteBox(ens: EnsembleResult, curve: RobustnessCurve | undefined): MaskingCheck {
  const c = check('blackbox-beats-whitebox', 'A black-box attack beat the white-box attacks', MASKING_THRESHOLDS.blackBoxWins, `${ENSEMBLE_PAPERS.masking}; ${ENSEMBLE_PAPERS.autoattack}`);
  const ranWhite = ens.members.filter((m) => m.kind === 'white-box' && m.status !== 'skipped');
  const blackMembers = ens.members.filter((m) => m.kind === 'black-box');
  if (ranWhite.length === 0) return c.skip('no white-box attack could run on this model, so there is nothing to compare');
  if (blackMembers.length === 0 || blackMembers.every((m) => m.status === 'skipped')) return c.skip('no black-box attack could run on these inputs');
  const black = new Set(blackMembers.map((m) => m.name));
  const examples: number[] = [];
  ens.brokenBy.forEach((by, i) => {
    if (by !== null && black.has(by)) examples.push(i);
  });
  const perEps: Record<string, number> = { [String(ens.eps)]: examples.length };
  let total = examples.length;
  if (curve && curve.members.some((name) => black.has(name))) {
    for (const p of curve.points) {
      if (p.reused || p.eps === 0) continue;
      const k = Object.entries(p.brokenBy).filter(([name]) => black.has(name)).reduce((a, [, v]) => a + v, 0);
      perEps[String(p.eps)] = k;
      total += k;
    }
  }
  const attackedByBlack = blackMembers.reduce((a, m) => a + m.attacked, 0);
  const evidence = { examples: examples.slice(0, 50), perEps, blackBoxAttacked: attackedByBlack };
  if (total <= MASKING_THRESHOLDS.blackBoxWins) return c.pass('no example broken by a black-box attack had survived the white-box attacks', total, evidence);
  const fraction = attackedByBlack > 0 ? examples.length / attackedByBlack : 0;
  return c.flag(fraction > 0.1 ? 'high' : 'medium', `${total} example${total === 1 ? '' : 's'} survived every white-box attack but fell to ${[...black].join(', ')}: the white-box attacks see misleading gradients (gradient masking), so only the black-box part of the result can be trusted`, total, evidence);
}

/** Robust accuracy that rises with eps means the attack at the larger eps missed what the smaller ball held. */
function nonMonotoneCurve(curve: RobustnessCurve | undefined): MaskingCheck {
  const tol = curve ? Math.max(MASKING_THRESHOLDS.curveRise, 1 / Math.max(1, curve.n)) : MASKING_THRESHOLDS.curveRise;
  const c = check('non-monotone-curve', 'Robust accuracy rises with eps', tol, ENSEMBLE_PAPERS.checklist);
  if (!curve || curve.points.length < 2) return c.skip('no robustness curve was drawn');
  let rise = 0;
  let at: [number, number] = [0, 0];
  for (let i = 0; i < curve.points.length; i++) {
    for (let j = i + 1; j < curve.points.length; j++) {
      const r = curve.points[j]!.robustAccuracy - curve.points[i]!.robustAccuracy;
      if (r > rise) {
        rise = r;
        at = [curve.points[i]!.eps, curve.points[j]!.eps];
      }
    }
  }
  const regressions = curve.points.reduce((a, p) => a + p.regressions, 0);
  const evidence = { points: curve.points.map((p) => ({ eps: p.eps, robustAccuracy: p.robustAccuracy })), regressions, largestRise: rise, between: at };
  if (rise <= tol) return c.pass(`robust accuracy does not rise with eps by more than ${tol.toFixed(3)} (largest rise ${rise.toFixed(3)}; ${regressions} example${regressions === 1 ? '' : 's'} robust at a larger eps after breaking at a smaller one)`, rise, evidence);
  return c.flag('medium', `robust accuracy rises by ${(100 * rise).toFixed(1)} points from eps ${at[0]} to eps ${at[1]}, though the larger ball holds every adversarial example of the smaller: the attacks are not converging`, rise, evidence);
}

/** All-zero or non-finite input gradients on many examples: shattered gradients (Round, Sign, quantizers). */
async function zeroGradients(model: Model, x: Float32Tensor, y: Int32Array, opts: MaskingOptions): Promise<MaskingCheck> {
  const c = check('zero-gradients', 'Zero or non-finite input gradients', MASKING_THRESHOLDS.zeroGradientFraction, ENSEMBLE_PAPERS.masking);
  const g = gradientsAvailable(model);
  if (!g.ok || !model.lossAndGradient) return c.skip(`no gradients to inspect: ${g.reason}`);
  if (model.numClasses > 0 && model.numClasses < 2) return c.skip('the margin loss needs at least two classes');
  const n = y.length;
  const d = rowSize(x);
  // The margin loss max_{j≠y} z_j − z_y does not saturate like cross-entropy does on confident examples.
  const head: HeadSpec = { kind: 'margin', kappa: Infinity };
  const atClean = await model.lossAndGradient(x, y, head);
  const noisy = clone(x);
  const noise = randomInBall(new Rng(opts.seed ?? 0), n, d, opts.norm, opts.eps, new Float32Array(noisy.data.length));
  for (let j = 0; j < noisy.data.length; j++) noisy.data[j] = noisy.data[j]! + noise[j]!;
  project(noisy, x, opts.norm, opts.eps, model.bounds);
  const atNoisy = await model.lossAndGradient(noisy, y, head);
  const ce = await model.lossAndGradient(x, y, { kind: 'ce' });
  let zero = 0;
  let nonFinite = 0;
  let ceZero = 0;
  const bad: number[] = [];
  for (let i = 0; i < n; i++) {
    const a = rowStats(atClean.grad.data, i * d, d);
    const b = rowStats(atNoisy.grad.data, i * d, d);
    const e = rowStats(ce.grad.data, i * d, d);
    if (e.zero) ceZero++;
    if (!a.finite || !b.finite) {
      nonFinite++;
      bad.push(i);
    } else if (a.zero && b.zero) {
      zero++;
      bad.push(i);
    }
  }
  const withNodes = model as Model & { zeroGradientNodes?: (h: HeadSpec) => Promise<string[]> };
  const zeroNodes = typeof withNodes.zeroGradientNodes === 'function' ? await withNodes.zeroGradientNodes(head) : [];
  const fraction = (zero + nonFinite) / n;
  const evidence = { examples: n, zero, nonFinite, fraction, zeroGradientNodes: zeroNodes, crossEntropyZeroGradient: ceZero, badExamples: bad.slice(0, 50), loss: 'margin (at x and at a random point of the eps-ball)' };
  if (fraction >= MASKING_THRESHOLDS.zeroGradientFraction) {
    const why = zeroNodes.length > 0 ? `; the gradient path holds ops whose derivative is zero almost everywhere (${zeroNodes.slice(0, 5).join(', ')})` : '';
    return c.flag(fraction >= 0.5 ? 'high' : 'medium', `${zero + nonFinite} of ${n} examples have an all-zero or non-finite input gradient at x and nearby${why}: gradient attacks cannot move them`, fraction, evidence);
  }
  if (zeroNodes.length > 0) {
    return c.flag('low', `gradients are non-zero on ${n - zero - nonFinite} of ${n} examples, but the gradient path holds ops whose derivative is zero almost everywhere (${zeroNodes.slice(0, 5).join(', ')}); part of the model is invisible to gradient attacks`, fraction, evidence);
  }
  return c.pass(`every inspected example has a finite, non-zero margin gradient (${ceZero} of ${n} have a zero cross-entropy gradient from a saturated softmax, which the DLR and margin losses avoid)`, fraction, evidence);
}

function rowStats(g: Float32Array, off: number, d: number): { zero: boolean; finite: boolean } {
  let zero = true;
  let finite = true;
  for (let j = off; j < off + d; j++) {
    const v = g[j]!;
    if (!Number.isFinite(v)) finite = false;
    else if (v !== 0) zero = false;
  }
  return { zero, finite };
}

/** Two predictions of the same inputs differ: a randomized defense, which needs EOT attacks. */
function randomizedOutput(a: Float32Tensor, b: Float32Tensor, ens: EnsembleResult): MaskingCheck {
  const c = check('randomized-output', 'Randomized outputs', MASKING_THRESHOLDS.randomizedRelativeDifference, `${ENSEMBLE_PAPERS.masking} (section 4.1: expectation over transformation)`);
  let diff = 0;
  let scale = 0;
  for (let j = 0; j < a.data.length; j++) {
    const u = a.data[j]!;
    const v = b.data[j]!;
    const dd = Number.isNaN(u) !== Number.isNaN(v) ? Infinity : Math.abs(u - v);
    if (dd > diff) diff = dd;
    if (Math.abs(u) > scale) scale = Math.abs(u);
  }
  const rel = diff / Math.max(scale, 1e-12);
  const evidence = { examples: a.shape[0], maxAbsDifference: diff, relativeDifference: rel, verificationMismatches: ens.verificationMismatches };
  if (rel > MASKING_THRESHOLDS.randomizedRelativeDifference || ens.verificationMismatches > 0) {
    const parts = [];
    if (rel > MASKING_THRESHOLDS.randomizedRelativeDifference) parts.push(`two predictions of the same inputs differ by up to ${diff.toPrecision(3)} (relative ${rel.toExponential(2)})`);
    if (ens.verificationMismatches > 0) parts.push(`${ens.verificationMismatches} adversarial example${ens.verificationMismatches === 1 ? ' was' : 's were'} classified correctly when predicted again`);
    return c.flag('medium', `${parts.join('; ')}: the model is randomized, and attacks need expectation over transformation (EOT) to be reliable`, rel, evidence);
  }
  return c.pass('two predictions of the same inputs are identical', rel, evidence);
}

/** A probability output at 0/1 to float precision hides the score surface from score-based and log-prob attacks. */
function saturatedProbs(model: Model, out: Float32Tensor): MaskingCheck {
  const c = check('saturated-probs', 'Saturated probability output', MASKING_THRESHOLDS.saturatedFraction, `${ENSEMBLE_PAPERS.masking}; Carlini & Wagner 2017, https://arxiv.org/abs/1607.04311 (defensive distillation)`);
  if (model.outputKind !== 'probs') return c.skip('the model outputs logits, which the attacks use directly');
  const n = out.shape[0]!;
  const k = out.data.length / n;
  const tiny = 1.2e-7; // float32 machine epsilon: a probability this close to 0 or 1 carries no gradient signal
  let saturated = 0;
  for (let i = 0; i < n; i++) {
    let all = true;
    for (let j = 0; j < k; j++) {
      const p = out.data[i * k + j]!;
      if (!(p <= tiny || p >= 1 - tiny)) {
        all = false;
        break;
      }
    }
    if (all) saturated++;
  }
  const fraction = saturated / n;
  const reason = (model as { outputKindReason?: string }).outputKindReason;
  const evidence = { examples: n, saturated, fraction, ...(reason ? { outputKind: reason } : {}) };
  if (fraction >= MASKING_THRESHOLDS.saturatedFraction) {
    return c.flag('medium', `${saturated} of ${n} probability outputs are 0 or 1 to float32 precision: losses computed from the probabilities have no gradient and score-based attacks see a flat surface (as with defensive distillation)`, fraction, evidence);
  }
  return c.pass(`${saturated} of ${n} probability outputs are saturated`, fraction, evidence);
}
