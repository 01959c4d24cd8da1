/**
 * Helpers shared by the white-box attacks: the attacker's objective and its gradient (always "to increase"),
 * steepest-ascent steps per norm, random starts, success tests on logits, per-class gradient differences.
 */
import type { Rng } from '../../core/rng.js';
import type { Float32Tensor } from '../../core/tensor.js';
import { gradientModel } from '../runner.js';
import { rowSize } from '../geometry.js';
import type { AttackContext, Model, Norm } from '../types.js';

/** Loss an attack can optimize. */
export type AttackLoss = 'ce' | 'margin' | 'dlr';

/** The attacker's objective at x: per-example values to increase, their gradient, and the logits at x. */
export interface Objective {
  value: Float32Array;
  grad: Float32Tensor;
  logits: Float32Tensor;
}

/**
 * The objective an attacker increases: the untargeted loss of the true label, or minus the targeted loss of the
 * target class (CE toward the target, C&W margin with the target, targeted DLR with labels and targets).
 * @param kappa confidence of the margin loss (C&W); Infinity leaves it unclipped
 */
export async function objective(model: Model, x: Float32Tensor, y: Int32Array, targets: Int32Array | undefined, loss: AttackLoss, kappa = Infinity): Promise<Objective> {
  const m = gradientModel(model);
  if (!targets) {
    const r = await m.lossAndGradient(x, y, { kind: loss, ...(loss === 'margin' ? { kappa } : {}) });
    return { value: r.loss, grad: r.grad, logits: r.output };
  }
  const r = loss === 'ce'
    ? await m.lossAndGradient(x, targets, { kind: 'ce' })
    : loss === 'margin'
      ? await m.lossAndGradient(x, targets, { kind: 'margin', targeted: true, kappa })
      : await m.lossAndGradient(x, y, { kind: 'dlr', targeted: true }, targets);
  const v = r.loss;
  for (let i = 0; i < v.length; i++) v[i] = -v[i]!;
  const g = r.grad.data;
  for (let i = 0; i < g.length; i++) g[i] = -g[i]!;
  return { value: v, grad: r.grad, logits: r.output };
}

/** Argmax of one row of logits. */
export function rowArgmax(logits: Float32Array, i: number, k: number): number {
  let best = 0;
  let bv = -Infinity;
  for (let j = 0; j < k; j++) {
    const v = logits[i * k + j]!;
    if (v > bv) {
      bv = v;
      best = j;
    }
  }
  return best;
}

/** Per-example success on logits: prediction = target (targeted) or ≠ label (untargeted). */
export function successOnLogits(logits: Float32Tensor, y: Int32Array, targets: Int32Array | undefined): Uint8Array {
  const n = y.length;
  const k = logits.data.length / n;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const p = rowArgmax(logits.data, i, k);
    out[i] = targets ? (p === targets[i] ? 1 : 0) : p !== y[i] ? 1 : 0;
  }
  return out;
}

/** Success as the runner will judge it for this context (APGD-T-style rounds count misclassification). */
export function ctxTargetsForSuccess(ctx: AttackContext<{ criterion: { kind: string } }>): Int32Array | undefined {
  return ctx.options.criterion.kind === 'targeted' ? ctx.targets : undefined;
}

/**
 * Writes the steepest-ascent direction of the gradient for a norm into `out` (row by row): sign(g) for L∞,
 * g/‖g‖₂ for L2, and for L1 the sparse direction of SLIDE (Tramèr & Boneh 2019, arXiv:1904.13000): sign(g) on the
 * coordinates whose |g| is at or above the q-quantile, scaled to unit L1 norm. Coordinates that sit on a bound and
 * whose gradient points out of the box are left out of the L1 selection (their step would be clipped away).
 */
