/**
 * The evaluation ensemble in the manner of AutoAttack (Croce & Hein 2020, https://arxiv.org/abs/2003.01690):
 * APGD-CE, then APGD-T (targeted DLR over the top-k other classes), then FAB-T (minimum-norm, targeted), then
 * Square (score-based black-box), each run only on the examples that every earlier attack failed on. An example
 * counts as robust only if it survives every attack (the per-example worst case), and the report says which
 * attack broke it. Every success is the shared runner's, recomputed on the model inside the threat model.
 */
import { BulwarkError } from '../../core/errors.js';
import type { Float32Tensor } from '../../core/tensor.js';
import { argmax, clone, perturbationNorms, rowNorm, rowSize, scatterRows } from '../geometry.js';
import { runAttack } from '../runner.js';
import type { Model } from '../types.js';
import { memberAttack, memberPaper, resolveSuite, type Budget, type MemberSpec, type SuiteSpec } from './suites.js';
import { checkData, checkEps, gradientsAvailable, type EvalNorm } from './validate.js';

/** A step of a long evaluation, for progress bars. */
export interface EvalProgress {
  /** What runs: `ensemble`, `curve`, `checks`. */
  stage: string;
  /** The member about to run (or that just finished). */
  member?: string;
  eps?: number;
  /** Steps done and planned in this stage. */
  done: number;
  total: number;
}

/** Options of {@link runEnsemble}. */
export interface EnsembleOptions {
  /** Threat-model radius in input units. */
  eps: number;
  /** Threat-model norm. */
  norm: EvalNorm;
  /** A budget name or a full suite; default `standard`. */
  suite?: Budget | SuiteSpec;
  /**
   * Seed of every member. Each member gets this seed and draws every example's random numbers from streams keyed
   * by (seed, attack, example index, restart), so a member's result on an example equals its standalone run on it,
   * whichever examples earlier members left.
   */
  seed?: number;
  /**
   * Global index of each example of x (keys its random streams, see `RunOptions.indices`); default its position
   * in x. Pass the indices in the full data to get, for a subset or a piece of it, the results of one run on all.
   */
  indices?: ArrayLike<number>;
  /** Names of the members to run (in suite order); default all. */
  members?: 'all' | string[];
  /** Called before and after each member. */
  onProgress?: (p: EvalProgress) => void;
  /** Stage name passed to onProgress; default `ensemble`. */
  stage?: string;
}

/** What one member did inside the ensemble. */
export interface MemberReport {
  name: string;
  kind: 'white-box' | 'black-box';
  /** The attack definition run (`apgd-ce`, `apgd-dlr`, `fab`, `square`). */
  attack: string;
  paper: string;
  /** `ran`; `skipped` (cannot serve this model or data: see reason); `not-needed` (nothing was left robust). */
  status: 'ran' | 'skipped' | 'not-needed';
  reason?: string;
  /** Options it ran with (eps, norm, seed included). */
  options: Record<string, unknown>;
  /** Examples it attacked (those still robust before it). */
  attacked: number;
  /** Examples it broke (counted once: the first attack that breaks an example owns it). */
  broken: number;
  /** Robust accuracy over all examples after this member (cumulative, clean mistakes count as not robust). */
  robustAccuracyAfter: number;
  queries: number;
  seconds: number;
  /** Raw outputs that left the threat model and were projected (an attack bug; should be 0). */
  outOfThreat: number;
}

/** The verified result of the ensemble on a batch. */
export interface EnsembleResult {
  eps: number;
  norm: EvalNorm;
  budget: Budget;
  n: number;
  labels: Int32Array;
  cleanPredictions: Int32Array;
  /** Per example: correct before any attack. */
  cleanCorrect: Uint8Array;
  /** Per example: correct on clean input and survived every member (the worst case). */
  robust: Uint8Array;
  /** Per example: the member that broke it, or null (robust, or already wrong on clean input). */
  brokenBy: (string | null)[];
  /** Adversarial inputs for broken examples; the clean input elsewhere. */
  adversarial: Float32Tensor;
  /** Predictions on `adversarial`, re-computed at the end. */
  adversarialPredictions: Int32Array;
  /** Perturbation norms of `adversarial` − x per example (0 where not broken). */
  norms: { linf: Float32Array; l2: Float32Array };
  cleanAccuracy: number;
  robustAccuracy: number;
  members: MemberReport[];
  queries: number;
  seconds: number;
  /** Broken examples whose adversarial input was classified correctly when predicted again (randomized models). */
  verificationMismatches: number;
}

/**
 * Runs the ensemble on a batch: each member runs on the examples still robust, and an example counts as robust only
 * if it survives every member. Members that cannot serve the model are skipped with a reason (white-box members
 * on a model without gradients, Square on non-image inputs); the result then says so.
 * @param model the model (white-box members need `lossAndGradient`)
 * @param x inputs [N, ...] inside the model bounds
 * @param y labels [N]
 * @param opts eps, norm, suite, seed
 * @returns per-example robustness, the breaking attack, adversarial inputs and per-member statistics
 * @throws BulwarkError BULWARK_E_ARG (eps), BULWARK_E_SHAPE, BULWARK_E_LABELS, and errors of the model
 * @example const r = await runEnsemble(model, x, y, { eps: 0.3, norm: 'inf', suite: 'quick' }); r.robustAccuracy
 */
