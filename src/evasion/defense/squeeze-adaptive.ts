/**
 * A detector-aware adaptive attack on feature squeezing (Xu et al. 2018, https://arxiv.org/abs/1704.01155), in the
 * manner of He et al. 2017 (https://arxiv.org/abs/1706.04701, adaptive attacks on ensembles of weak defenses,
 * feature squeezing among them) and Sharma & Chen 2018 (https://arxiv.org/abs/1803.09868, bypassing feature
 * squeezing): the attacker minimizes, per example and inside the threat model,
 *
 *   L(x') = Σ_v w_v·max(z_y(v(x')) − max_{j≠y} z_j(v(x')) + κ, 0)  +  λ·Σ_k max(‖p(x') − p(s_k(x'))‖₁ − γτ, 0)
 *
 * over the views v ∈ {identity, s_1, …, s_m} (w = 1 for the identity, `squeezedWeight` for the squeezers): a C&W
 * margin toward misclassification of f(x') and of every f(s_k(x')), plus the detector's own L1 distances (p the
 * softmax, τ the fitted threshold, γ = `scoreTarget`: the detector term acts only while a distance is too large). The
 * squeezers are not differentiable; their gradient is BPDA's straight-through estimate (Athalye et al. 2018,
 * https://arxiv.org/abs/1802.00420): ∂/∂x' of g(s_k(x')) ≈ ∇g at s_k(x'). Every term is a function of logits, so
 * one vector-Jacobian product per view gives the whole gradient ({@link logitVjp}). Steps are PGD's (sign steps for
 * L∞, normalized steps for L2, projection onto the ball ∩ bounds; Madry et al. 2018). λ is searched per example
 * over rounds: up (×10, then bisection) when the last iterate was misclassified but flagged, down when it was not
 * misclassified. Against a 1-bit squeezer at L∞, rounds start from a greedy search on the binarized image that
 * flips reachable pixels (within eps of 0.5) until f(bit(x')) is fooled (`bitFlips`). An example counts as evading
 * only when, re-scored from scratch by the detector, it is misclassified by the model and its score is at or below
 * the fitted threshold.
 */
import { BulwarkError } from '../../core/errors.js';
import { Rng } from '../../core/rng.js';
import type { Float32Tensor } from '../../core/tensor.js';
import { argmax, project, rowSize, scatterRows, takeRows } from '../geometry.js';
import { defineSchema } from '../options.js';
import { ascentDirection, randomInBall } from '../whitebox/common.js';
import { rowSoftmax, type FeatureSqueezingDetector } from './squeeze.js';
import { logitVjp } from './vjp.js';

/** Options of {@link squeezeAdaptiveAttack}. */
export interface SqueezeAdaptiveOptions {
  /** Threat-model norm: L∞ or L2. */
  norm: 'inf' | 2;
  /** Threat-model radius (required). */
  eps: number;
  /** PGD steps per λ round. */
  steps: number;
  /** Step size; undefined means 2.5·eps/steps. */
  stepSize: number | undefined;
  /** Rounds of the per-example search over λ (each restarts from x). */
  lambdaSteps: number;
  /** Initial weight λ of the L1 detector term. */
  lambda: number;
  /**
   * The L1 terms are hinged at scoreTarget·threshold: λ·max(‖·‖₁ − scoreTarget·threshold, 0), so the detector term
   * pushes only while a distance is too large and the margin terms work alone below it (0: the plain L1 sum).
   */
  scoreTarget: number;
  /** Confidence κ of the margin terms (logit units). */
  kappa: number;
  /** Weight of the margin terms of the squeezed views (the identity view has weight 1). */
  squeezedWeight: number;
  /**
   * The squeezed views' margin terms aim at the wrong class that currently leads f(x') (so that every view agrees
   * on one class, which the L1 terms need), instead of at any wrong class.
   */
  consistent: boolean;
  /**
   * L∞ with a 1-bit squeezer (`bit:1` in the detector's specs): start from a point where f(bit(x')) is already fooled,
   * found by up to this many greedy flip steps on the binarized image (each flips the 2 reachable pixels — within
   * eps of 0.5 — whose flip raises the margin most, to first order, until max_{j≠y} z_j − z_y ≥ κ); flipped pixels
   * start at x ± eps. Straight-through steps rarely move a pixel across 0.5 on purpose; this search does. 0: off.
   */
  bitFlips: number;
  /** Start each round from a uniform random point of the ball. */
  randomStart: boolean;
  /** Success needs the score at most threshold − safety and the wrong class ahead by safety (float rounding). */
  safety: number;
  seed: number;
}