export function ascentDirection(g: Float32Tensor, norm: Norm, out: Float32Array, opts: { q?: number; x?: Float32Array; bounds?: [number, number] } = {}): Float32Array {
  const n = g.shape[0]!;
  const d = rowSize(g);
  const gd = g.data;
  if (norm === 'inf') {
    for (let j = 0; j < gd.length; j++) out[j] = gd[j]! > 0 ? 1 : gd[j]! < 0 ? -1 : 0;
    return out;
  }
  if (norm === 2) {
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = i * d; j < (i + 1) * d; j++) s += gd[j]! * gd[j]!;
      const f = 1 / (Math.sqrt(s) + 1e-12);
      for (let j = i * d; j < (i + 1) * d; j++) out[j] = gd[j]! * f;
    }
    return out;
  }
  const q = opts.q ?? 0.99;
  const mag = new Float32Array(d);
  for (let i = 0; i < n; i++) {
    const o = i * d;
    for (let j = 0; j < d; j++) {
      let a = Math.abs(gd[o + j]!);
      if (opts.x && opts.bounds) {
        const xv = opts.x[o + j]!;
        if ((xv >= opts.bounds[1] && gd[o + j]! > 0) || (xv <= opts.bounds[0] && gd[o + j]! < 0)) a = 0;
      }
      mag[j] = a;
    }
    const sorted = Float32Array.from(mag).sort();
    const thr = sorted[Math.min(d - 1, Math.floor(q * d))]!;
    let count = 0;
    for (let j = 0; j < d; j++) if (mag[j]! >= thr && mag[j]! > 0) count++;
    for (let j = 0; j < d; j++) out[o + j] = mag[j]! >= thr && mag[j]! > 0 ? Math.sign(gd[o + j]!) / count : 0;
  }
  return out;
}

/**
 * A uniform random point of the eps-ball of a norm around zero, per row, written into `out` (L∞: uniform in the
 * cube; L2: uniform in the ball; L1: uniform in the cross-polytope, via normalized exponentials with random signs).
 */
export function randomInBall(rng: Rng, n: number, d: number, norm: Norm, eps: number, out: Float32Array): Float32Array {
  if (norm === 'inf') {
    for (let j = 0; j < n * d; j++) out[j] = rng.uniform(-eps, eps);
    return out;
  }
  for (let i = 0; i < n; i++) {
    const o = i * d;
    let s = 0;
    if (norm === 2) {
      for (let j = 0; j < d; j++) {
        const v = rng.normal();
        out[o + j] = v;
        s += v * v;
      }
      const r = eps * Math.pow(rng.next(), 1 / d) / Math.sqrt(s);
      for (let j = 0; j < d; j++) out[o + j] = out[o + j]! * r;
    } else {
      for (let j = 0; j < d; j++) {
        const v = -Math.log(1 - rng.next());
        out[o + j] = rng.next() < 0.5 ? -v : v;
        s += v;
      }
      const r = eps * Math.pow(rng.next(), 1 / d) / s;
      for (let j = 0; j < d; j++) out[o + j] = out[o + j]! * r;
    }
  }
  return out;
}

/**
 * Random points of the eps-ball around zero for the listed rows, each drawn from its own example's stream for this
 * restart (`ctx.stream(row, restart)`), so a random start never depends on the other rows of the batch.
 * @param rows row numbers in ctx.x, one output row each (in this order)
 */
export function randomStartRows(ctx: Pick<AttackContext<unknown>, 'stream'>, rows: ArrayLike<number>, restart: number, d: number, norm: Norm, eps: number): Float32Array {
  const out = new Float32Array(rows.length * d);
  for (let q = 0; q < rows.length; q++) randomInBall(ctx.stream(rows[q]!, restart), 1, d, norm, eps, out.subarray(q * d, (q + 1) * d));
  return out;
}

/**
 * Gradients of the logit differences z_k − z_y for every class k, in one batched call: row (i, k) evaluates the
 * cross-entropy head with label k at x_i, and since ∇CE_k = Σ_j p_j ∇z_j − ∇z_k, the differences
 * ∇CE_y − ∇CE_k = ∇z_k − ∇z_y and CE_y − CE_k = z_k − z_y need no extra head (the softmax terms cancel).
 * @param classes the classes to differentiate per example (candidate set), each row of length m
 * @returns f[i*m + c] = z_{classes[i][c]} − z_{y_i} and w (rows i*m + c) = its gradient; logits at x
 */