export async function runEnsemble(model: Model, x: Float32Tensor, y: ArrayLike<number>, opts: EnsembleOptions): Promise<EnsembleResult> {
  const suite = resolveSuite(opts.suite);
  const labels = checkData(model, x, y, 'inputs');
  checkEps(opts.eps, opts.norm, model.bounds, rowSize(x), 'eps');
  const seed = opts.seed ?? 0;
  const n = x.shape[0]!;
  if (opts.indices !== undefined && opts.indices.length !== n) throw new BulwarkError('BULWARK_E_ARG', `${opts.indices.length} example indices for ${n} inputs`);
  const indices = opts.indices === undefined ? undefined : Int32Array.from(opts.indices);
  const t0 = performance.now();
  const q0 = model.queries;
  const clean = argmax(await model.predict(x));
  const cleanCorrect = Uint8Array.from(clean, (p, i) => (p === labels[i] ? 1 : 0));
  const robust = new Uint8Array(cleanCorrect);
  const brokenBy = new Array<string | null>(n).fill(null);
  // Broken rows are replaced by their adversarial input, so later members skip them (the runner attacks only
  // examples classified correctly) while every example keeps its row index.
  const current = clone(x);
  const grads = gradientsAvailable(model);
  const images = x.shape.length === 4;
  const wanted = opts.members;
  const chosen = suite.members.filter((m) => wanted === undefined || wanted === 'all' || wanted.includes(m.name));
  const reports: MemberReport[] = [];
  const stage = opts.stage ?? 'ensemble';
  for (let k = 0; k < chosen.length; k++) {
    const m = chosen[k]!;
    opts.onProgress?.({ stage, member: m.name, eps: opts.eps, done: k, total: chosen.length });
    reports.push(await runMember(model, m, current, x, labels, robust, brokenBy, { eps: opts.eps, norm: opts.norm, seed, grads, images, indices }));
  }
  opts.onProgress?.({ stage, eps: opts.eps, done: chosen.length, total: chosen.length });

  const advPred = argmax(await model.predict(current));
  let mismatches = 0;
  for (let i = 0; i < n; i++) if (brokenBy[i] !== null && advPred[i] === labels[i]) mismatches++;
  const pn = perturbationNorms(current, x);
  const robustCount = robust.reduce((a, v) => a + v, 0);
  return {
    eps: opts.eps,
    norm: opts.norm,
    budget: suite.budget,
    n,
    labels,
    cleanPredictions: clean,
    cleanCorrect,
    robust,
    brokenBy,
    adversarial: current,
    adversarialPredictions: advPred,
    norms: { linf: pn.linf, l2: pn.l2 },
    cleanAccuracy: cleanCorrect.reduce((a, v) => a + v, 0) / n,
    robustAccuracy: robustCount / n,
    members: reports,
    queries: model.queries - q0,
    seconds: (performance.now() - t0) / 1000,
    verificationMismatches: mismatches,
  };
}

async function runMember(
  model: Model,
  m: MemberSpec,
  current: Float32Tensor,
  x: Float32Tensor,
  labels: Int32Array,
  robust: Uint8Array,
  brokenBy: (string | null)[],
  ctx: { eps: number; norm: EvalNorm; seed: number; grads: { ok: boolean; reason?: string }; images: boolean; indices: Int32Array | undefined },
): Promise<MemberReport> {
  const n = labels.length;
  const { definition, options } = memberAttack(m, model.numClasses);
  const full = { ...options, eps: ctx.eps, norm: ctx.norm, seed: ctx.seed };
  const attacked = robust.reduce((a, v) => a + v, 0);
  const base = { name: m.name, kind: m.kind, attack: definition.name, paper: memberPaper(m.name), options: full, queries: 0, seconds: 0, outOfThreat: 0, broken: 0 };
  const skip = (status: 'skipped' | 'not-needed', reason: string): MemberReport => ({ ...base, status, reason, attacked: 0, robustAccuracyAfter: attacked / n });
  if (m.kind === 'white-box' && !ctx.grads.ok) return skip('skipped', `white-box attack, but ${ctx.grads.reason}`);
  if (m.name === 'square' && !ctx.images) return skip('skipped', 'Square searches over image windows and needs inputs [N, C, H, W]');
  if (attacked === 0) return skip('not-needed', 'no example was left robust');
  const t0 = performance.now();
  const r = await runAttack(definition, model, current, labels, full, ctx.indices ? { indices: ctx.indices } : {});
  const seconds = (performance.now() - t0) / 1000;
  let broken = 0;
  for (let i = 0; i < n; i++) {
    if (!robust[i] || !r.success[i]) continue;
    robust[i] = 0;
    brokenBy[i] = m.name;
    scatterRows(current, r.adversarial, [i]);
    broken++;
  }
  // The runner projected onto the ball around `current`, which equals x on every row still robust; check anyway.
  const d = rowSize(x);
  const delta = new Float32Array(d);
  for (let i = 0; i < n; i++) {
    if (brokenBy[i] !== m.name) continue;
    for (let j = 0; j < d; j++) delta[j] = current.data[i * d + j]! - x.data[i * d + j]!;
    if (rowNorm(delta, 0, d, ctx.norm) > ctx.eps * (1 + 1e-5) + 1e-5) throw new BulwarkError('BULWARK_E_INTERNAL', `${m.name} returned an input outside the eps-ball for example ${i}`);
  }
  return { ...base, status: 'ran', attacked, broken, robustAccuracyAfter: robust.reduce((a, v) => a + v, 0) / n, queries: r.queries, seconds, outOfThreat: r.summary.outOfThreat };
}
