/**
 * Membership-inference audit of a classifier: members (its training data) against non-members (held-out data from
 * the same distribution), scored by the loss-threshold attack (Yeom et al. 2018, "Privacy Risk in Machine Learning",
 * arXiv:1709.01604) or by LiRA, and reported as ROC, AUC and TPR at low FPR (Carlini et al. 2022 argue AUC alone
 * hides the attacks that matter: confident identification of a few members).
 */
import { BulwarkError } from '../../core/errors.js';
import { concatRows } from '../../core/tensor.js';
import type { Dataset } from '../../data/index.js';
import type { Model } from '../../runtime/model.js';
import { bestBalancedAccuracy, rocCurve, tprAtFpr, type Roc, type TprAtFpr } from './roc.js';
import { outputStats } from './scores.js';
import { liraScores, shadowConfidences, type ShadowOptions } from './lira.js';

/** Attack names. */
export const MEMBERSHIP_ATTACKS = ['loss', 'lira'] as const;
export type MembershipAttack = (typeof MEMBERSHIP_ATTACKS)[number];

/** Options of {@link auditMembership}. */
export interface AuditOptions {
  /** Default loss. */
  attack?: MembershipAttack;
  /** LiRA only: how to build and train shadows (same architecture and recipe as the target). */
  shadow?: ShadowOptions;
  /** LiRA variant; default online. */
  variant?: 'online' | 'offline';
  /** LiRA: pooled variances; default true below 64 shadows. */
  fixedVariance?: boolean;
  /** FPRs to report TPR at; default [0.001, 0.01]. */
  fprs?: number[];
}

/** One attack's result. */
export interface AttackSummary {
  attack: string;
  auc: number;
  tprAtFpr: TprAtFpr[];
  /** Accuracy of the best threshold on the balanced set. */
  balancedAccuracy: number;
}

/** A typed finding (DESIGN.md §4). */
export interface Finding {
  id: string;
  title: string;
  severity: 'info' | 'low' | 'medium' | 'high';
  metric: string;
  value: number;
  threshold: number;
  atlas: string[];
  owasp: string[];
  evidence: Record<string, unknown>;
}

/** The audit report. */
export interface AuditReport extends AttackSummary {
  members: number;
  nonMembers: number;
  /** 1 / nonMembers: the smallest FPR step the ROC can resolve. */
  fprResolution: number;
  /** LiRA details (null for the loss attack). */
  lira: { shadows: number; variant: 'online' | 'offline'; fixedVariance: boolean } | null;
  /** The loss attack on the same data, as the baseline (LiRA runs only). */
  baseline: AttackSummary | null;
  /** The ROC curve, at most ~200 vertices (for plots). */
  roc: { fpr: number[]; tpr: number[] };
  /** Per-example scores, members first (train order), then non-members (holdout order). */
  scores: number[];
  finding: Finding;
}

function summarize(attack: string, roc: Roc, fprs: number[]): AttackSummary {
  return { attack, auc: roc.auc, tprAtFpr: fprs.map((f) => tprAtFpr(roc, f)), balancedAccuracy: bestBalancedAccuracy(roc) };
}

function thin(roc: Roc, max = 200): { fpr: number[]; tpr: number[] } {
  const step = Math.max(1, Math.ceil(roc.fpr.length / max));
  const fpr: number[] = [];
  const tpr: number[] = [];
  for (let i = 0; i < roc.fpr.length; i += step) {
    fpr.push(roc.fpr[i]!);
    tpr.push(roc.tpr[i]!);
  }
  fpr.push(1);
  tpr.push(1);
  return { fpr, tpr };
}

/**
 * The finding of an audit: severity by TPR at 1% FPR relative to chance (1%) and by AUC.
 * @param s the attack summary
 */
export function membershipFinding(s: AttackSummary, members: number, nonMembers: number): Finding {
  const at1 = s.tprAtFpr.find((t) => t.fpr === 0.01)?.tpr ?? tprLike(s);
  const ratio = at1 / 0.01;
  const severity = s.auc >= 0.75 || ratio >= 10 ? 'high' : s.auc >= 0.6 || ratio >= 3 ? 'medium' : s.auc >= 0.55 || ratio >= 1.5 ? 'low' : 'info';
  return {
    id: 'privacy.membership-inference',
    title: `Membership inference (${s.attack}): TPR ${(100 * at1).toFixed(2)}% at 1% FPR, AUC ${s.auc.toFixed(3)}`,
    severity,
    metric: 'tpr_at_1pct_fpr',
    value: at1,
    threshold: 0.01,
    atlas: ['AML.T0024.000'],
    owasp: ['ML04'],
    evidence: { auc: s.auc, tprAtFpr: s.tprAtFpr, balancedAccuracy: s.balancedAccuracy, members, nonMembers },
  };
}

