/**
 * Square Attack (Andriushchenko, Croce, Flammarion, Hein, ECCV 2020, arXiv:1912.00049): a score-based black-box
 * attack by random search. Each step proposes a change of one random square window of the current perturbation,
 * keeps it if the margin loss decreases, and shrinks the window on the paper's schedule. L∞ starts from vertical
 * stripes of ±eps; L2 from a grid of "pseudo-Gaussian" bumps and updates pairs of windows (Algorithm 3).
 */
import { BulwarkError } from '../../core/errors.js';
import type { Rng } from '../../core/rng.js';
import type { Float32Tensor } from '../../core/tensor.js';
import { defineSchema, commonFields } from '../options.js';
import { defineAttack } from '../runner.js';
import type { AttackContext, AttackDefinition, CommonOptions, CraftOutput } from '../types.js';
import { clamp, exampleStreams, imageLayout, isAdversarial, rowsTensor } from './common.js';
import { crossEntropyOf, marginOf, scoresOf } from './losses.js';
import { QueryLedger, queryStats } from './queries.js';

/** Options of {@link square}. */
export interface SquareOptions extends CommonOptions {
  /** Queries each example may use, the initial one included (the paper's budget is 10000). */
  maxQueries: number;
  /** Initial fraction of pixels a window covers; halved on the schedule of {@link pSchedule}. */
  pInit: number;
  /** Loss to decrease: `margin` (z_y − max_{j≠y} z_j, the paper's untargeted loss), `ce`, or `auto` (margin untargeted, ce targeted as in the paper). */
  loss: 'auto' | 'margin' | 'ce';
}

const PAPER = 'Andriushchenko et al. 2020, Square Attack, https://arxiv.org/abs/1912.00049';

/**
 * The paper's window-size schedule: p is halved at iterations 10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000 of a
 * 10000-query run; other budgets rescale the iteration to that run (as the authors' code does).
 * @param pInit initial fraction
 * @param it current iteration (0-based)
 * @param budget total iterations
 * @returns the fraction of pixels of the window at this iteration
 */
export function pSchedule(pInit: number, it: number, budget: number): number {
  const i = Math.floor((it / budget) * 10000);
  const cuts = [10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000];
  let p = pInit;
  for (const c of cuts) if (i > c) p /= 2;
  return p;
}

/**
 * The L2 update pattern of the paper: two halves of opposite sign, each a sum of nested rectangles weighted
 * 1/(r+1)², normalized to unit L2 norm and transposed with probability 1/2.
 * @param s side of the window
 * @returns s×s values, row-major
 */
export function pseudoGaussianPattern(s: number, rng: Rng): Float64Array {
  const out = new Float64Array(s * s);
  const half = s >> 1;
  const put = (rows: number, cols: number, row0: number, sign: number): void => {
    const block = rectangles(rows, cols);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[(row0 + r) * s + c] = sign * block[r * cols + c]!;
  };
  put(half, s, 0, 1);
  put(s - half, s, half, -1);
  normalize(out);
  if (rng.next() < 0.5) {
    for (let r = 0; r < s; r++) {
      for (let c = r + 1; c < s; c++) {
        const t = out[r * s + c]!;
        out[r * s + c] = out[c * s + r]!;
        out[c * s + r] = t;
      }
    }
  }
  return out;
}

/** Nested centred rectangles of weight 1/(r+1)², normalized (the paper's building block). */
function rectangles(rows: number, cols: number): Float64Array {
  const d = new Float64Array(rows * cols);
  const rc = (rows >> 1) + 1;
  const cc = (cols >> 1) + 1;
  let r0 = rc - 1;
  let c0 = cc - 1;
  for (let k = 0; k < Math.max(rc, cc); k++) {
    const w = 1 / (k + 1) ** 2;
    for (let r = Math.max(r0, 0); r < Math.min(r0 + 2 * k + 1, rows); r++) {
      for (let c = Math.max(c0, 0); c < Math.min(c0 + 2 * k + 1, cols); c++) d[r * cols + c]! += w;
    }
    r0--;
    c0--;
  }
  normalize(d);
  return d;
}