const REF = 'He et al. 2017, https://arxiv.org/abs/1706.04701; Sharma & Chen 2018, https://arxiv.org/abs/1803.09868';

export const squeezeAdaptiveSchema = defineSchema<SqueezeAdaptiveOptions>(
  {
    norm: { type: 'enum', values: ['inf', 2], default: 'inf', doc: 'Threat-model norm: `"inf"` (L∞) or 2 (L2).' },
    eps: { type: 'number', min: 0, exclusiveMin: true, doc: 'Threat-model radius in the chosen norm (input units).' },
    steps: { type: 'number', integer: true, min: 1, max: 100000, default: 100, doc: 'PGD steps per λ round.' },
    stepSize: {
      type: 'custom',
      optional: true,
      describeDefault: '2.5·eps/steps',
      parse: (v, k, a) => {
        if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) throw new BulwarkError('BULWARK_E_ARG', `${a}: option ${k} must be a positive number, got ${JSON.stringify(v)}`);
        return v;
      },
      doc: 'Step size in the threat-model norm; default 2.5·eps/steps.',
    },
    lambdaSteps: { type: 'number', integer: true, min: 1, max: 20, default: 3, doc: 'Rounds of the per-example λ search.', ref: REF },
    lambda: { type: 'number', min: 0, exclusiveMin: true, default: 10, doc: 'Initial weight λ of the detector\'s L1 term.', ref: REF },
    scoreTarget: { type: 'number', min: 0, max: 1, default: 0.5, doc: 'Hinge of the L1 terms as a fraction of the threshold (0: plain L1 sum).' },
    kappa: { type: 'number', min: 0, default: 2, doc: 'Confidence κ of the margin terms, in logits.' },
    squeezedWeight: { type: 'number', min: 0, default: 1, doc: 'Weight of the margin terms of the squeezed views.' },
    consistent: { type: 'boolean', default: false, doc: 'Squeezed views aim at the wrong class leading f(x\') (false: any wrong class).' },
    bitFlips: { type: 'number', integer: true, min: 0, max: 10000, default: 60, doc: 'L∞ with a bit:1 squeezer: greedy flip steps of the start point on the binarized image (0: off).' },
    randomStart: { type: 'boolean', default: false, doc: 'Start every round from a random point of the ball (the first round always starts at x).' },
    safety: { type: 'number', min: 0, default: 1e-4, doc: 'Success margin: score ≤ threshold − safety and the wrong class ahead by safety.' },
    seed: { type: 'number', integer: true, min: 0, default: 0, doc: 'Seed of the random starts.' },
  },
  (o, a) => {
    if (!Number.isFinite(o.eps)) throw new BulwarkError('BULWARK_E_ARG', `${a}: needs a finite eps`);
  },
);

/** What {@link squeezeAdaptiveAttack} returns; every per-example field is recomputed on the final inputs. */
export interface SqueezeAdaptiveResult {
  /** Adversarial inputs [N, ...] inside the threat model. */
  adversarial: Float32Tensor;
  /** Examples attacked: classified correctly before the attack. */
  attacked: Uint8Array;
  /** Model predictions on `adversarial`. */
  predictions: Int32Array;
  /** Detector scores of `adversarial` (from a fresh `detector.score`). */
  scores: Float64Array;
  /** Per example: attacked, misclassified, and score ≤ threshold (not flagged). */
  evaded: Uint8Array;
  /** Fraction of attacked examples that evade. */
  evasionRate: number;
  /** Fraction of attacked examples misclassified (flagged or not). */
  misclassifiedRate: number;
  /** The λ each example ended with. */
  lambda: Float64Array;
  threshold: number;
  norm: 'inf' | 2;
  eps: number;
  /** Model queries (forward rows and VJP rows). */
  queries: number;
  seconds: number;
}

function margins(z: Float32Array, row: number, k: number, y: number): { m: number; j: number } {
  let best = -Infinity;
  let j = -1;
  for (let c = 0; c < k; c++) if (c !== y && z[row * k + c]! > best) {
    best = z[row * k + c]!;
    j = c;
  }
  return { m: z[row * k + y]! - best, j };
}

/**
 * The greedy start against a 1-bit squeezer: on b = bit(x), repeatedly flip the reachable pixels (those that can cross
 * 0.5 within eps of x) with the largest first-order gain g_p·(1 − 2b_p) of the margin max_{j≠y} z_j − z_y, until the
 * margin reaches κ or `steps` run out; returns x with each flipped pixel moved by eps toward its new side.
 */
