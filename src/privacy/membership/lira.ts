/**
 * The Likelihood Ratio Attack (Carlini et al. 2022, "Membership Inference Attacks From First Principles",
 * arXiv:2112.03570). Shadow models are trained on random halves of a data pool (here in complementary pairs, so every
 * example is a member of exactly half the shadows). For each example, the logit-scaled confidences of the shadows
 * that trained on it (IN) and of those that did not (OUT) are each fitted with a Gaussian; the target model's
 * confidence is then scored:
 *  - online: log N(c; μ_in, σ_in²) − log N(c; μ_out, σ_out²), the likelihood ratio;
 *  - offline: (c − μ_out)/σ_out, the one-sided test against OUT alone (same ranking as 1 − Pr[Z > c]).
 * With few shadows the per-example variances are noisy; `fixedVariance` replaces them by one pooled within-example
 * variance for IN and one for OUT (the paper's recommendation below ~64 shadows).
 */
import { BulwarkError } from '../../core/errors.js';
import { Rng } from '../../core/rng.js';
import { gatherRows } from '../../core/tensor.js';
import type { Dataset } from '../../data/index.js';
import type { Network } from '../../nn/network.js';
import { EvalSession } from '../../nn/train.js';
import { outputStats } from './scores.js';

/** Trains a fresh shadow network in place on its half of the pool. */
export type ShadowTrainer = (net: Network, data: Dataset, seed: number) => Promise<void>;

/** Options of {@link shadowConfidences}. */
export interface ShadowOptions {
  /** Number of shadow models (even, >= 2); default 16. */
  shadows?: number;
  /** Builds a fresh network for shadow `index` (same architecture as the target). */
  makeNetwork: (index: number) => Network;
  /** Trains a shadow (the target's own recipe). */
  trainer: ShadowTrainer;
  /** Seed of the halves and of the shadows; default 0. */
  seed?: number;
  /** onnxruntime threads for scoring. */
  threads?: number;
  /** Called after each shadow. */
  onShadow?: (done: number, total: number) => void;
}

/** The shadows' view of the pool. */
export interface ShadowResult {
  /** confidences[s][i]: shadow s's logit-scaled confidence on pool example i. */
  confidences: Float64Array[];
  /** inSets[s][i]: whether pool example i was in shadow s's training half. */
  inSets: Uint8Array[];
}

/**
 * Trains shadow models on complementary random halves of `pool` and records their confidences on every pool example.
 * @throws BulwarkError BULWARK_E_ARG for an odd or too small shadow count, or a pool without labels
 */
export async function shadowConfidences(pool: Dataset, opts: ShadowOptions): Promise<ShadowResult> {
  const k = opts.shadows ?? 16;
  if (!Number.isSafeInteger(k) || k < 2 || k % 2 !== 0) throw new BulwarkError('BULWARK_E_ARG', `the number of shadow models must be an even integer >= 2, got ${k}`, { hint: 'Shadows come in complementary pairs; LiRA needs 16 or more for good estimates at low FPR.' });
  if (!pool.y) throw new BulwarkError('BULWARK_E_LABELS', `the pool ${pool.name} has no labels`);
  const m = pool.x.shape[0]!;
  if (m < 4) throw new BulwarkError('BULWARK_E_ARG', `the pool has ${m} examples; LiRA needs at least 4`);
  const rng = new Rng((opts.seed ?? 0) ^ 0x11ae);
  const confidences: Float64Array[] = [];
  const inSets: Uint8Array[] = [];
  for (let s = 0; s < k; s++) {
    if (s % 2 === 0) {
      const perm = rng.permutation(m);
      const inSet = new Uint8Array(m);
      for (let i = 0; i < m >> 1; i++) inSet[perm[i]!] = 1;
      inSets.push(inSet);
    } else {
      inSets.push(inSets[s - 1]!.map((v) => 1 - v));
    }
    const members: number[] = [];
    inSets[s]!.forEach((v, i) => {
      if (v) members.push(i);
    });
    const idx = Int32Array.from(members);
    const half: Dataset = { name: `${pool.name} (shadow ${s} half)`, x: gatherRows(pool.x, idx), y: Int32Array.from(idx, (i) => pool.y![i]!), numClasses: pool.numClasses };
    const net = opts.makeNetwork(s);
    await opts.trainer(net, half, (opts.seed ?? 0) * 1000 + s);
    const ev = await EvalSession.create(net, opts.threads === undefined ? {} : { threads: opts.threads });
    try {
      confidences.push(outputStats(await ev.logits(pool.x), pool.y, net.numClasses).confidence);
    } finally {
      await ev.release();
    }
    opts.onShadow?.(s + 1, k);
  }
  return { confidences, inSets };
}

