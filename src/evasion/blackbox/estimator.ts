/**
 * Zeroth-order gradient estimators that turn a predict-only model into one with `lossAndGradient`, so that every
 * white-box attack runs black-box:
 *  - NES with antithetic Gaussian sampling (Ilyas, Engstrom, Athalye, Lin, ICML 2018, arXiv:1804.08598):
 *    g = 1/(2·P·σ) Σ_{p≤P} (L(x + σu_p) − L(x − σu_p)) u_p, u_p ~ N(0, I): the gradient of the Gaussian-smoothed loss.
 *  - SPSA (Spall 1992, as an attack: Uesato, O'Donoghue, van den Oord, Kohli, ICML 2018, arXiv:1802.05666):
 *    the same with Rademacher directions v_p ∈ {−1, 1}^d (v⁻¹ = v) and perturbation size δ.
 * Each estimate costs `samples` queries per example (P = samples/2 antithetic pairs), plus one at x itself for the
 * output and loss that `lossAndGradient` returns.
 */
import { BulwarkError } from '../../core/errors.js';
import { Rng } from '../../core/rng.js';
import { assertFinite, shapeStr, type Float32Tensor } from '../../core/tensor.js';
import type { HeadSpec } from '../../autodiff/heads.js';
import type { LossAndGradient, Model, OutputKind } from '../../runtime/model.js';
import { rowsTensor } from './common.js';
import { headLoss, scoresOf } from './losses.js';
import { QueryLedger } from './queries.js';

/** How gradients are estimated. */
export interface EstimatorOptions {
  /** `nes` (antithetic Gaussian, Ilyas et al. 2018) or `spsa` (antithetic Rademacher, Uesato et al. 2018). Default nes. */
  method?: 'nes' | 'spsa';
  /** Queries per estimate and example, even (antithetic pairs). Default 50 (Ilyas et al.'s population size). */
  samples?: number;
  /** Perturbation scale: NES σ (Ilyas et al.: 0.001) or SPSA δ (Uesato et al.: 0.01). Default 0.001 for nes, 0.01 for spsa. */
  sigma?: number;
  /** Seed of the sampled directions. Default 0. */
  seed?: number;
  /** Total queries the wrapper may send (predict and estimates); a call that would exceed it throws BULWARK_E_QUERY_BUDGET. Default Infinity. */
  maxQueries?: number;
}

/** Resolved estimator settings. */
export interface EstimatorSettings {
  method: 'nes' | 'spsa';
  samples: number;
  sigma: number;
}

/**
 * Validates estimator options and fills the paper defaults.
 * @throws BulwarkError BULWARK_E_ARG for an odd or non-positive sample count, a bad sigma or method
 */
export function estimatorSettings(o: EstimatorOptions = {}): EstimatorSettings {
  const method = o.method ?? 'nes';
  if (method !== 'nes' && method !== 'spsa') throw new BulwarkError('BULWARK_E_ARG', `gradient estimator method must be nes or spsa, got ${JSON.stringify(method)}`);
  const samples = o.samples ?? 50;
  if (!Number.isInteger(samples) || samples < 2 || samples % 2 !== 0) throw new BulwarkError('BULWARK_E_ARG', `estimator samples must be an even integer >= 2 (antithetic pairs), got ${samples}`);
  const sigma = o.sigma ?? (method === 'nes' ? 0.001 : 0.01);
  if (!(sigma > 0) || !Number.isFinite(sigma)) throw new BulwarkError('BULWARK_E_ARG', `estimator sigma must be a finite number > 0, got ${sigma}`);
  return { method, samples, sigma };
}

/**
 * Estimates the gradient of a per-row loss at each row of `x` by antithetic finite differences, spending exactly
 * `samples` queries per row through the ledger (charged to `owners[r]`).
 * @param loss the loss of output row `r` (of a batch) for input row `row`
 * @param rngs one generator per input row
 * @returns gradients [m × d]
 */