async function bitFlipStart(model: FeatureSqueezingDetector['model'], vjp: ReturnType<typeof logitVjp>, x: Float32Tensor, y: ArrayLike<number>, attacked: Uint8Array, eps: number, kappa: number, steps: number, bounds: [number, number]): Promise<Float32Tensor> {
  const n = x.shape[0]!;
  const d = rowSize(x);
  const k = model.numClasses;
  const [lo, hi] = bounds;
  const mid = (lo + hi) / 2;
  const b = new Float32Array(x.data.length);
  const reach = new Uint8Array(x.data.length);
  for (let j = 0; j < b.length; j++) {
    const v = x.data[j]!;
    // bitDepth(1) maps to hi when (v − lo)/(hi − lo) rounds to 1, i.e. v ≥ mid
    b[j] = v >= mid ? hi : lo;
    reach[j] = v >= mid ? (v - eps < mid ? 1 : 0) : v + eps >= mid ? 1 : 0;
  }
  const flipped = new Uint8Array(x.data.length);
  let live = Int32Array.from({ length: n }, (_, i) => i).filter((i) => attacked[i] === 1);
  for (let t = 0; t < steps && live.length > 0; t++) {
    const m = live.length;
    const rows = new Float32Array(m * d);
    live.forEach((i, r) => rows.set(b.subarray(i * d, (i + 1) * d), r * d));
    const X: Float32Tensor = { data: rows, shape: [m, ...x.shape.slice(1)], dtype: 'float32' };
    const z = (await model.predict(X)).data;
    const cot = new Float32Array(m * k);
    const keep: number[] = [];
    for (let r = 0; r < m; r++) {
      const mg = margins(z, r, k, y[live[r]!]!);
      if (-mg.m >= kappa) continue;
      keep.push(r);
      cot[r * k + mg.j] = 1;
      cot[r * k + y[live[r]!]!] = -1;
    }
    if (keep.length === 0) break;
    const g = (await vjp.run(X, cot)).grad.data;
    for (const r of keep) {
      const i = live[r]!;
      const cand: [number, number][] = [];
      for (let p = 0; p < d; p++) {
        const j = i * d + p;
        if (!reach[j] || flipped[j]) continue;
        const gain = g[r * d + p]! * (b[j]! === hi ? -1 : 1);
        if (gain > 0) cand.push([gain, j]);
      }
      cand.sort((a, c) => c[0] - a[0]);
      for (const [, j] of cand.slice(0, 2)) {
        b[j] = b[j]! === hi ? lo : hi;
        flipped[j] = 1;
      }
    }
    live = Int32Array.from(keep, (r) => live[r]!);
  }
  const out = new Float32Array(x.data);
  for (let j = 0; j < out.length; j++) if (flipped[j]) out[j] = b[j]! === hi ? Math.min(hi, x.data[j]! + eps) : Math.max(lo, x.data[j]! - eps);
  return { data: out, shape: [...x.shape], dtype: 'float32' };
}

/**
 * Attacks the model and the feature-squeezing detector together (see the file comment for the objective).
 * @param detector a fitted detector ({@link featureSqueezing}); its model must be an OnnxModel or a NetworkModel
 * @param x clean inputs [N, ...] in the model bounds
 * @param y true labels
 * @param options see {@link SqueezeAdaptiveOptions}; `eps` is required
 * @throws BulwarkError BULWARK_E_DETECTOR (not fitted), BULWARK_E_ARG, BULWARK_E_MODEL (no VJP), BULWARK_E_LABELS
 * @example const d = featureSqueezing(model); await d.fit(clean, 0.05); const r = await squeezeAdaptiveAttack(d, x, y, { eps: 0.3 });
 */