function tprLike(s: AttackSummary): number {
  return s.tprAtFpr[s.tprAtFpr.length - 1]?.tpr ?? 0;
}

/**
 * Audits a classifier for membership leakage.
 * @param model the target (its predict gives logits or probabilities)
 * @param train examples the model was trained on (members)
 * @param holdout examples from the same distribution it never saw (non-members)
 * @param opts attack, LiRA shadows and variant, FPRs
 * @returns ROC summary, baseline and finding
 * @throws BulwarkError BULWARK_E_LABELS, BULWARK_E_SHAPE, BULWARK_E_ARG
 * @example const r = await auditMembership(await loadModel('m.onnx'), await loadData('mnist:train[0:500]'), await loadData('mnist:test[0:500]'));
 */
export async function auditMembership(model: Model, train: Dataset, holdout: Dataset, opts: AuditOptions = {}): Promise<AuditReport> {
  const attack = opts.attack ?? 'loss';
  if (!(MEMBERSHIP_ATTACKS as readonly string[]).includes(attack)) throw new BulwarkError('BULWARK_E_ARG', `unknown membership attack ${JSON.stringify(attack)}; use loss or lira`);
  if (!train.y || !holdout.y) throw new BulwarkError('BULWARK_E_LABELS', `membership audits need labels on both sets (${!train.y ? train.name : holdout.name} has none)`);
  if (train.x.shape.slice(1).join(',') !== holdout.x.shape.slice(1).join(',')) {
    throw new BulwarkError('BULWARK_E_SHAPE', `train examples are [${train.x.shape.slice(1)}] but holdout examples are [${holdout.x.shape.slice(1)}]`);
  }
  const fprs = opts.fprs ?? [0.001, 0.01];
  const nIn = train.x.shape[0]!;
  const nOut = holdout.x.shape[0]!;
  const pool: Dataset = { name: `${train.name} + ${holdout.name}`, x: concatRows([train.x, holdout.x]), y: Int32Array.from([...train.y, ...holdout.y]), numClasses: train.numClasses ?? holdout.numClasses };
  const out = await model.predict(pool.x);
  const k = out.shape[1] ?? 0;
  const bad = pool.y!.findIndex((c) => c < 0 || c >= k);
  if (out.shape.length !== 2 || k < 2) throw new BulwarkError('BULWARK_E_MODEL', `the model output has shape [${out.shape}]; membership audits need [N,K] class scores`);
  if (bad >= 0) throw new BulwarkError('BULWARK_E_LABELS', `label ${pool.y![bad]} is outside the model's ${k} classes`);
  const stats = outputStats(out.data, pool.y!, k, model.outputKind);
  const member = Array.from({ length: nIn + nOut }, (_, i) => i < nIn);
  const lossScores = Array.from(stats.loss, (l) => -l);
  const lossRoc = rocCurve(lossScores, member);
  const lossSummary = summarize('loss', lossRoc, fprs);
  let summary = lossSummary;
  let roc = lossRoc;
  let scores = lossScores;
  let lira: AuditReport['lira'] = null;
  if (attack === 'lira') {
    if (!opts.shadow) throw new BulwarkError('BULWARK_E_ARG', 'LiRA needs shadow options (a network factory and a trainer)');
    const shadows = await shadowConfidences(pool, opts.shadow);
    const variant = opts.variant ?? 'online';
    const fixedVariance = opts.fixedVariance ?? shadows.confidences.length < 64;
    scores = Array.from(liraScores(stats.confidence, shadows, { variant, fixedVariance }));
    roc = rocCurve(scores, member);
    summary = summarize(`lira-${variant}`, roc, fprs);
    lira = { shadows: shadows.confidences.length, variant, fixedVariance };
  }
  return {
    ...summary,
    members: nIn,
    nonMembers: nOut,
    fprResolution: 1 / nOut,
    lira,
    baseline: attack === 'lira' ? lossSummary : null,
    roc: thin(roc),
    scores,
    finding: membershipFinding(summary, nIn, nOut),
  };
}