export async function estimateGradient(
  ledger: QueryLedger,
  x: Float32Array,
  rowShape: number[],
  owners: ArrayLike<number>,
  settings: EstimatorSettings,
  rngs: Rng[],
  loss: (out: Float32Array, r: number, k: number, row: number) => number,
): Promise<Float32Array> {
  const m = owners.length;
  const d = x.length / Math.max(m, 1);
  const pairs = settings.samples / 2;
  const grad = new Float32Array(m * d);
  // Rows per group, to bound memory to ~32 MiB of queries plus their directions.
  const perGroup = Math.max(1, Math.floor((1 << 23) / (settings.samples * d)));
  for (let g0 = 0; g0 < m; g0 += perGroup) {
    const g1 = Math.min(m, g0 + perGroup);
    const rows = new Float32Array((g1 - g0) * settings.samples * d);
    const dirs = new Float32Array((g1 - g0) * pairs * d);
    const own: number[] = [];
    for (let r = g0; r < g1; r++) {
      const rng = rngs[r]!;
      for (let p = 0; p < pairs; p++) {
        const u = dirs.subarray(((r - g0) * pairs + p) * d, ((r - g0) * pairs + p + 1) * d);
        if (settings.method === 'nes') rng.fillNormal(u);
        else for (let j = 0; j < d; j++) u[j] = rng.next() < 0.5 ? -1 : 1;
        const plus = ((r - g0) * settings.samples + 2 * p) * d;
        const minus = plus + d;
        for (let j = 0; j < d; j++) {
          const xv = x[r * d + j]!;
          rows[plus + j] = xv + settings.sigma * u[j]!;
          rows[minus + j] = xv - settings.sigma * u[j]!;
        }
        own.push(owners[r]!, owners[r]!);
      }
    }
    const out = await ledger.predict(rowsTensor(rows, own.length, rowShape), own);
    const k = out.length / own.length;
    for (let r = g0; r < g1; r++) {
      const gr = grad.subarray(r * d, (r + 1) * d);
      for (let p = 0; p < pairs; p++) {
        const q = (r - g0) * settings.samples + 2 * p;
        const diff = loss(out, q, k, r) - loss(out, q + 1, k, r);
        if (!Number.isFinite(diff)) continue;
        const u = dirs.subarray(((r - g0) * pairs + p) * d, ((r - g0) * pairs + p + 1) * d);
        const f = diff / (2 * pairs * settings.sigma);
        for (let j = 0; j < d; j++) gr[j]! += f * u[j]!;
      }
    }
  }
  return grad;
}

/**
 * A model whose `lossAndGradient` is estimated from `predict` queries of the model it wraps. Its `queries`
 * counts every example it forwards (estimates included), exactly.
 */
export class EstimatedGradientModel implements Model {
  readonly inputShape: number[];
  readonly numClasses: number;
  readonly bounds: [number, number];
  readonly outputKind: OutputKind;
  /** Examples this wrapper has forwarded to the inner model (predict and estimates). */
  queries = 0;
  /** Resolved estimator settings. */
  readonly settings: EstimatorSettings;
  /** Total budget of the wrapper. */
  readonly maxQueries: number;
  private readonly rng: Rng;

  constructor(readonly inner: Model, opts: EstimatorOptions = {}) {
    this.inputShape = inner.inputShape;
    this.numClasses = inner.numClasses;
    this.bounds = inner.bounds;
    this.outputKind = inner.outputKind;
    this.settings = estimatorSettings(opts);
    this.rng = new Rng(opts.seed ?? 0);
    this.maxQueries = opts.maxQueries ?? Infinity;
    if (!(this.maxQueries >= 0)) throw new BulwarkError('BULWARK_E_ARG', `estimator maxQueries must be >= 0, got ${opts.maxQueries}`);
  }

  /** Queries one call of `lossAndGradient` on n examples costs. */
  costOf(n: number): number {
    return n * (1 + this.settings.samples);
  }

  /** Forwards to the inner model, counted against the budget. */
  async predict(x: Float32Tensor): Promise<Float32Tensor> {
    this.spend(x.shape[0]!);
    this.queries += x.shape[0]!;
    return this.inner.predict(x);
  }

