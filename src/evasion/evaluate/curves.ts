/**
 * Robustness curves: robust accuracy of the ensemble against a list of eps. Each point is an independent run (so a
 * curve that rises with eps exposes a weak or masked attack, Carlini et al. 2019, arXiv:1902.06705), and each point
 * also has a worst case that counts an example broken at a smaller eps as broken at every larger one (the smaller
 * ball lies inside the larger).
 */
import type { Float32Tensor } from '../../core/tensor.js';
import { takeRows } from '../geometry.js';
import type { Model } from '../types.js';
import { runEnsemble, type EnsembleResult, type EvalProgress } from './ensemble.js';
import { resolveSuite, type Budget, type SuiteSpec } from './suites.js';
import { boxDiameter, type EvalNorm } from './validate.js';

/** One point of a curve. */
export interface CurvePoint {
  eps: number;
  /** Robust accuracy of the independent run at this eps (eps 0: clean accuracy). */
  robustAccuracy: number;
  /** Robust accuracy counting examples broken at any eps ≤ this one (non-increasing in eps). */
  worstCaseRobustAccuracy: number;
  /** Examples broken per member at this eps. */
  brokenBy: Record<string, number>;
  /** Examples robust here but broken at some smaller eps (0 for a sound evaluation). */
  regressions: number;
  seconds: number;
  /** This point was taken from the main evaluation instead of a new run. */
  reused: boolean;
}

/** A robustness curve. */
export interface RobustnessCurve {
  norm: EvalNorm;
  /** Examples per point (the first `n` of the evaluated batch). */
  n: number;
  /** Names of the members run at each point. */
  members: string[];
  points: CurvePoint[];
  /** Per point, per example: robust in the independent run. */
  robustPerPoint: Uint8Array[];
  seconds: number;
}

/** Options of {@link robustnessCurve}. */
export interface CurveOptions {
  norm: EvalNorm;
  /** The eps values (0 allowed: clean accuracy); sorted and deduplicated. */
  epsList: number[];
  suite?: Budget | SuiteSpec;
  seed?: number;
  /** Members per point (`all` or names); default the suite's curve setting. */
  members?: 'all' | string[];
  /** Examples per point (the first n of x); default the suite's. */
  examples?: number;
  /** An ensemble already run on x (same seed) at one of the eps values: its point is reused, not re-run. */
  reuse?: EnsembleResult;
  /** Global index of each example of x (keys the attacks' random streams); default its position in x. */
  indices?: ArrayLike<number>;
  onProgress?: (p: EvalProgress) => void;
}

/**
 * The default eps list of a suite around a main eps: the suite's fractions of it, capped at the box diameter, with 0.
 * @param eps main radius
 */
export function curveEpsList(eps: number, norm: EvalNorm, suite: Budget | SuiteSpec, bounds: [number, number], valuesPerExample: number): number[] {
  const s = resolveSuite(suite);
  const max = boxDiameter(bounds, valuesPerExample, norm);
  const list = [0, ...s.curve.fractions.map((f) => +(f * eps).toPrecision(6))].filter((e) => e <= max);
  return [...new Set(list)].sort((a, b) => a - b);
}

/**
 * Robust accuracy against a list of eps: one ensemble run per eps on the first `examples` examples.
 * @returns the points (independent and worst case) and per-example robustness per point
 * @throws BulwarkError as {@link runEnsemble}
 * @example const c = await robustnessCurve(model, x, y, { norm: 'inf', epsList: [0, 0.1, 0.2, 0.3], suite: 'quick' });
 */