export async function logitDifferences(model: Model, x: Float32Tensor, y: Int32Array, classes: Int32Array[], m: number): Promise<{ f: Float64Array; w: Float32Array; logits: Float32Tensor }> {
  const gm = gradientModel(model);
  const n = x.shape[0]!;
  const d = rowSize(x);
  const rows = m + 1;
  const xs = new Float32Array(n * rows * d);
  const labels = new Int32Array(n * rows);
  for (let i = 0; i < n; i++) {
    for (let r = 0; r < rows; r++) {
      xs.set(x.data.subarray(i * d, (i + 1) * d), (i * rows + r) * d);
      labels[i * rows + r] = r === 0 ? y[i]! : classes[i]![r - 1]!;
    }
  }
  const res = await gm.lossAndGradient({ data: xs, shape: [n * rows, ...x.shape.slice(1)], dtype: 'float32' }, labels);
  const k = res.output.data.length / (n * rows);
  const logits = new Float32Array(n * k);
  const f = new Float64Array(n * m);
  const w = new Float32Array(n * m * d);
  const g = res.grad.data;
  for (let i = 0; i < n; i++) {
    logits.set(res.output.data.subarray(i * rows * k, (i * rows + 1) * k), i * k);
    const base = i * rows;
    for (let c = 0; c < m; c++) {
      f[i * m + c] = res.loss[base]! - res.loss[base + c + 1]!;
      const go = (base + c + 1) * d;
      const gy = base * d;
      const wo = (i * m + c) * d;
      for (let j = 0; j < d; j++) w[wo + j] = g[gy + j]! - g[go + j]!;
    }
  }
  // the model counted n·(m+1) queries: that is what the attack spent
  return { f, w, logits: { data: logits, shape: [n, k], dtype: 'float32' } };
}

/** For each example, the `m` classes other than y with the largest logits (DeepFool's candidate classes). */
export function candidateClasses(logits: Float32Tensor, y: Int32Array, m: number): Int32Array[] {
  const n = y.length;
  const k = logits.data.length / n;
  const out: Int32Array[] = [];
  for (let i = 0; i < n; i++) {
    const cls = Array.from({ length: k }, (_, j) => j).filter((j) => j !== y[i]);
    cls.sort((a, b) => logits.data[i * k + b]! - logits.data[i * k + a]! || a - b);
    out.push(Int32Array.from(cls.slice(0, m)));
  }
  return out;
}

/** Adam (Kingma & Ba 2015, arXiv:1412.6980) on a flat Float32Array, minimizing. */
export class Adam {
  private readonly m: Float32Array;
  private readonly v: Float32Array;
  private t = 0;
  constructor(size: number, private readonly lr: number, private readonly b1 = 0.9, private readonly b2 = 0.999, private readonly eps = 1e-8) {
    this.m = new Float32Array(size);
    this.v = new Float32Array(size);
  }

  /** One descent step on `params` with gradient `g`; rows with `frozen[row]` set (row length d) are skipped. */
  step(params: Float32Array, g: Float32Array): void {
    this.t++;
    const bc1 = 1 - Math.pow(this.b1, this.t);
    const bc2 = 1 - Math.pow(this.b2, this.t);
    const sbc2 = Math.sqrt(bc2);
    for (let j = 0; j < params.length; j++) {
      const gj = g[j]!;
      const mj = (this.m[j] = this.b1 * this.m[j]! + (1 - this.b1) * gj);
      const vj = (this.v[j] = this.b2 * this.v[j]! + (1 - this.b2) * gj * gj);
      params[j] = params[j]! - (this.lr / bc1) * (mj / (Math.sqrt(vj) / sbc2 + this.eps));
    }
  }
}
