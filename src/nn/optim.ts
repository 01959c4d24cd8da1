/**
 * Optimizers over Float32Arrays, updated in place, following PyTorch's update rules (torch.optim.SGD, Adam, AdamW),
 * and learning-rate schedules evaluated per optimizer step.
 */
import { BulwarkError } from '../core/errors.js';

/** What an optimizer updates: a named Float32Array (a Param fits). */
export interface ParamRef {
  readonly name: string;
  readonly data: Float32Array;
}

/** An optimizer: `lr` may change between steps (schedules set it). */
export interface Optimizer {
  lr: number;
  /** Steps taken so far. */
  readonly steps: number;
  /**
   * Applies one update.
   * @param grads one gradient per parameter, in the order the optimizer was given them
   * @param scale multiplies every gradient first, in the same pass (1 / batch size turns the gradient of a summed loss,
   *   which training graphs return, into the batch mean's); default 1
   */
  step(grads: readonly Float32Array[], scale?: number): void;
}

function checkNumber(what: string, v: number, min: number, max = Infinity, minInclusive = true): number {
  const ok = Number.isFinite(v) && (minInclusive ? v >= min : v > min) && v <= max;
  if (!ok) throw new BulwarkError('BULWARK_E_ARG', `${what} must be in ${minInclusive ? '[' : '('}${min}, ${max}${Number.isFinite(max) ? ']' : ')'}, got ${v}`);
  return v;
}

function checkGrads(params: readonly ParamRef[], grads: readonly Float32Array[]): void {
  if (grads.length !== params.length) throw new BulwarkError('BULWARK_E_INTERNAL', `${grads.length} gradients for ${params.length} parameters`);
  params.forEach((p, i) => {
    if (grads[i]!.length !== p.data.length) throw new BulwarkError('BULWARK_E_INTERNAL', `gradient of ${p.name} has ${grads[i]!.length} values for ${p.data.length}`);
  });
}

function checkScale(scale: number): void {
  if (!Number.isFinite(scale) || scale <= 0) throw new BulwarkError('BULWARK_E_ARG', `gradient scale must be a finite number above 0, got ${scale}`);
}

/** Options of {@link SGD}. */
export interface SgdOptions {
  lr: number;
  /** Momentum factor; default 0 (plain SGD). */
  momentum?: number;
  /** Dampening of the momentum buffer; default 0. */
  dampening?: number;
  /** Nesterov momentum (Sutskever et al. 2013); needs momentum > 0 and dampening 0. */
  nesterov?: boolean;
  /** L2 penalty added to the gradient (g + wd·θ); default 0. */
  weightDecay?: number;
}

/**
 * Stochastic gradient descent as torch.optim.SGD: g ← ∇ + wd·θ; b ← μ·b + (1−τ)·g (b = g on the first step);
 * g ← g + μ·b (Nesterov) or b; θ ← θ − lr·g.
 * @example const opt = new SGD(net.params(), { lr: 0.01, momentum: 0.9 }); opt.step(grads);
 */
export class SGD implements Optimizer {
  lr: number;
  steps = 0;
  private readonly momentum: number;
  private readonly dampening: number;
  private readonly nesterov: boolean;
  private readonly weightDecay: number;
  private readonly buffers: Float32Array[];

  constructor(private readonly params: readonly ParamRef[], opts: SgdOptions) {
    this.lr = checkNumber('lr', opts.lr, 0, Infinity, false);
    this.momentum = checkNumber('momentum', opts.momentum ?? 0, 0, 1);
    this.dampening = checkNumber('dampening', opts.dampening ?? 0, 0, 1);
    this.nesterov = opts.nesterov ?? false;
    this.weightDecay = checkNumber('weight decay', opts.weightDecay ?? 0, 0);
    if (this.nesterov && (this.momentum <= 0 || this.dampening !== 0)) throw new BulwarkError('BULWARK_E_ARG', 'Nesterov momentum needs momentum > 0 and dampening 0');
    this.buffers = this.momentum > 0 ? params.map((p) => new Float32Array(p.data.length)) : [];
  }