  /**
   * Output and loss at x (one query per example) and the estimated gradient of the loss (`samples` queries per
   * example), for the heads ce, margin and dlr (untargeted and targeted) as `autodiff/heads.ts` defines them.
   * @throws BulwarkError BULWARK_E_QUERY_BUDGET when the call would pass `maxQueries`; BULWARK_E_LABELS; BULWARK_E_ARG (mse head)
   */
  async lossAndGradient(x: Float32Tensor, labels: ArrayLike<number>, head: HeadSpec = { kind: 'ce' }, targets?: ArrayLike<number>): Promise<LossAndGradient> {
    const n = x.shape[0]!;
    if (labels.length !== n) throw new BulwarkError('BULWARK_E_LABELS', `labels has ${labels.length} entries for ${n} inputs`);
    if (targets && targets.length !== n) throw new BulwarkError('BULWARK_E_LABELS', `targets has ${targets.length} entries for ${n} inputs`);
    if (head.kind === 'mse') throw new BulwarkError('BULWARK_E_ARG', 'the mse loss cannot be estimated from class scores', { hint: 'Use the ce, margin or dlr loss with a gradient estimator.' });
    assertFinite(x.data, 'input');
    this.spend(this.costOf(n));
    const ledger = new QueryLedger(this.inner, n);
    const owners = Int32Array.from({ length: n }, (_, i) => i);
    const out = await ledger.predict(x, owners);
    const k = out.length / n;
    if (this.numClasses > 0 && k !== this.numClasses) throw new BulwarkError('BULWARK_E_MODEL', `the model returned ${k} scores per example; it declares ${this.numClasses} classes`);
    const loss = headLoss(scoresOf(out, this.outputKind), k, head, labels, targets);
    const rngs = Array.from({ length: n }, () => this.rng.fork());
    const lossOfRow = (o: Float32Array, r: number, kk: number, row: number): number => {
      const z = scoresOf(o.subarray(r * kk, (r + 1) * kk), this.outputKind);
      return headLoss(z, kk, head, [labels[row]!], targets ? [targets[row]!] : undefined)[0]!;
    };
    const grad = await estimateGradient(ledger, x.data, x.shape.slice(1), owners, this.settings, rngs, lossOfRow);
    this.queries += ledger.total;
    if (ledger.total !== this.costOf(n)) throw new BulwarkError('BULWARK_E_INTERNAL', `estimator spent ${ledger.total} queries, planned ${this.costOf(n)}`);
    return { output: { data: out, shape: [n, k], dtype: 'float32' }, loss, grad: { data: grad, shape: [...x.shape], dtype: 'float32' } };
  }

  private spend(q: number): void {
    if (this.queries + q > this.maxQueries) {
      throw new BulwarkError('BULWARK_E_QUERY_BUDGET', `the gradient estimator's query budget of ${this.maxQueries} would be exceeded (${this.queries} spent, this call needs ${q})`, {
        details: { budget: this.maxQueries, spent: this.queries, needed: q },
      });
    }
  }
}

/**
 * Wraps any model into one with an estimated `lossAndGradient`, so white-box attacks (PGD, APGD, C&W, ...) run
 * black-box. Every estimate queries the wrapped model only through `predict`.
 * @param model the model to query (local, remote, or any predict function)
 * @param options estimator method, samples, sigma, seed and total query budget
 * @returns the wrapped model
 * @throws BulwarkError BULWARK_E_ARG for bad options
 * @example const bb = withEstimatedGradient(remote, { method: 'nes', samples: 50 }); await pgd(bb, x, y, { eps: 0.3 });
 */
export function withEstimatedGradient(model: Model, options: EstimatorOptions = {}): EstimatedGradientModel {
  if (!model || typeof model.predict !== 'function') throw new BulwarkError('BULWARK_E_ARG', 'withEstimatedGradient needs a model with predict(x)');
  if (model.inputShape.length === 0) throw new BulwarkError('BULWARK_E_SHAPE', `the model has input shape ${shapeStr(model.inputShape)}`);
  return new EstimatedGradientModel(model, options);
}
