/**
 * NES-PGD: projected gradient ascent on gradients estimated from queries (Ilyas, Engstrom, Athalye, Lin, ICML
 * 2018, arXiv:1804.08598, the query-limited setting), with SPSA directions as an option (Uesato et al. 2018,
 * arXiv:1802.05666). Each iteration checks the current point (one query, so broken examples stop early), then
 * estimates the gradient (`samples` queries) and takes a signed (L∞) or normalized (L2) step, projected onto the
 * eps-ball and the bounds.
 */
import { BulwarkError } from '../../core/errors.js';
import { projectRow } from '../geometry.js';
import { defineSchema, commonFields } from '../options.js';
import { defineAttack } from '../runner.js';
import type { AttackContext, AttackDefinition, CommonOptions, CraftOutput } from '../types.js';
import { exampleStreams, isAdversarial, rowsTensor } from './common.js';
import { estimateGradient, estimatorSettings } from './estimator.js';
import { crossEntropyOf, marginOf, scoresOf } from './losses.js';
import { QueryLedger, queryStats } from './queries.js';

/** Options of {@link nes}. */
export interface NesOptions extends CommonOptions {
  /** Gradient estimator: antithetic Gaussian (nes) or Rademacher (spsa). */
  estimator: 'nes' | 'spsa';
  /** Queries per gradient estimate (even: antithetic pairs). */
  samples: number;
  /** NES σ / SPSA δ, in input units. */
  sigma: number;
  /** Iterations at most (each costs 1 + samples queries per example still running). */
  steps: number;
  /** Step size as a fraction of eps. */
  relStep: number;
  /** Momentum of the estimated gradient (0: none). */
  momentum: number;
  /** Loss to increase: margin (max_{j≠y} z_j − z_y) or ce. */
  loss: 'margin' | 'ce';
  /** Queries each example may use. */
  maxQueries: number;
}

const PAPER = 'Ilyas et al. 2018, Black-box Adversarial Attacks with Limited Queries and Information, https://arxiv.org/abs/1804.08598';
const SPSA = 'Uesato et al. 2018, Adversarial Risk and the Dangers of Evaluating Against Weak Attacks, https://arxiv.org/abs/1802.05666';

/** The attacker's objective (increased): untargeted, away from the label; targeted, toward the target. */
function objective(z: Float32Array, r: number, k: number, label: number, target: number | undefined, kind: 'margin' | 'ce'): number {
  if (target === undefined) return kind === 'margin' ? marginOf(z, r, k, label) : crossEntropyOf(z, r, k, label);
  return kind === 'margin' ? -marginOf(z, r, k, target) : -crossEntropyOf(z, r, k, target);
}

async function craftNes(ctx: AttackContext<NesOptions>): Promise<CraftOutput> {
  const { model, x, y, targets, options: o } = ctx;
  const n = x.shape[0]!;
  const d = x.data.length / n;
  const rowShape = x.shape.slice(1);
  const [lo, hi] = ctx.bounds;
  // a probe wider than the input range leaves the box at once (and, large enough, overflows to non-finite inputs)
  if (!(o.sigma <= hi - lo)) {
    throw new BulwarkError('BULWARK_E_ARG', `${ctx.options.estimator}: option sigma must be <= the input range ${hi - lo} (the model bounds [${lo}, ${hi}]), got ${o.sigma}`, { hint: 'Ilyas et al. use 0.001 and Uesato et al. 0.01 on [0, 1] inputs.' });
  }
  const settings = estimatorSettings({ method: o.estimator, samples: o.samples, sigma: o.sigma });
  const ledger = new QueryLedger(model, n, o.maxQueries);
  const rngs = exampleStreams(ctx);
  const tgt = (i: number): number | undefined => (targets ? targets[i]! : undefined);
  const adv = new Float32Array(x.data);
  const velocity = new Float32Array(x.data.length);
  const done = new Uint8Array(n);
  const alpha = o.relStep * o.eps;

  for (let t = 0; t < o.steps; t++) {
    // Check the current points of the examples still running (one query each).
    const check = [...Array(n).keys()].filter((i) => !done[i] && ledger.remaining(i) >= 1);
    if (check.length === 0) break;
    const rows = new Float32Array(check.length * d);
    check.forEach((i, a) => rows.set(adv.subarray(i * d, (i + 1) * d), a * d));
    const out = await ledger.predict(rowsTensor(rows, check.length, rowShape), check);
    const k = out.length / check.length;
    check.forEach((i, a) => {
      if (isAdversarial(out, a, k, y[i]!, tgt(i))) done[i] = 1;
    });
    const step = check.filter((i) => !done[i] && ledger.remaining(i) >= settings.samples);
    if (step.length === 0) break;
    const xs = new Float32Array(step.length * d);
    step.forEach((i, a) => xs.set(adv.subarray(i * d, (i + 1) * d), a * d));
    const grad = await estimateGradient(ledger, xs, rowShape, step, settings, step.map((i) => rngs[i]!), (o2, r, kk, row) => {
      const i = step[row]!;
      return objective(scoresOf(o2.subarray(r * kk, (r + 1) * kk), model.outputKind), 0, kk, y[i]!, tgt(i), o.loss);
    });
    step.forEach((i, a) => {
      const g = grad.subarray(a * d, (a + 1) * d);
      const v = velocity.subarray(i * d, (i + 1) * d);
      let nrm = 0;
      for (let j = 0; j < d; j++) {
        v[j] = o.momentum * v[j]! + g[j]!;
        nrm += v[j]! * v[j]!;
      }
      nrm = Math.sqrt(nrm);
      if (!(nrm > 0)) return;
      for (let j = 0; j < d; j++) adv[i * d + j]! += o.norm === 'inf' ? alpha * Math.sign(v[j]!) : (alpha * v[j]!) / nrm;
      projectRow(adv, x.data, i * d, d, o.norm, o.eps, lo, hi);
    });
  }
  const counts = ledger.counts();
  return {
    adversarial: { data: adv, shape: [...x.shape], dtype: 'float32' },
    extras: { queriesPerExample: counts, queriesIndex: Int32Array.from(ctx.index), queryStats: queryStats(counts) },
  };
}