/** Options of {@link liraScores}. */
export interface LiraScoreOptions {
  /** Default online. */
  variant?: 'online' | 'offline';
  /** One pooled variance for IN and one for OUT instead of per-example ones; default true below 64 shadows. */
  fixedVariance?: boolean;
}

const LOG_2PI = Math.log(2 * Math.PI);
const logNormal = (x: number, mu: number, sd: number) => -0.5 * LOG_2PI - Math.log(sd) - 0.5 * ((x - mu) / sd) ** 2;

/**
 * LiRA membership scores of the target model's confidences (higher = more likely a member).
 * @param target the target model's logit-scaled confidence on each pool example
 * @param shadows the shadows' confidences and halves
 * @param opts variant and variance model
 */
export function liraScores(target: ArrayLike<number>, shadows: ShadowResult, opts: LiraScoreOptions = {}): Float64Array {
  const m = target.length;
  const k = shadows.confidences.length;
  const variant = opts.variant ?? 'online';
  const fixed = opts.fixedVariance ?? k < 64;
  const muIn = new Float64Array(m);
  const muOut = new Float64Array(m);
  const varIn = new Float64Array(m);
  const varOut = new Float64Array(m);
  let pooledIn = 0;
  let pooledOut = 0;
  let dofIn = 0;
  let dofOut = 0;
  for (let i = 0; i < m; i++) {
    let sIn = 0;
    let nIn = 0;
    let sOut = 0;
    let nOut = 0;
    for (let s = 0; s < k; s++) {
      const c = shadows.confidences[s]![i]!;
      if (shadows.inSets[s]![i]) {
        sIn += c;
        nIn++;
      } else {
        sOut += c;
        nOut++;
      }
    }
    muIn[i] = nIn ? sIn / nIn : NaN;
    muOut[i] = nOut ? sOut / nOut : NaN;
    let qIn = 0;
    let qOut = 0;
    for (let s = 0; s < k; s++) {
      const c = shadows.confidences[s]![i]!;
      if (shadows.inSets[s]![i]) qIn += (c - muIn[i]!) ** 2;
      else qOut += (c - muOut[i]!) ** 2;
    }
    varIn[i] = nIn > 1 ? qIn / (nIn - 1) : NaN;
    varOut[i] = nOut > 1 ? qOut / (nOut - 1) : NaN;
    pooledIn += qIn;
    pooledOut += qOut;
    dofIn += Math.max(0, nIn - 1);
    dofOut += Math.max(0, nOut - 1);
  }
  const poolIn = dofIn ? pooledIn / dofIn : 1;
  const poolOut = dofOut ? pooledOut / dofOut : 1;
  const floor = 1e-6;
  const scores = new Float64Array(m);
  for (let i = 0; i < m; i++) {
    const c = target[i]!;
    const sdOut = Math.sqrt(Math.max(floor, fixed || Number.isNaN(varOut[i]!) ? poolOut : varOut[i]!));
    if (variant === 'offline') {
      scores[i] = (c - muOut[i]!) / sdOut;
    } else {
      const sdIn = Math.sqrt(Math.max(floor, fixed || Number.isNaN(varIn[i]!) ? poolIn : varIn[i]!));
      scores[i] = logNormal(c, muIn[i]!, sdIn) - logNormal(c, muOut[i]!, sdOut);
    }
  }
  return scores;
}