  step(grads: readonly Float32Array[], scale = 1): void {
    checkGrads(this.params, grads);
    checkScale(scale);
    const { lr, momentum: mu, dampening, nesterov, weightDecay: wd } = this;
    // The buffer's first value is the gradient itself (PyTorch's rule), so the first step damps nothing.
    const keep = this.steps === 0 ? 0 : mu;
    const take = this.steps === 0 ? 1 : 1 - dampening;
    for (let i = 0; i < this.params.length; i++) {
      const theta = this.params[i]!.data;
      const grad = grads[i]!;
      const buf = this.buffers[i];
      // One loop per case, with no branch inside: this pass over every parameter is part of each training step.
      if (!buf) {
        for (let j = 0; j < theta.length; j++) theta[j] = theta[j]! - lr * (scale * grad[j]! + wd * theta[j]!);
      } else if (nesterov) {
        for (let j = 0; j < theta.length; j++) {
          const g = scale * grad[j]! + wd * theta[j]!;
          const b = keep * buf[j]! + take * g;
          buf[j] = b;
          theta[j] = theta[j]! - lr * (g + mu * b);
        }
      } else {
        for (let j = 0; j < theta.length; j++) {
          const b = keep * buf[j]! + take * (scale * grad[j]! + wd * theta[j]!);
          buf[j] = b;
          theta[j] = theta[j]! - lr * b;
        }
      }
    }
    this.steps++;
  }
}

/** Options of {@link Adam} and {@link AdamW}. */
export interface AdamOptions {
  lr: number;
  /** Decay rates of the first and second moment estimates; default [0.9, 0.999]. */
  betas?: [number, number];
  /** Added to the denominator; default 1e-8. */
  eps?: number;
  /** Adam: L2 penalty added to the gradient; AdamW: decoupled decay θ ← θ·(1 − lr·wd). Default 0 (Adam), 0.01 (AdamW). */
  weightDecay?: number;
}

/**
 * Adam (Kingma & Ba 2015, arXiv:1412.6980) as torch.optim.Adam: g ← ∇ + wd·θ; m ← β₁m + (1−β₁)g;
 * v ← β₂v + (1−β₂)g²; θ ← θ − (lr/(1−β₁ᵗ))·m/(√v/√(1−β₂ᵗ) + ε).
 * @example const opt = new Adam(net.params(), { lr: 1e-3 }); opt.step(grads);
 */
export class Adam implements Optimizer {
  lr: number;
  steps = 0;
  protected readonly beta1: number;
  protected readonly beta2: number;
  protected readonly eps: number;
  protected readonly weightDecay: number;
  /** Decoupled weight decay (AdamW) instead of an L2 term in the gradient. */
  protected readonly decoupled: boolean = false;
  private readonly m: Float32Array[];
  private readonly v: Float32Array[];

  constructor(protected readonly params: readonly ParamRef[], opts: AdamOptions, defaultWeightDecay = 0) {
    this.lr = checkNumber('lr', opts.lr, 0, Infinity, false);
    const [b1, b2] = opts.betas ?? [0.9, 0.999];
    this.beta1 = checkNumber('beta1', b1, 0, 1);
    this.beta2 = checkNumber('beta2', b2, 0, 1);
    if (b1 >= 1 || b2 >= 1) throw new BulwarkError('BULWARK_E_ARG', `Adam betas must be below 1, got [${b1}, ${b2}]`);
    this.eps = checkNumber('eps', opts.eps ?? 1e-8, 0);
    this.weightDecay = checkNumber('weight decay', opts.weightDecay ?? defaultWeightDecay, 0);
    this.m = params.map((p) => new Float32Array(p.data.length));
    this.v = params.map((p) => new Float32Array(p.data.length));
  }

  step(grads: readonly Float32Array[], scale = 1): void {
    checkGrads(this.params, grads);
    checkScale(scale);
    this.steps++;
    const { lr, beta1: b1, beta2: b2, eps, weightDecay: wd, decoupled } = this;
    const stepSize = lr / (1 - b1 ** this.steps);
    const sqrtBc2 = Math.sqrt(1 - b2 ** this.steps);
    const l2 = decoupled ? 0 : wd;
    const shrink = decoupled ? 1 - lr * wd : 1;
    this.params.forEach((p, i) => {
      const theta = p.data;
      const grad = grads[i]!;
      const m = this.m[i]!;
      const v = this.v[i]!;
      for (let j = 0; j < theta.length; j++) {
        const g = scale * grad[j]! + l2 * theta[j]!;
        const mj = b1 * m[j]! + (1 - b1) * g;
        const vj = b2 * v[j]! + (1 - b2) * g * g;
        m[j] = mj;
        v[j] = vj;
        theta[j] = theta[j]! * shrink - (stepSize * mj) / (Math.sqrt(vj) / sqrtBc2 + eps);
      }
    });
  }
}

/**
 * AdamW (Loshchilov & Hutter 2019, arXiv:1711.05101) as torch.optim.AdamW: θ ← θ·(1 − lr·wd), then the Adam update
 * without an L2 term. Default weight decay 0.01, as PyTorch.
 */