/** The NES-PGD definition (registered as `nes`). */
export const nesDefinition: AttackDefinition<NesOptions> = {
  name: 'nes',
  summary: 'NES-PGD: PGD on gradients estimated from scores (antithetic NES or SPSA; black-box, L∞ and L2)',
  paper: `${PAPER}; ${SPSA}`,
  whiteBox: false,
  norms: ['inf', 2],
  targeted: true,
  schema: defineSchema<NesOptions>(
    {
      ...commonFields({ norms: ['inf', 2] }),
      estimator: { type: 'enum', values: ['nes', 'spsa'], default: 'nes', doc: 'Gradient estimator: antithetic Gaussian (nes) or antithetic Rademacher (spsa).', ref: `${PAPER}; ${SPSA}` },
      samples: { type: 'number', integer: true, min: 2, default: 50, doc: 'Queries per gradient estimate (even; antithetic pairs). Ilyas et al. use 50.', ref: PAPER },
      sigma: { type: 'number', min: 0, exclusiveMin: true, default: 0.001, doc: 'NES σ (Ilyas et al.: 0.001) or SPSA δ (Uesato et al.: 0.01), in input units.', ref: PAPER },
      steps: { type: 'number', integer: true, min: 1, default: 200, doc: 'Iterations at most; each costs 1 + samples queries per example still running.' },
      relStep: { type: 'number', min: 0, exclusiveMin: true, default: 0.05, doc: 'Step size as a fraction of eps (signed steps for L∞, normalized for L2).' },
      momentum: { type: 'number', min: 0, max: 1, default: 0.9, doc: 'Momentum of the estimated gradient (0: plain PGD); 0.9 averages the noisy estimates and breaks MNIST models with about half the queries of plain steps (measured, docs/BLACKBOX.md).' },
      loss: { type: 'enum', values: ['margin', 'ce'], default: 'margin', doc: 'Objective increased: margin max_{j≠y} z_j − z_y (C&W style) or cross-entropy.' },
      maxQueries: { type: 'number', integer: true, min: 1, default: 10000, doc: 'Queries per example; an example stops when broken or when it cannot afford the next estimate.' },
    },
    (o, attack) => {
      if (!Number.isFinite(o.eps) || o.eps <= 0) throw new BulwarkError('BULWARK_E_ARG', `${attack}: eps must be a finite radius > 0, got ${o.eps}`);
      if (o.samples % 2 !== 0) throw new BulwarkError('BULWARK_E_ARG', `${attack}: samples must be even (antithetic pairs), got ${o.samples}`);
    },
  ),
  craft: craftNes,
};

/**
 * NES-PGD (arXiv:1804.08598) through the shared runner: needs only `model.predict`; spends at most `maxQueries`
 * per example; per-example counts in `extras.queriesPerExample`.
 * @param model any model
 * @param x clean inputs [N, ...] in the model bounds
 * @param y labels [N]
 * @param options `{ eps, norm, estimator, samples, sigma, steps, relStep, momentum, loss, maxQueries, criterion, seed }`
 * @returns the verified {@link AttackResult}
 * @throws BulwarkError BULWARK_E_ARG (bad options), errors of the model
 * @example const r = await nes(remote, x, y, { eps: 0.3, maxQueries: 5000 });
 */
export const nes = defineAttack<NesOptions>(nesDefinition);
