/**
 * PRADA: detecting model extraction from the distribution of distances between a client's queries (Juuti, Szyller,
 * Marchal, Asokan, "PRADA: Protecting against DNN Model Stealing Attacks", EuroS&P 2019,
 * https://arxiv.org/abs/1805.02628). Natural queries have minimum distances to earlier same-class queries that are
 * close to normally distributed; synthetic queries (Jacobian augmentation, small steps from earlier queries) are
 * not, so the Shapiro-Wilk W of the distance set falls below a threshold delta.
 */
import { BulwarkError } from '../../core/errors.js';
import { argmaxRows, type Float32Tensor } from '../../core/tensor.js';
import type { Model } from '../../runtime/model.js';
import { shapiroWilk } from './shapiro.js';

/** Options of {@link PradaDetector}. */
export interface PradaOptions {
  /** Alarm when W < delta; default 0.9 (the paper tunes delta per model; 0.9 here is fitted on MNIST, see docs/PRIVACY-ATTACKS.md). */
  delta?: number;
  /** Distances needed before the test runs; default 100 (the paper's minimum). */
  minQueries?: number;
  /** The test runs on the last `window` distances (Royston's approximation holds up to 5000); default 5000. */
  window?: number;
  /** Run the test every `testEvery` queries after minQueries (it costs O(window log window)); default 1. */
  testEvery?: number;
  /** Keep at most this many growing-set points per client and class (oldest dropped); default 10000. */
  maxGrowingSet?: number;
}

/** What {@link PradaDetector.observe} returns. */
export interface PradaVerdict {
  /** True once the client's distance set fails the normality test (it stays raised for the client). */
  alarm: boolean;
  /** The latest W, or undefined before minQueries distances. */
  w: number | undefined;
  /** The minimum L2 distance of this query to the client's earlier same-class growing-set points (undefined for a class's first query). */
  distance: number | undefined;
  /** Queries seen from this client. */
  queries: number;
  /** Query index (1-based) at which the alarm was first raised. */
  alarmAt: number | undefined;
}

interface ClassState {
  points: Float32Array[];
  dists: number[];
  threshold: number;
}

interface ClientState {
  classes: Map<number, ClassState>;
  dists: number[];
  queries: number;
  lastW: number | undefined;
  alarmAt: number | undefined;
}

/**
 * An online, per-client PRADA detector (Algorithm 1 of the paper): for each query, the minimum L2 distance to the
 * client's growing set of the same predicted class joins the distance set D; the query joins the growing set when
 * that distance exceeds the class threshold T_c = max(T_c, mean - std of the growing set's distances); once D has
 * minQueries values, alarm when Shapiro-Wilk W(D) < delta. State is kept in memory per client id.
 * @example
 * const prada = new PradaDetector({ delta: 0.9 });
 * const { alarm, w } = prada.observe('client-7', imageRow, predictedClass);
 */
export class PradaDetector {
  readonly delta: number;
  readonly minQueries: number;
  readonly window: number;
  readonly testEvery: number;
  readonly maxGrowingSet: number;
  private readonly clients = new Map<string, ClientState>();

  /** @throws BulwarkError BULWARK_E_ARG for options out of range */
  constructor(opts: PradaOptions = {}) {
    this.delta = opts.delta ?? 0.9;
    this.minQueries = opts.minQueries ?? 100;
    this.window = opts.window ?? 5000;
    this.testEvery = opts.testEvery ?? 1;
    this.maxGrowingSet = opts.maxGrowingSet ?? 10000;
    if (!(this.delta > 0 && this.delta < 1)) throw new BulwarkError('BULWARK_E_ARG', `PRADA delta must be in (0, 1), got ${this.delta}`);
    if (!Number.isInteger(this.minQueries) || this.minQueries < 3) throw new BulwarkError('BULWARK_E_ARG', `PRADA minQueries must be an integer >= 3, got ${this.minQueries}`);
    if (!Number.isInteger(this.window) || this.window < this.minQueries || this.window > 5000) throw new BulwarkError('BULWARK_E_ARG', `PRADA window must be an integer in [minQueries, 5000], got ${this.window}`);
    if (!Number.isInteger(this.testEvery) || this.testEvery < 1) throw new BulwarkError('BULWARK_E_ARG', `PRADA testEvery must be a positive integer, got ${this.testEvery}`);
  }