export async function squeezeAdaptiveAttack(detector: FeatureSqueezingDetector, x: Float32Tensor, y: ArrayLike<number>, options: Partial<SqueezeAdaptiveOptions> = {}): Promise<SqueezeAdaptiveResult> {
  const o = squeezeAdaptiveSchema.parse(options, 'squeeze-adaptive');
  const threshold = detector.threshold;
  if (threshold === undefined) throw new BulwarkError('BULWARK_E_DETECTOR', 'the adaptive attack needs a fitted detector (its threshold)');
  const model = detector.model;
  const n = x.shape[0]!;
  const k = model.numClasses;
  if (y.length !== n) throw new BulwarkError('BULWARK_E_LABELS', `labels has ${y.length} entries for ${n} inputs`);
  for (let i = 0; i < n; i++) if (!(Number.isInteger(y[i]) && y[i]! >= 0 && y[i]! < k)) throw new BulwarkError('BULWARK_E_LABELS', `labels[${i}] = ${y[i]} is not a class id in [0, ${k})`);
  const t0 = performance.now();
  const q0 = model.queries;
  const d = rowSize(x);
  const squeezers = detector.squeezers;
  const views = squeezers.length + 1;
  const bounds = model.bounds;
  const vjp = logitVjp(model);
  const probs = vjp.kind === 'probs';
  const rng = new Rng(o.seed);
  const step = o.stepSize ?? (2.5 * o.eps) / o.steps;
  const target = threshold - o.safety;

  const clean = argmax(await model.predict(x));
  const attacked = Uint8Array.from(clean, (p, i) => (p === y[i] ? 1 : 0));
  const best: Float32Tensor = { data: new Float32Array(x.data), shape: [...x.shape], dtype: 'float32' };
  const found = new Uint8Array(n);
  const lambda = new Float64Array(n).fill(o.lambda);
  const lower = new Float64Array(n);
  const upper = new Float64Array(n).fill(Infinity);

  try {
    const useFlips = o.bitFlips > 0 && o.norm === 'inf' && (detector.specs ?? []).some((s) => s.kind === 'bit' && s.param === 1);
    const flipStart = useFlips ? await bitFlipStart(model, vjp, x, y, attacked, o.eps, o.kappa, o.bitFlips, bounds) : undefined;
    for (let round = 0; round < o.lambdaSteps; round++) {
      let live = Int32Array.from({ length: n }, (_, i) => i).filter((i) => attacked[i] && !found[i]);
      if (live.length === 0) break;
      const x0 = takeRows(x, live);
      let cur = takeRows(x, live);
      if (flipStart) cur = takeRows(flipStart, live);
      else if (o.randomStart && round > 0) {
        const noise = randomInBall(rng, live.length, d, o.norm, o.eps, new Float32Array(cur.data.length));
        for (let j = 0; j < cur.data.length; j++) cur.data[j] = cur.data[j]! + noise[j]!;
        project(cur, x0, o.norm, o.eps, bounds);
      }
      let xs = x0;
      const lastMis = new Uint8Array(n);
      for (let t = 0; t <= o.steps && live.length > 0; t++) {
        const m = live.length;
        // the views, stacked: rows [v·m, (v+1)·m) hold view v of the live examples
        const stack = new Float32Array(views * m * d);
        stack.set(cur.data, 0);
        squeezers.forEach((s, v) => stack.set(s(cur).data, (v + 1) * m * d));
        const X: Float32Tensor = { data: stack, shape: [views * m, ...x.shape.slice(1)], dtype: 'float32' };
        const z = (await model.predict(X)).data;
        const p = rowSoftmax(z, views * m, k, probs);
        const keep: number[] = [];
        for (let r = 0; r < m; r++) {
          const i = live[r]!;
          const yi = y[i]!;
          const mg = margins(z, r, k, yi);
          let score = 0;
          for (let v = 1; v < views; v++) {
            let l1 = 0;
            for (let c = 0; c < k; c++) l1 += Math.abs(p[r * k + c]! - p[(v * m + r) * k + c]!);
            score = Math.max(score, l1);
          }
          lastMis[i] = mg.m < 0 ? 1 : 0;
          if (mg.m <= -o.safety && score <= target) {
            found[i] = 1;
            scatterRows(best, cur, [i], [r]);
          } else keep.push(r);
        }
        if (keep.length === 0 || t === o.steps) {
          for (const r of keep) scatterRows(best, cur, [live[r]!], [r]);
          live = Int32Array.from(keep, (r) => live[r]!);
          break;
        }
        // cotangents ∂L/∂z of every view row (only the kept examples are differentiated)
        const mk = keep.length;
        const cot = new Float32Array(views * mk * k);
        const sub = new Float32Array(views * mk * d);
        const gp = new Float64Array(k);
        const addSoftmaxVjp = (row: number, outRow: number, sign: number, sgn: Float64Array, lam: number) => {
          // ∂/∂z of lam·sign·Σ_c sgn_c·p_c
          if (probs) {
            for (let c = 0; c < k; c++) cot[outRow * k + c] = cot[outRow * k + c]! + lam * sign * sgn[c]!;
            return;
          }
          let dot = 0;
          for (let c = 0; c < k; c++) dot += sgn[c]! * p[row * k + c]!;
          for (let c = 0; c < k; c++) cot[outRow * k + c] = cot[outRow * k + c]! + lam * sign * p[row * k + c]! * (sgn[c]! - dot);
        };
        keep.forEach((r, s) => {
          const i = live[r]!;
          const yi = y[i]!;
          for (let v = 0; v < views; v++) {
            const row = v * m + r;
            const outRow = v * mk + s;
            sub.set(stack.subarray(row * d, (row + 1) * d), outRow * d);
            const w = v === 0 ? 1 : o.squeezedWeight;
            if (v === 0 || !o.consistent) {
              const mg = margins(z, row, k, yi);
              if (w > 0 && mg.m + o.kappa > 0) {
                cot[outRow * k + yi] = cot[outRow * k + yi]! + w;
                cot[outRow * k + mg.j] = cot[outRow * k + mg.j]! - w;
              }
            } else {
              // toward the class that leads f(x') among the wrong ones: max_{c≠t} z_c − z_t + κ
              const t = margins(z, r, k, yi).j;
              const mg = margins(z, row, k, t);
              if (w > 0 && mg.m < o.kappa) {
                cot[outRow * k + mg.j] = cot[outRow * k + mg.j]! + w;
                cot[outRow * k + t] = cot[outRow * k + t]! - w;
              }
            }
            if (v === 0) continue;
            let l1 = 0;
            for (let c = 0; c < k; c++) l1 += Math.abs(p[r * k + c]! - p[row * k + c]!);
            if (l1 <= o.scoreTarget * threshold) continue;
            for (let c = 0; c < k; c++) gp[c] = Math.sign(p[r * k + c]! - p[row * k + c]!);
            addSoftmaxVjp(r, s, 1, gp, lambda[i]!);
            addSoftmaxVjp(row, outRow, -1, gp, lambda[i]!);
          }
        });
        const g = (await vjp.run({ data: sub, shape: [views * mk, ...x.shape.slice(1)], dtype: 'float32' }, cot)).grad.data;
        // BPDA: the straight-through gradient of every view is a gradient at x'
        const total = new Float32Array(mk * d);
        for (let v = 0; v < views; v++) for (let j = 0; j < mk * d; j++) total[j] = total[j]! + g[v * mk * d + j]!;
        if (keep.length < m) {
          live = Int32Array.from(keep, (r) => live[r]!);
          cur = takeRows(cur, keep);
          xs = takeRows(xs, keep);
        }
        const dir = ascentDirection({ data: total, shape: [mk, ...x.shape.slice(1)], dtype: 'float32' }, o.norm, new Float32Array(mk * d));
        for (let j = 0; j < cur.data.length; j++) cur.data[j] = cur.data[j]! - step * dir[j]!;
        project(cur, xs, o.norm, o.eps, bounds);
      }
      // λ search on the examples still failing: more weight on the detector term when the last iterate fooled the
      // model but was flagged, less when it did not fool the model
      for (const i of live) {
        if (lastMis[i]) {
          lower[i] = lambda[i]!;
          lambda[i] = Number.isFinite(upper[i]!) ? (lower[i]! + upper[i]!) / 2 : lambda[i]! * 10;
        } else {
          upper[i] = lambda[i]!;
          lambda[i] = (lower[i]! + upper[i]!) / 2;
        }
      }
    }
  } finally {
    await vjp.dispose();
  }

  // verification from scratch: the model's prediction and the detector's own score of the final inputs
  project(best, x, o.norm, o.eps, bounds);
  const predictions = argmax(await model.predict(best));
  const scores = await detector.score(best);
  const evaded = new Uint8Array(n);
  let nAtt = 0;
  let nEv = 0;
  let nMis = 0;
  for (let i = 0; i < n; i++) {
    if (!attacked[i]) continue;
    nAtt++;
    if (predictions[i] !== y[i]) {
      nMis++;
      if (scores[i]! <= threshold) {
        evaded[i] = 1;
        nEv++;
      }
    }
  }
  return {
    adversarial: best,
    attacked,
    predictions,
    scores,
    evaded,
    evasionRate: nAtt ? nEv / nAtt : 0,
    misclassifiedRate: nAtt ? nMis / nAtt : 0,
    lambda,
    threshold,
    norm: o.norm,
    eps: o.eps,
    queries: model.queries - q0,
    seconds: (performance.now() - t0) / 1000,
  };
}