function normalize(a: Float64Array): void {
  let s = 0;
  for (const v of a) s += v * v;
  const n = Math.sqrt(s);
  if (n > 0) for (let i = 0; i < a.length; i++) a[i]! /= n;
}

/** Loss the attack decreases, from scores; success is tested separately on the argmax. */
function lossOf(z: Float32Array, r: number, k: number, label: number, target: number | undefined, kind: 'margin' | 'ce'): number {
  if (target === undefined) return kind === 'margin' ? -marginOf(z, r, k, label) : -crossEntropyOf(z, r, k, label);
  return kind === 'margin' ? marginOf(z, r, k, target) : crossEntropyOf(z, r, k, target);
}

async function craftSquare(ctx: AttackContext<SquareOptions>): Promise<CraftOutput> {
  const { model, x, y, targets, options: o } = ctx;
  const n = x.shape[0]!;
  const { c, h, w } = imageLayout(x.shape, 'square');
  const d = c * h * w;
  const [lo, hi] = ctx.bounds;
  const eps = o.eps;
  const rowShape = x.shape.slice(1);
  const lossKind: 'margin' | 'ce' = o.loss === 'auto' ? (targets ? 'ce' : 'margin') : o.loss;
  const ledger = new QueryLedger(model, n, o.maxQueries);
  const rngs = exampleStreams(ctx);
  const best = new Float32Array(x.data.length);
  const tgt = (i: number): number | undefined => (targets ? targets[i]! : undefined);

  // Initialization: L∞ vertical stripes of ±eps per (channel, column); L2 a grid of signed bumps scaled to eps.
  for (let i = 0; i < n; i++) {
    const rng = rngs[i]!;
    const o0 = i * d;
    if (o.norm === 'inf') {
      for (let ch = 0; ch < c; ch++) {
        for (let col = 0; col < w; col++) {
          const v = rng.next() < 0.5 ? -eps : eps;
          for (let row = 0; row < h; row++) {
            const j = o0 + ch * h * w + row * w + col;
            best[j] = clamp(x.data[j]! + v, lo, hi);
          }
        }
      }
    } else {
      const delta = l2Init(c, h, w, rng);
      writeL2(best, x.data, o0, delta, eps, lo, hi);
    }
  }
  const owners = Int32Array.from({ length: n }, (_, i) => i);
  let out = await ledger.predict(rowsTensor(best, n, rowShape), owners);
  const k = out.length / n;
  let z = scoresOf(out, model.outputKind);
  const bestLoss = new Float64Array(n);
  const done = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    bestLoss[i] = lossOf(z, i, k, y[i]!, tgt(i), lossKind);
    done[i] = isAdversarial(out, i, k, y[i]!, tgt(i)) ? 1 : 0;
  }

  const cand = new Float32Array(x.data.length);
  for (let it = 0; it < o.maxQueries - 1; it++) {
    const active: number[] = [];
    for (let i = 0; i < n; i++) if (!done[i] && ledger.remaining(i) >= 1) active.push(i);
    if (active.length === 0) break;
    const p = pSchedule(o.pInit, it, o.maxQueries);
    const rows = new Float32Array(active.length * d);
    for (let a = 0; a < active.length; a++) {
      const i = active[a]!;
      const prop = cand.subarray(i * d, (i + 1) * d);
      prop.set(best.subarray(i * d, (i + 1) * d));
      if (o.norm === 'inf') proposeLinf(prop, x.data, i * d, c, h, w, p, eps, lo, hi, rngs[i]!);
      else proposeL2(prop, x.data, i * d, c, h, w, p, eps, lo, hi, rngs[i]!);
      rows.set(prop, a * d);
    }
    out = await ledger.predict(rowsTensor(rows, active.length, rowShape), Int32Array.from(active));
    z = scoresOf(out, model.outputKind);
    for (let a = 0; a < active.length; a++) {
      const i = active[a]!;
      const l = lossOf(z, a, k, y[i]!, tgt(i), lossKind);
      if (l < bestLoss[i]!) {
        bestLoss[i] = l;
        best.set(rows.subarray(a * d, (a + 1) * d), i * d);
        if (isAdversarial(out, a, k, y[i]!, tgt(i))) done[i] = 1;
      }
    }
  }
  const counts = ledger.counts();
  return {
    adversarial: { data: best, shape: [...x.shape], dtype: 'float32' } satisfies Float32Tensor,
    extras: { queriesPerExample: counts, queriesIndex: Int32Array.from(ctx.index), queryStats: queryStats(counts) },
  };
}