  /**
   * Records one query of a client and tests its distance set.
   * @param clientId the client (API key, account, ...)
   * @param x the query, flattened (any shape; only its values are used)
   * @param predictedClass the class the model answered for it
   * @returns the verdict for this client after the query
   * @throws BulwarkError BULWARK_E_SHAPE when x's length differs from the client's earlier queries
   */
  observe(clientId: string, x: ArrayLike<number>, predictedClass: number): PradaVerdict {
    let st = this.clients.get(clientId);
    if (!st) {
      st = { classes: new Map(), dists: [], queries: 0, lastW: undefined, alarmAt: undefined };
      this.clients.set(clientId, st);
    }
    st.queries++;
    const v = Float32Array.from(x);
    let cs = st.classes.get(predictedClass);
    let distance: number | undefined;
    if (!cs) {
      cs = { points: [v], dists: [0], threshold: 0 };
      st.classes.set(predictedClass, cs);
    } else {
      let best = Infinity;
      for (const p of cs.points) {
        if (p.length !== v.length) throw new BulwarkError('BULWARK_E_SHAPE', `PRADA: query of client ${clientId} has ${v.length} values; its earlier queries had ${p.length}`);
        let s = 0;
        for (let i = 0; i < v.length; i++) {
          const d = v[i]! - p[i]!;
          s += d * d;
          if (s >= best) break;
        }
        if (s < best) best = s;
      }
      distance = Math.sqrt(best);
      st.dists.push(distance);
      if (st.dists.length > this.window) st.dists.shift();
      if (distance > cs.threshold) {
        cs.points.push(v);
        cs.dists.push(distance);
        if (cs.points.length > this.maxGrowingSet) {
          cs.points.shift();
          cs.dists.shift();
        }
        const m = cs.dists.reduce((a, b) => a + b, 0) / cs.dists.length;
        const sd = Math.sqrt(cs.dists.reduce((a, b) => a + (b - m) ** 2, 0) / cs.dists.length);
        cs.threshold = Math.max(cs.threshold, m - sd);
      }
    }
    if (st.dists.length >= this.minQueries && (st.dists.length - this.minQueries) % this.testEvery === 0) {
      const range = Math.max(...st.dists) - Math.min(...st.dists);
      // A set of identical distances (repeated queries) is as far from normal as it gets.
      st.lastW = range > 0 ? shapiroWilk(st.dists).w : 0;
      if (st.lastW < this.delta && st.alarmAt === undefined) st.alarmAt = st.queries;
    }
    return { alarm: st.alarmAt !== undefined, w: st.lastW, distance, queries: st.queries, alarmAt: st.alarmAt };
  }

  /** Forgets a client's state (after an incident is handled, or when its key is rotated). */
  reset(clientId: string): void {
    this.clients.delete(clientId);
  }

  /** Client ids with state. */
  clientIds(): string[] {
    return [...this.clients.keys()];
  }
}

/**
 * Wraps a model so that every query of one client passes through a PRADA detector (the gateway's use, for tests
 * and single-tenant deployments); the verdicts are collected on the wrapper.
 * @param model the served model
 * @param detector the detector (shared across clients)
 * @param clientId the client this wrapper serves
 * @returns the wrapped model plus its verdict log
 * @example const guarded = pradaGuard(model, new PradaDetector(), 'alice'); await guarded.predict(x); guarded.verdicts.at(-1)?.alarm
 */
export function pradaGuard(model: Model, detector: PradaDetector, clientId: string): Model & { verdicts: PradaVerdict[] } {
  const wrapper: Model & { verdicts: PradaVerdict[] } = {
    inputShape: model.inputShape,
    numClasses: model.numClasses,
    bounds: model.bounds,
    outputKind: model.outputKind,
    queries: 0,
    verdicts: [],
    async predict(x: Float32Tensor): Promise<Float32Tensor> {
      const out = await model.predict(x);
      const n = x.shape[0]!;
      const row = x.data.length / n;
      const cls = argmaxRows(out);
      for (let i = 0; i < n; i++) wrapper.verdicts.push(detector.observe(clientId, x.data.subarray(i * row, (i + 1) * row), cls[i]!));
      wrapper.queries += n;
      return out;
    },
  };
  return wrapper;
}
