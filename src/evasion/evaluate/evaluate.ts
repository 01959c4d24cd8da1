/**
 * The robustness evaluation: the ensemble at the main eps, a robustness curve, and the gradient-masking checks,
 * summarized in one object (what `bulwark evaluate --json` prints and what `bulwark scan` reports).
 */
import { Rng } from '../../core/rng.js';
import type { Float32Tensor } from '../../core/tensor.js';
import { rowSize } from '../geometry.js';
import type { Model } from '../types.js';
import { curveEpsList, robustnessCurve, type RobustnessCurve } from './curves.js';
import { runEnsemble, type EnsembleResult, type EvalProgress } from './ensemble.js';
import { isReliable, maskingChecks, type MaskingCheck } from './masking.js';
import { resolveSuite, type Budget, type SuiteSpec } from './suites.js';
import { checkData, checkEps, type EvalNorm } from './validate.js';

/** Options of {@link evaluateRobustness}. */
export interface EvaluateOptions {
  eps: number;
  norm: EvalNorm;
  /** Budget name or suite; default `standard`. */
  suite?: Budget | SuiteSpec;
  seed?: number;
  /** Global index of each example of x (keys the attacks' random streams); default its position in x. */
  indices?: ArrayLike<number>;
  /** Draw the robustness curve: true (the suite's eps list, default), false, or an explicit eps list. */
  curve?: boolean | number[];
  /** Run the gradient-masking checks (default true). */
  checks?: boolean;
  onProgress?: (p: EvalProgress) => void;
}

/** Everything an evaluation measured. */
export interface RobustnessEvaluation {
  eps: number;
  norm: EvalNorm;
  budget: Budget;
  seed: number;
  n: number;
  cleanAccuracy: number;
  robustAccuracy: number;
  ensemble: EnsembleResult;
  curve: RobustnessCurve | undefined;
  checks: MaskingCheck[];
  /** No check raised a flag. */
  reliable: boolean;
  timings: { ensembleSeconds: number; curveSeconds: number; checksSeconds: number; totalSeconds: number };
}

/**
 * Sorted indices of a seeded sample of `n` of `total` examples (all of them when n ≥ total), so that a budget's
 * subset is representative of the data and reproducible from the seed.
 */
export function sampleIndices(total: number, n: number, seed: number): Int32Array {
  if (n >= total) return Int32Array.from({ length: total }, (_, i) => i);
  const perm = new Rng(seed ^ 0x2545f491).permutation(total);
  return perm.subarray(0, n).sort();
}

/**
 * Evaluates robustness: the ensemble at eps, the curve, and the masking checks, on the given examples.
 * Validates eps and the data before running anything.
 * @param model the model under evaluation
 * @param x inputs [N, ...] in the model bounds (callers subset to the budget's size, see {@link sampleIndices})
 * @param y labels [N]
 * @returns clean and robust accuracy, per-attack statistics, per-example worst case, the curve and the checks
 * @throws BulwarkError BULWARK_E_ARG (eps), BULWARK_E_SHAPE (data does not fit the model), BULWARK_E_LABELS
 * @example const ev = await evaluateRobustness(model, x, y, { eps: 0.3, norm: 'inf', suite: 'quick' }); ev.robustAccuracy
 */
export async function evaluateRobustness(model: Model, x: Float32Tensor, y: ArrayLike<number>, opts: EvaluateOptions): Promise<RobustnessEvaluation> {
  const suite = resolveSuite(opts.suite);
  const labels = checkData(model, x, y, 'inputs');
  checkEps(opts.eps, opts.norm, model.bounds, rowSize(x), 'eps');
  const seed = opts.seed ?? 0;
  const t0 = performance.now();
  const indices = opts.indices === undefined ? {} : { indices: opts.indices };
  const ensemble = await runEnsemble(model, x, labels, { eps: opts.eps, norm: opts.norm, suite, seed, ...indices, ...(opts.onProgress ? { onProgress: opts.onProgress } : {}) });
  const t1 = performance.now();
  let curve: RobustnessCurve | undefined;
  if (opts.curve !== false) {
    const epsList = Array.isArray(opts.curve) ? opts.curve : curveEpsList(opts.eps, opts.norm, suite, model.bounds, rowSize(x));
    for (const e of epsList) if (e !== 0) checkEps(e, opts.norm, model.bounds, rowSize(x), 'curve eps');
    curve = await robustnessCurve(model, x, labels, { norm: opts.norm, epsList, suite, seed, reuse: ensemble, ...indices, ...(opts.onProgress ? { onProgress: opts.onProgress } : {}) });
  }
  const t2 = performance.now();
  opts.onProgress?.({ stage: 'checks', done: 0, total: 1 });
  const checks = opts.checks === false ? [] : await maskingChecks(model, x, labels, { ensemble, ...(curve ? { curve } : {}), eps: opts.eps, norm: opts.norm, seed, examples: suite.checkExamples });
  opts.onProgress?.({ stage: 'checks', done: 1, total: 1 });
  const t3 = performance.now();
  return {
    eps: opts.eps,
    norm: opts.norm,
    budget: suite.budget,
    seed,
    n: ensemble.n,
    cleanAccuracy: ensemble.cleanAccuracy,
    robustAccuracy: ensemble.robustAccuracy,
    ensemble,
    curve,
    checks,
    reliable: isReliable(checks),
    timings: { ensembleSeconds: (t1 - t0) / 1000, curveSeconds: (t2 - t1) / 1000, checksSeconds: (t3 - t2) / 1000, totalSeconds: (t3 - t0) / 1000 },
  };
}

/** The JSON summary of an evaluation (the `--json` object of `bulwark evaluate`). */
export interface EvaluationSummary {
  eps: number;
  norm: 'inf' | 2;
  budget: Budget;
  seed: number;
  n: number;
  cleanAccuracy: number;
  robustAccuracy: number;
  reliable: boolean;
  perAttack: { attack: string; kind: string; status: string; attacked: number; broken: number; robustAccuracyAfter: number; queries: number; seconds: number; reason?: string }[];
  curve: { eps: number; robustAccuracy: number; worstCaseRobustAccuracy: number }[];
  flags: { id: string; severity: string; message: string; value: number | null; threshold: number }[];
  checks: { id: string; status: string }[];
  seconds: number;
}

/** Reduces an evaluation to its JSON summary. */
export function summarizeEvaluation(ev: RobustnessEvaluation): EvaluationSummary {
  return {
    eps: ev.eps,
    norm: ev.norm,
    budget: ev.budget,
    seed: ev.seed,
    n: ev.n,
    cleanAccuracy: ev.cleanAccuracy,
    robustAccuracy: ev.robustAccuracy,
    reliable: ev.reliable,
    perAttack: ev.ensemble.members.map((m) => ({
      attack: m.name,
      kind: m.kind,
      status: m.status,
      attacked: m.attacked,
      broken: m.broken,
      robustAccuracyAfter: m.robustAccuracyAfter,
      queries: m.queries,
      seconds: m.seconds,
      ...(m.reason ? { reason: m.reason } : {}),
    })),
    curve: ev.curve ? ev.curve.points.map((p) => ({ eps: p.eps, robustAccuracy: p.robustAccuracy, worstCaseRobustAccuracy: p.worstCaseRobustAccuracy })) : [],
    flags: ev.checks.filter((c) => c.status === 'flag').map((c) => ({ id: c.id, severity: c.severity, message: c.message, value: c.value, threshold: c.threshold })),
    checks: ev.checks.map((c) => ({ id: c.id, status: c.status })),
    seconds: ev.timings.totalSeconds,
  };
}