/** Window side covering a fraction p of the pixels, in [1, min(h, w) − 1] (the authors' clamp). */
function sideFor(p: number, h: number, w: number): number {
  return Math.max(1, Math.min(Math.round(Math.sqrt(p * h * w)), Math.min(h, w) - 1));
}

/** L∞ step: one window gets a fresh ±eps per channel; resampled when it would not change the image. */
function proposeLinf(prop: Float32Array, x: Float32Array, o0: number, c: number, h: number, w: number, p: number, eps: number, lo: number, hi: number, rng: Rng): void {
  const s = sideFor(p, h, w);
  const r0 = rng.int(h - s + 1);
  const c0 = rng.int(w - s + 1);
  for (let attempt = 0; attempt < 10; attempt++) {
    let changed = false;
    for (let ch = 0; ch < c; ch++) {
      const v = rng.next() < 0.5 ? -eps : eps;
      for (let r = r0; r < r0 + s; r++) {
        for (let q = c0; q < c0 + s; q++) {
          const j = ch * h * w + r * w + q;
          const nv = clamp(x[o0 + j]! + v, lo, hi);
          if (Math.abs(nv - prop[j]!) >= 1e-7) changed = true;
          prop[j] = nv;
        }
      }
    }
    if (changed) return;
  }
}

/** The L2 initialization: a grid of signed pseudo-Gaussian bumps of side h/5 (unnormalized). */
function l2Init(c: number, h: number, w: number, rng: Rng): Float64Array {
  const delta = new Float64Array(c * h * w);
  const s = Math.max(1, Math.floor(h / 5));
  const start = Math.floor((h - s * 5) / 2);
  for (let gr = 0, r0 = start; gr < Math.floor(h / s); gr++, r0 += s) {
    for (let gc = 0, c0 = start; gc < Math.floor(w / s); gc++, c0 += s) {
      const bump = pseudoGaussianPattern(s, rng);
      for (let ch = 0; ch < c; ch++) {
        const sign = rng.next() < 0.5 ? -1 : 1;
        for (let r = 0; r < s; r++) {
          for (let q = 0; q < s; q++) {
            if (r0 + r < 0 || r0 + r >= h || c0 + q < 0 || c0 + q >= w) continue;
            delta[ch * h * w + (r0 + r) * w + c0 + q]! += sign * bump[r * s + q]!;
          }
        }
      }
    }
  }
  return delta;
}

/** Writes clip(x + eps · delta/‖delta‖₂) into out. */
function writeL2(out: Float32Array, x: Float32Array, o0: number, delta: Float64Array, eps: number, lo: number, hi: number): void {
  let s = 0;
  for (const v of delta) s += v * v;
  const f = s > 0 ? eps / Math.sqrt(s) : 0;
  for (let j = 0; j < delta.length; j++) out[o0 + j] = clamp(x[o0 + j]! + delta[j]! * f, lo, hi);
}

/**
 * L2 step (Algorithm 3 of the paper): window 1 gets a new pattern plus its old content, window 2 is emptied, and
 * the freed norm (plus what the image has left below eps) is moved into window 1, per channel.
 */