export class AdamW extends Adam {
  protected override readonly decoupled = true;
  constructor(params: readonly ParamRef[], opts: AdamOptions) {
    super(params, opts, 0.01);
  }
}

/** Optimizer names the trainer and CLI accept. */
export const OPTIMIZERS = ['sgd', 'adam', 'adamw'] as const;
export type OptimizerName = (typeof OPTIMIZERS)[number];

/** Options of {@link makeOptimizer}: the union of the optimizers' options. */
export interface OptimizerOptions {
  lr: number;
  weightDecay?: number;
  momentum?: number;
  nesterov?: boolean;
  betas?: [number, number];
  eps?: number;
}

/**
 * Makes an optimizer by name.
 * @throws BulwarkError BULWARK_E_ARG for an unknown name or an option out of range
 */
export function makeOptimizer(name: string, params: readonly ParamRef[], opts: OptimizerOptions): Optimizer {
  const common = { lr: opts.lr, ...(opts.weightDecay === undefined ? {} : { weightDecay: opts.weightDecay }) };
  const adam = { ...common, ...(opts.betas ? { betas: opts.betas } : {}), ...(opts.eps === undefined ? {} : { eps: opts.eps }) };
  switch (name) {
    case 'sgd':
      return new SGD(params, { ...common, momentum: opts.momentum ?? 0, nesterov: opts.nesterov ?? false });
    case 'adam':
      return new Adam(params, adam);
    case 'adamw':
      return new AdamW(params, adam);
    default:
      throw new BulwarkError('BULWARK_E_ARG', `unknown optimizer ${JSON.stringify(name)}; use one of ${OPTIMIZERS.join(', ')}`);
  }
}

// ------------------------------------------------------------------------------------------ schedules

/**
 * A learning-rate schedule over optimizer steps 0..total−1, as a factor of the base rate:
 *  - constant: 1
 *  - step: γ^⌊t/stepSize⌋ (torch StepLR)
 *  - cosine: annealed from 1 to minFactor over the run (torch CosineAnnealingLR, T_max = total)
 *  - onecycle: from 1/divFactor up to 1 over pctStart of the run, then down to 1/(divFactor·finalDivFactor), both
 *    cosine-shaped (torch OneCycleLR with max_lr = base rate; momentum is not cycled)
 * `warmupSteps` prepends a linear warmup from base/warmupSteps to base; the schedule then runs over the remaining steps.
 */
export type Schedule = (
  | { kind: 'constant' }
  | { kind: 'step'; stepSize: number; gamma?: number }
  | { kind: 'cosine'; minFactor?: number }
  | { kind: 'onecycle'; pctStart?: number; divFactor?: number; finalDivFactor?: number }
) & { warmupSteps?: number };

export const SCHEDULES = ['constant', 'step', 'cosine', 'onecycle'] as const;

const cosAnneal = (start: number, end: number, pct: number): number => end + ((start - end) / 2) * (Math.cos(Math.PI * pct) + 1);

/**
 * The learning rate at step `t` of `total`.
 * @param schedule the schedule
 * @param baseLr the base (peak) learning rate
 * @param t the step, from 0
 * @param total the number of steps of the run
 * @returns the learning rate
 * @example learningRate({ kind: 'cosine' }, 1e-3, 0, 100) === 1e-3
 */
export function learningRate(schedule: Schedule, baseLr: number, t: number, total: number): number {
  const warm = schedule.warmupSteps ?? 0;
  if (t < warm) return (baseLr * (t + 1)) / warm;
  const s = t - warm;
  const n = Math.max(1, total - warm);
  switch (schedule.kind) {
    case 'constant':
      return baseLr;
    case 'step':
      return baseLr * (schedule.gamma ?? 0.1) ** Math.floor(s / Math.max(1, schedule.stepSize));
    case 'cosine': {
      const min = baseLr * (schedule.minFactor ?? 0);
      return cosAnneal(baseLr, min, Math.min(s, n) / n);
    }
    case 'onecycle': {
      const initial = baseLr / (schedule.divFactor ?? 25);
      const final = initial / (schedule.finalDivFactor ?? 1e4);
      const end1 = (schedule.pctStart ?? 0.3) * n - 1;
      const end2 = n - 1;
      if (s <= end1) return cosAnneal(initial, baseLr, end1 > 0 ? s / end1 : 1);
      return cosAnneal(baseLr, final, end2 > end1 ? Math.min(1, (s - end1) / (end2 - end1)) : 1);
    }
  }
}