export async function robustnessCurve(model: Model, x: Float32Tensor, y: ArrayLike<number>, opts: CurveOptions): Promise<RobustnessCurve> {
  const suite = resolveSuite(opts.suite);
  const wanted = opts.members ?? suite.curve.members;
  const members = suite.members.map((m) => m.name).filter((name) => wanted === 'all' || wanted.includes(name));
  const n = Math.min(x.shape[0]!, opts.examples ?? suite.curve.examples);
  const rows = Int32Array.from({ length: n }, (_, i) => i);
  const xs = n === x.shape[0] ? x : takeRows(x, rows);
  const ys = Int32Array.from({ length: n }, (_, i) => y[i]!);
  const epsList = [...new Set(opts.epsList)].sort((a, b) => a - b);
  const t0 = performance.now();
  const points: CurvePoint[] = [];
  const robustPerPoint: Uint8Array[] = [];
  const everBroken = new Uint8Array(n);
  let cleanCorrect: Uint8Array | undefined;
  for (let k = 0; k < epsList.length; k++) {
    const eps = epsList[k]!;
    const ts = performance.now();
    let robust: Uint8Array;
    const brokenBy: Record<string, number> = {};
    let reused = false;
    if (eps === 0) {
      cleanCorrect ??= await cleanCorrectOf(model, xs, ys);
      robust = new Uint8Array(cleanCorrect);
    } else if (opts.reuse && canReuse(opts.reuse, eps, opts.norm, n, members)) {
      // Members run in suite order on what earlier members left, so a prefix of the members gives the same
      // outcome as the main run restricted to that prefix.
      const r = opts.reuse;
      const inSet = new Set(members);
      robust = new Uint8Array(n);
      for (let i = 0; i < n; i++) {
        const by = r.brokenBy[i];
        const countsAsBroken = by !== null && inSet.has(by);
        robust[i] = r.cleanCorrect[i] && !countsAsBroken ? 1 : 0;
        if (countsAsBroken) brokenBy[by!] = (brokenBy[by!] ?? 0) + 1;
      }
      reused = true;
    } else {
      opts.onProgress?.({ stage: 'curve', eps, done: points.length, total: epsList.length });
      const done = points.length;
      const onProgress = opts.onProgress ? (p: EvalProgress) => opts.onProgress!({ stage: 'curve', eps, ...(p.member ? { member: p.member } : {}), done, total: epsList.length }) : undefined;
      const indices = opts.indices === undefined ? undefined : Array.from({ length: n }, (_, i) => opts.indices![i]!);
      const r = await runEnsemble(model, xs, ys, { eps, norm: opts.norm, suite, seed: opts.seed ?? 0, members, stage: 'curve', ...(indices ? { indices } : {}), ...(onProgress ? { onProgress } : {}) });
      robust = r.robust;
      for (const by of r.brokenBy) if (by !== null) brokenBy[by] = (brokenBy[by] ?? 0) + 1;
    }
    let regressions = 0;
    for (let i = 0; i < n; i++) {
      if (robust[i] && everBroken[i]) regressions++;
    }
    const worst = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      worst[i] = robust[i] && !everBroken[i] ? 1 : 0;
      if (!robust[i]) everBroken[i] = 1;
    }
    robustPerPoint.push(robust);
    points.push({
      eps,
      robustAccuracy: sum(robust) / n,
      worstCaseRobustAccuracy: sum(worst) / n,
      brokenBy,
      regressions,
      seconds: (performance.now() - ts) / 1000,
      reused,
    });
  }
  opts.onProgress?.({ stage: 'curve', done: epsList.length, total: epsList.length });
  return { norm: opts.norm, n, members, points, robustPerPoint, seconds: (performance.now() - t0) / 1000 };
}

/** The main run can stand in for a point when eps and norm match and the members are a prefix of its members. */
function canReuse(r: EnsembleResult, eps: number, norm: EvalNorm, n: number, members: string[]): boolean {
  if (r.eps !== eps || r.norm !== norm || r.n < n) return false;
  const order = r.members.map((m) => m.name);
  return members.every((name, i) => order[i] === name);
}

async function cleanCorrectOf(model: Model, x: Float32Tensor, y: Int32Array): Promise<Uint8Array> {
  const out = await model.predict(x);
  const k = out.data.length / y.length;
  const ok = new Uint8Array(y.length);
  for (let i = 0; i < y.length; i++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (out.data[i * k + j]! > out.data[i * k + best]!) best = j;
    ok[i] = best === y[i] ? 1 : 0;
  }
  return ok;
}

function sum(a: Uint8Array): number {
  let s = 0;
  for (const v of a) s += v;
  return s;
}