function proposeL2(prop: Float32Array, x: Float32Array, o0: number, c: number, h: number, w: number, p: number, eps: number, lo: number, hi: number, rng: Rng): void {
  const hw = h * w;
  const d = c * hw;
  const delta = new Float64Array(d);
  let total2 = 0;
  for (let j = 0; j < d; j++) {
    delta[j] = prop[j]! - x[o0 + j]!;
    total2 += delta[j]! * delta[j]!;
  }
  let s = Math.max(Math.round(Math.sqrt((p * d) / c)), 3);
  if (s % 2 === 0) s++;
  s = Math.max(1, Math.min(s, Math.min(h, w) - 1));
  const r1 = rng.int(h - s + 1);
  const c1 = rng.int(w - s + 1);
  const r2 = rng.int(h - s + 1);
  const c2 = rng.int(w - s + 1);
  const in1 = (r: number, q: number) => r >= r1 && r < r1 + s && q >= c1 && q < c1 + s;
  const in2 = (r: number, q: number) => r >= r2 && r < r2 + s && q >= c2 && q < c2 + s;
  const pattern = pseudoGaussianPattern(s, rng);
  const spare = Math.max(eps * eps - total2, 0) / c;
  for (let ch = 0; ch < c; ch++) {
    const base = ch * hw;
    let win1 = 0;
    let union = 0;
    for (let r = 0; r < h; r++) {
      for (let q = 0; q < w; q++) {
        const v = delta[base + r * w + q]!;
        if (in1(r, q)) win1 += v * v;
        if (in1(r, q) || in2(r, q)) union += v * v;
      }
    }
    const sign = rng.next() < 0.5 ? -1 : 1;
    const win1Norm = Math.sqrt(win1);
    const fresh = new Float64Array(s * s);
    let fn = 0;
    for (let r = 0; r < s; r++) {
      for (let q = 0; q < s; q++) {
        const v = sign * pattern[r * s + q]! + delta[base + (r1 + r) * w + c1 + q]! / (1e-10 + win1Norm);
        fresh[r * s + q] = v;
        fn += v * v;
      }
    }
    const scale = fn > 0 ? Math.sqrt(spare + union) / Math.sqrt(fn) : 0;
    for (let r = r2; r < r2 + s; r++) for (let q = c2; q < c2 + s; q++) delta[base + r * w + q] = 0;
    for (let r = 0; r < s; r++) for (let q = 0; q < s; q++) delta[base + (r1 + r) * w + c1 + q] = fresh[r * s + q]! * scale;
  }
  writeL2(prop, x.subarray(o0, o0 + d), 0, delta, eps, lo, hi);
}

/** The Square Attack definition (registered as `square`). */
export const squareDefinition: AttackDefinition<SquareOptions> = {
  name: 'square',
  summary: 'Square Attack: score-based random search over square windows (black-box, L∞ and L2)',
  paper: PAPER,
  whiteBox: false,
  norms: ['inf', 2],
  targeted: true,
  schema: defineSchema<SquareOptions>(
    {
      ...commonFields({ norms: ['inf', 2] }),
      maxQueries: { type: 'number', integer: true, min: 1, default: 10000, doc: 'Queries per example, the initial query included; an example stops when it is broken or spent.', ref: PAPER },
      pInit: { type: 'number', min: 0, max: 1, exclusiveMin: true, default: 0.8, doc: 'Initial fraction of the pixels one window covers (AutoAttack\'s default; the paper tunes it per dataset).', ref: PAPER },
      loss: { type: 'enum', values: ['auto', 'margin', 'ce'], default: 'auto', doc: 'Loss to decrease: margin (untargeted default), ce (targeted default, as in the paper).' },
    },
    (o, attack) => {
      if (!Number.isFinite(o.eps) || o.eps <= 0) throw new BulwarkError('BULWARK_E_ARG', `${attack}: eps must be a finite radius > 0, got ${o.eps}`, { hint: 'Square searches inside a fixed eps-ball; for minimum-norm black-box adversarials use hsj.' });
    },
  ),
  craft: craftSquare,
};

/**
 * Square Attack (arXiv:1912.00049), run through the shared runner. Needs only `model.predict`; spends at most
 * `maxQueries` queries per example and reports per-example counts in `extras.queriesPerExample`.
 * @param model any model (white-box or black-box, local or remote)
 * @param x clean images [N, C, H, W] in the model bounds
 * @param y labels [N]
 * @param options `{ eps, norm: 'inf' | 2, maxQueries, pInit, loss, criterion, seed }`
 * @returns the verified {@link AttackResult}
 * @throws BulwarkError BULWARK_E_ARG (bad options), BULWARK_E_SHAPE (not images), errors of the model
 * @example const r = await square(model, x, y, { eps: 0.3, maxQueries: 5000 }); r.summary.robustAccuracy
 */
export const square = defineAttack<SquareOptions>(squareDefinition);
