/**
 * Adversarial training on Bulwark's own networks: PGD-AT (Madry et al. 2018), TRADES (Zhang et al. 2019), fast
 * FGSM with a random start (Wong et al. 2020) with its catastrophic-overfitting guard, Gaussian-noise training for
 * randomized smoothing (Cohen et al. 2019), clean/adversarial loss mixing (Goodfellow et al. 2015), and early
 * stopping on robust validation accuracy (Rice et al. 2020). The inner maximization runs on the weights being
 * trained through {@link NetworkModel}; robust validation uses the shared PGD attack. IBP training (Gowal et al. 2019)
 * runs the interval-bound graph of ibp-train.ts in the same loop, with its ε and κ schedules.
 */
import { BulwarkError } from '../../core/errors.js';
import { progressBar } from '../../core/progress.js';
import { Rng } from '../../core/rng.js';
import type { Float32Tensor } from '../../core/tensor.js';
import { batches, numBatches, type Dataset } from '../../data/index.js';
import { learningRate, makeOptimizer } from '../../nn/optim.js';
import type { Network } from '../../nn/network.js';
import { resolveTrainOptions, scoreLogits, TrainingSession, type EpochRecord, type TrainOptions } from '../../nn/train.js';
import { project } from '../geometry.js';
import { pgd } from '../whitebox/pgd.js';
import { NetworkModel, VjpTrainer } from './model.js';
import { ibpVerify } from './ibp.js';
import { GOWAL_PAPER, IbpSession, ibpSchedule } from './ibp-train.js';
import { rowSoftmax } from './squeeze.js';

/** Adversarial-training methods. */
export const ADV_METHODS = ['none', 'pgd', 'trades', 'fgsm-rs', 'ibp'] as const;
export type AdvMethod = (typeof ADV_METHODS)[number];

const MADRY = 'Madry et al. 2018, https://arxiv.org/abs/1706.06083';
const TRADES = 'Zhang et al. 2019, https://arxiv.org/abs/1901.08573';
const WONG = 'Wong et al. 2020, https://arxiv.org/abs/2001.03994';

/** Options of {@link robustTrain}: the options of nn's train() plus the hardening ones. */
export interface RobustTrainOptions extends TrainOptions {
  /** Training method; default 'none' (plain training, optionally with Gaussian noise). */
  adv?: AdvMethod;
  /** L∞ radius of the training attack (required unless adv is 'none'). */
  eps?: number;
  /** Inner steps: PGD-AT default 10 (Madry et al. use 40 on MNIST), TRADES default 10; FGSM-RS is always 1. */
  advSteps?: number;
  /** Inner step size; default 2.5·eps/steps (PGD, TRADES), 1.25·eps (FGSM-RS, Wong et al.'s α). */
  advStepSize?: number;
  /** TRADES β, the weight of the KL robustness term; default 6 (Zhang et al.'s MNIST/CIFAR setting). */
  tradesBeta?: number;
  /** Weight α of the clean loss in α·CE(x) + (1−α)·CE(x_adv) (Goodfellow et al. 2015 use 0.5); default 0. Not for TRADES. */
  cleanRatio?: number;
  /**
   * Epochs over which the training eps grows linearly from 0 to eps (per step), as MNIST PGD-AT at 0.3 and IBP
   * (Gowal et al. 2019) need from scratch; default 0 (full eps from the first step).
   */
  epsRamp?: number;
  /**
   * IBP (Gowal et al. 2019): epochs (fractions allowed) of warm-up with ε = 0 and κ = 1; default 2/60 of the
   * epochs (Gowal et al.'s MNIST run: 2k warm-up steps of 60k).
   */
  ibpWarmup?: number;
  /** IBP: epochs over which ε ramps from 0 to eps and κ from 1 to ibpKappa after the warm-up; default 10/60 of the epochs (10k of 60k steps). */
  ibpRamp?: number;
  /** IBP: final κ, the weight of the clean loss in κ·CE(z) + (1 − κ)·CE(ẑ); default 0.5 (Gowal et al.). */
  ibpKappa?: number;
  /** Std of Gaussian noise added to every training input (Cohen et al. 2019's base-classifier training); default 0. */
  noiseSigma?: number;
  /**
   * Robust validation each epoch (PGD on `validation`; for ibp the IBP-verified accuracy instead) at `eps` (default the
   * training eps); default on when validation is given and adv is not 'none'.
   */
  robustEval?: { n?: number; steps?: number; restarts?: number; eps?: number } | false;
  /** Stop after this many epochs without a better robust validation accuracy (then restore the best); default: never. */
  patience?: number;
  /**
   * Catastrophic-overfitting guard (Wong et al. 2020): after every epoch, PGD accuracy on a held-out batch; if it
   * falls more than `drop` below its best, the weights of the best epoch are restored and training stops. Default
   * on for fgsm-rs ({ n: 256, steps: 10, drop: 0.2 }); the batch is the validation data's first n rows, or the last n
   * training rows (then held out of training).
   */
  overfitGuard?: { n?: number; steps?: number; drop?: number } | false;
}

/** One epoch of {@link robustTrain}. */
export interface RobustEpochRecord extends EpochRecord {
  /** PGD accuracy on validation rows (robustEval). */
  robustValAccuracy?: number;
  /** PGD accuracy on the guard's held-out batch. */
  guardPgdAccuracy?: number;
  /** IBP-verified accuracy on validation rows (adv ibp). */
  verifiedValAccuracy?: number;
  /** IBP: ε and κ of the epoch's last step, and the mean worst-case (robust) CE over the epoch. */
  ibpEps?: number;
  ibpKappa?: number;
  robustLoss?: number;
}

/** What {@link robustTrain} returns. */
export interface RobustTrainResult {
  history: RobustEpochRecord[];
  steps: number;
  seconds: number;
  /** Epoch whose weights the network holds at the end. */
  keptEpoch: number;
  /** Why training ended before its last epoch, if it did. */
  stopped?: 'catastrophic-overfitting' | 'early-stopping';
  /** The resolved hardening settings (for the training record). */
  settings: { adv: AdvMethod; eps: number; epsRamp: number; advSteps: number; advStepSize: number; tradesBeta?: number; cleanRatio: number; noiseSigma: number; ibpWarmup?: number; ibpRamp?: number; ibpKappa?: number; paper?: string };
}

function mixSeed(seed: number, stream: number): number {
  return new Rng((seed ^ Math.imul(stream + 1, 0x9e3779b1)) >>> 0).u32();
}

function snapshot(net: Network): Float32Array[] {
  return net.state().map((p) => new Float32Array(p.data));
}

function restore(net: Network, snap: Float32Array[]): void {
  net.state().forEach((p, i) => p.data.set(snap[i]!));
}

function copyTensor(x: Float32Tensor): Float32Tensor {
  return { data: new Float32Array(x.data), shape: [...x.shape], dtype: 'float32' };
}

/**
 * L∞ PGD on cross-entropy from a uniform random start, returning the last iterate (Madry et al.'s training attack:
 * the last iterate maximizes the loss, unlike an evaluation attack that stops at the first misclassification).
 * With steps 1 and stepSize 1.25·eps it is Wong et al.'s FGSM-RS.
 * @param model the network as a Model
 * @param x clean inputs
 * @param y labels
 * @param o eps, steps, step size, random start, rng
 * @returns adversarial inputs inside the eps-ball and the model bounds
 */
export async function linfPgdTrainAttack(model: NetworkModel, x: Float32Tensor, y: ArrayLike<number>, o: { eps: number; steps: number; stepSize: number; randomStart: boolean; rng: Rng }): Promise<Float32Tensor> {
  const adv = copyTensor(x);
  if (o.randomStart) for (let j = 0; j < adv.data.length; j++) adv.data[j] = adv.data[j]! + o.rng.uniform(-o.eps, o.eps);
  project(adv, x, 'inf', o.eps, model.bounds);
  for (let t = 0; t < o.steps; t++) {
    const g = (await model.lossAndGradient(adv, y)).grad.data;
    for (let j = 0; j < adv.data.length; j++) adv.data[j] = adv.data[j]! + o.stepSize * Math.sign(g[j]!);
    project(adv, x, 'inf', o.eps, model.bounds);
  }
  return adv;
}

/**
 * TRADES inner maximization (Zhang et al. 2019): x' ← Π(x' + a·sign(∇ₓ' KL(p(x) ‖ p(x')))), from x + 0.001·N(0, 1).
 * ∇_z' KL = softmax(z') − p(x), so each step is one VJP through the network.
 */
export async function tradesAttack(model: NetworkModel, x: Float32Tensor, o: { eps: number; steps: number; stepSize: number; rng: Rng }): Promise<Float32Tensor> {
  const n = x.shape[0]!;
  const k = model.numClasses;
  const p = rowSoftmax((await model.predict(x)).data, n, k);
  const adv = copyTensor(x);
  for (let j = 0; j < adv.data.length; j++) adv.data[j] = adv.data[j]! + 0.001 * o.rng.normal();
  project(adv, x, 'inf', o.eps, model.bounds);
  const cot = new Float32Array(n * k);
  const z = (await model.predict(adv)).data;
  let q = rowSoftmax(z, n, k);
  for (let t = 0; t < o.steps; t++) {
    for (let j = 0; j < n * k; j++) cot[j] = q[j]! - p[j]!;
    const r = await model.inputVjp(adv, cot);
    void r.logits;
    const g = r.grad.data;
    for (let j = 0; j < adv.data.length; j++) adv.data[j] = adv.data[j]! + o.stepSize * Math.sign(g[j]!);
    project(adv, x, 'inf', o.eps, model.bounds);
    if (t + 1 < o.steps) q = rowSoftmax((await model.predict(adv)).data, n, k);
  }
  return adv;
}

/**
 * The TRADES outer loss CE(z, y) + β·KL(p(z) ‖ p(z')) per example and its cotangents ∂/∂z, ∂/∂z' (batch mean):
 * ∂CE/∂z = p − onehot(y); ∂KL/∂z' = p' − p; ∂KL/∂z_j = p_j(l_j − KL) with l = log p − log p'.
 * @param z clean logits [B·K]; @param za adversarial logits [B·K]
 * @returns loss sum and cotangents [2B·K] (clean rows first)
 */
export function tradesCotangent(z: ArrayLike<number>, za: ArrayLike<number>, y: ArrayLike<number>, k: number, beta: number): { loss: number; cot: Float32Array } {
  const n = y.length;
  const p = rowSoftmax(z, n, k);
  const q = rowSoftmax(za, n, k);
  const cot = new Float32Array(2 * n * k);
  let loss = 0;
  for (let i = 0; i < n; i++) {
    let kl = 0;
    for (let j = 0; j < k; j++) {
      const pj = p[i * k + j]!;
      if (pj > 0) kl += pj * (Math.log(pj) - Math.log(Math.max(q[i * k + j]!, 1e-300)));
    }
    loss += -Math.log(Math.max(p[i * k + y[i]!]!, 1e-300)) + beta * kl;
    for (let j = 0; j < k; j++) {
      const pj = p[i * k + j]!;
      const l = pj > 0 ? Math.log(pj) - Math.log(Math.max(q[i * k + j]!, 1e-300)) : 0;
      cot[i * k + j] = (pj - (j === y[i] ? 1 : 0) + beta * pj * (l - kl)) / n;
      cot[(n + i) * k + j] = (beta * (q[i * k + j]! - pj)) / n;
    }
  }
  return { loss, cot };
}

function concat(a: Float32Tensor, b: Float32Tensor): Float32Tensor {
  const data = new Float32Array(a.data.length + b.data.length);
  data.set(a.data);
  data.set(b.data, a.data.length);
  return { data, shape: [a.shape[0]! + b.shape[0]!, ...a.shape.slice(1)], dtype: 'float32' };
}

function rows(d: Dataset, a: number, e: number): Dataset {
  const row = d.x.data.length / d.x.shape[0]!;
  return { ...d, x: { data: d.x.data.slice(a * row, e * row), shape: [e - a, ...d.x.shape.slice(1)], dtype: 'float32' }, y: d.y ? d.y.slice(a, e) : undefined };
}

/** PGD accuracy (shared runner) of the network on a labelled set at L∞ eps. */
async function pgdAccuracy(model: NetworkModel, d: Dataset, eps: number, steps: number, restarts: number, seed: number): Promise<number> {
  const r = await pgd(model, d.x, d.y!, { eps, norm: 'inf', steps, restarts, seed });
  return r.summary.robustAccuracy;
}

/**
 * Trains a network in place with an adversarial (or Gaussian-noise) objective.
 * - pgd: minimize CE(x_adv) with x_adv from L∞ PGD with random start ({@link MADRY}).
 * - trades: minimize CE(x) + β·KL(p(x) ‖ p(x')), x' from the KL inner maximization ({@link TRADES}).
 * - fgsm-rs: one FGSM step of 1.25·eps from a uniform random start, with the catastrophic-overfitting guard ({@link WONG}).
 * - ibp: minimize κ·CE(z) + (1 − κ)·CE(ẑ), ẑ the worst-case logits of interval bound propagation over the eps-box
 *   (Gowal et al. 2019), ε ramped from 0 and κ from 1 to ibpKappa after a warm-up (see ibp-train.ts); per-epoch
 *   robust validation is the IBP-verified accuracy.
 * @param net the network (updated in place; at the end it holds the kept epoch's weights)
 * @param data labelled training data
 * @param opts nn train options plus {@link RobustTrainOptions}
 * @returns per-epoch clean and robust accuracy, the kept epoch, and why training stopped early
 * @throws BulwarkError BULWARK_E_ARG for bad options, BULWARK_E_LABELS / BULWARK_E_SHAPE for bad data,
 *   BULWARK_E_NONFINITE when the loss diverges
 * @example const r = await robustTrain(buildArch('cnn-small'), train, { epochs: 2, adv: 'fgsm-rs', eps: 0.3, validation: val });
 */
export async function robustTrain(net: Network, data: Dataset, opts: RobustTrainOptions): Promise<RobustTrainResult> {
  const o = resolveTrainOptions(opts);
  const adv = opts.adv ?? 'none';
  if (!(ADV_METHODS as readonly string[]).includes(adv)) throw new BulwarkError('BULWARK_E_ARG', `unknown adversarial training method ${JSON.stringify(adv)}; use one of ${ADV_METHODS.join(', ')}`);
  const eps = opts.eps ?? 0;
  if (adv !== 'none' && !(eps > 0 && Number.isFinite(eps))) throw new BulwarkError('BULWARK_E_ARG', `--adv ${adv} needs a positive eps (--eps), got ${opts.eps}`, { hint: 'MNIST uses --eps 0.3, CIFAR-10 --eps 0.031 (8/255).' });
  const advSteps = adv === 'fgsm-rs' ? 1 : opts.advSteps ?? 10;
  if (!Number.isSafeInteger(advSteps) || advSteps < 1) throw new BulwarkError('BULWARK_E_ARG', `adversarial steps must be an integer >= 1, got ${advSteps}`);
  if (adv === 'fgsm-rs' && opts.advSteps !== undefined && opts.advSteps !== 1) throw new BulwarkError('BULWARK_E_ARG', `fgsm-rs takes one step; got --adv-steps ${opts.advSteps}`, { hint: 'Use --adv pgd for several steps.' });
  const advStepSize = opts.advStepSize ?? (adv === 'fgsm-rs' ? 1.25 * eps : (2.5 * eps) / advSteps);
  if (!(advStepSize > 0 && Number.isFinite(advStepSize)) && adv !== 'none') throw new BulwarkError('BULWARK_E_ARG', `adversarial step size must be positive, got ${advStepSize}`);
  const beta = opts.tradesBeta ?? 6;
  if (!(beta >= 0 && Number.isFinite(beta))) throw new BulwarkError('BULWARK_E_ARG', `TRADES beta must be >= 0, got ${beta}`);
  const cleanRatio = opts.cleanRatio ?? 0;
  if (!(cleanRatio >= 0 && cleanRatio <= 1)) throw new BulwarkError('BULWARK_E_ARG', `clean ratio must be in [0, 1], got ${cleanRatio}`);
  if (cleanRatio > 0 && adv === 'trades') throw new BulwarkError('BULWARK_E_ARG', 'TRADES already has a clean term (CE on x); the clean ratio applies to pgd and fgsm-rs');
  const ramp = opts.epsRamp ?? 0;
  if (!(ramp >= 0 && Number.isFinite(ramp))) throw new BulwarkError('BULWARK_E_ARG', `eps ramp must be >= 0 epochs, got ${ramp}`);
  const sigma = opts.noiseSigma ?? 0;
  if (!(sigma >= 0 && Number.isFinite(sigma))) throw new BulwarkError('BULWARK_E_ARG', `noise sigma must be >= 0, got ${sigma}`);
  if (opts.patience !== undefined && !(Number.isSafeInteger(opts.patience) && opts.patience >= 1)) throw new BulwarkError('BULWARK_E_ARG', `patience must be an integer >= 1, got ${opts.patience}`);
  if (!data.y) throw new BulwarkError('BULWARK_E_LABELS', `training data ${data.name} has no labels`);
  const ibpWarmup = opts.ibpWarmup ?? (o.epochs * 2) / 60;
  const ibpRamp = opts.ibpRamp ?? (o.epochs * 10) / 60;
  const ibpKappa = opts.ibpKappa ?? 0.5;
  if (adv === 'ibp') {
    if (!(ibpWarmup >= 0 && Number.isFinite(ibpWarmup))) throw new BulwarkError('BULWARK_E_ARG', `IBP warm-up must be >= 0 epochs (--ibp-warmup), got ${opts.ibpWarmup}`);
    if (!(ibpRamp >= 0 && Number.isFinite(ibpRamp))) throw new BulwarkError('BULWARK_E_ARG', `IBP ramp must be >= 0 epochs (--ibp-ramp), got ${opts.ibpRamp}`);
    if (!(ibpKappa >= 0 && ibpKappa <= 1)) throw new BulwarkError('BULWARK_E_ARG', `IBP final kappa (--ibp-kappa) must be in [0, 1], got ${opts.ibpKappa}`);
    for (const [k, flag] of [['cleanRatio', '--clean-ratio'], ['epsRamp', '--eps-ramp'], ['noiseSigma', '--noise-sigma'], ['advSteps', '--adv-steps'], ['advStepSize', '--adv-step-size']] as const) {
      if (opts[k] !== undefined && opts[k] !== 0) throw new BulwarkError('BULWARK_E_ARG', `${flag} does not apply to IBP training`, { hint: 'IBP uses --ibp-kappa for the clean weight and --ibp-warmup / --ibp-ramp for the eps schedule.' });
    }
  } else {
    for (const [k, flag] of [['ibpWarmup', '--ibp-warmup'], ['ibpRamp', '--ibp-ramp'], ['ibpKappa', '--ibp-kappa']] as const) {
      if (opts[k] !== undefined) throw new BulwarkError('BULWARK_E_ARG', `${flag} applies only to IBP training (--adv ibp), not ${adv}`);
    }
  }

  const guardOpts = adv === 'ibp' ? false : opts.overfitGuard ?? (adv === 'fgsm-rs' ? {} : false);
  let train = data;
  let guardSet: Dataset | undefined;
  if (guardOpts && adv !== 'none') {
    const gn = guardOpts.n ?? 256;
    if (o.validation) guardSet = rows(o.validation, 0, Math.min(gn, o.validation.x.shape[0]!));
    else {
      const n = data.x.shape[0]!;
      if (n <= 2 * gn) throw new BulwarkError('BULWARK_E_ARG', `the overfitting guard holds out ${gn} training examples, but there are only ${n}`, { hint: 'Pass validation data (--val) or a smaller guard batch.' });
      train = rows(data, 0, n - gn);
      guardSet = rows(data, n - gn, n);
    }
  }
  const robustEval = opts.robustEval ?? (o.validation && adv !== 'none' ? {} : false);
  if (opts.patience !== undefined && !(robustEval && o.validation)) throw new BulwarkError('BULWARK_E_ARG', 'early stopping on robust accuracy needs validation data and robust evaluation');
  const robustSet = robustEval && o.validation ? rows(o.validation, 0, Math.min(robustEval.n ?? 500, o.validation.x.shape[0]!)) : undefined;

  const threads = o.threads === undefined ? {} : { threads: o.threads };
  const started = performance.now();
  const model = new NetworkModel(net, threads);
  const ibp = adv === 'ibp' ? await IbpSession.create(net, threads) : undefined;
  const session = adv === 'trades' || adv === 'ibp' ? undefined : await TrainingSession.create(net, { labelSmoothing: o.labelSmoothing, ...threads, ...(o.workers === undefined ? {} : { workers: o.workers }) });
  const vjp = adv === 'trades' ? await VjpTrainer.create(net, threads) : undefined;
  const optimizer = makeOptimizer(o.optimizer, net.params(), { lr: o.lr, momentum: o.momentum, nesterov: o.nesterov, ...(o.weightDecay === undefined ? {} : { weightDecay: o.weightDecay }) });
  const n = train.x.shape[0]!;
  const k = net.numClasses;
  const stepsPerEpoch = numBatches(n, o.batchSize);
  const total = o.epochs * stepsPerEpoch;
  const ibpSteps = { warmupSteps: Math.round(ibpWarmup * stepsPerEpoch), rampSteps: Math.round(ibpRamp * stepsPerEpoch), eps, kappa: ibpKappa };
  const robustEps = (robustEval && robustEval.eps) || eps;
  const maskRng = new Rng(mixSeed(o.seed, 0xd509));
  const attackRng = new Rng(mixSeed(o.seed, 0xadf0));
  const noiseRng = new Rng(mixSeed(o.seed, 0x5e9a));
  const history: RobustEpochRecord[] = [];
  let best = { score: -Infinity, epoch: 0, snap: snapshot(net) };
  let guardBest = -Infinity;
  let stopped: RobustTrainResult['stopped'];
  let step = 0;
  let sinceBest = 0;
  const addNoise = (x: Float32Tensor): Float32Tensor => {
    if (sigma === 0) return x;
    const out = copyTensor(x);
    for (let j = 0; j < out.data.length; j++) out.data[j] = out.data[j]! + sigma * noiseRng.normal();
    return out;
  };
  try {
    for (let epoch = 1; epoch <= o.epochs; epoch++) {
      const t0 = performance.now();
      const bar = progressBar(`epoch ${epoch}/${o.epochs}`, stepsPerEpoch, { enabled: o.progress && process.stderr.isTTY === true });
      let lossSum = 0;
      let correct = 0;
      let seen = 0;
      let robustSum = 0;
      let sched = { eps: 0, kappa: 1 };
      let i = 0;
      for (const batch of batches(train, { batchSize: o.batchSize, shuffle: true, seed: mixSeed(o.seed, epoch) })) {
        const by = batch.y!;
        const bn = by.length;
        optimizer.lr = learningRate(o.schedule, o.lr, step, total);
        const e = ramp > 0 ? eps * Math.min(1, (step + 1) / (ramp * stepsPerEpoch)) : eps;
        let grads: Float32Array[];
        let batchLoss = 0;
        if (adv === 'ibp') {
          // Gowal et al. 2019: κ·CE(z) + (1 − κ)·CE(ẑ) with ẑ the interval-bound worst-case logits.
          sched = ibpSchedule(step, ibpSteps);
          const res = await ibp!.step(batch.x, by, sched.eps, sched.kappa);
          for (const l of res.loss) batchLoss += l;
          for (const l of res.robustLoss) robustSum += l;
          grads = res.grads.map((g) => Float32Array.from(g, (v) => v / bn));
          correct += Math.round(scoreLogits(res.logits, by, k).accuracy * bn);
        } else if (adv === 'trades') {
          const xa = await tradesAttack(model, batch.x, { eps: e, steps: advSteps, stepSize: (advStepSize * e) / eps, rng: attackRng });
          const both = addNoise(concat(batch.x, xa));
          const f = await vjp!.logits(both, maskRng);
          const t = tradesCotangent(f.logits.subarray(0, bn * k), f.logits.subarray(bn * k), by, k, beta);
          batchLoss = t.loss;
          grads = await vjp!.vjp(both, t.cot, f.masks);
          correct += Math.round(scoreLogits(f.logits.subarray(0, bn * k), by, k).accuracy * bn);
        } else {
          const xt = adv === 'none' ? batch.x : await linfPgdTrainAttack(model, batch.x, by, { eps: e, steps: advSteps, stepSize: (advStepSize * e) / eps, randomStart: true, rng: attackRng });
          const res = await session!.step(addNoise(xt), by, maskRng);
          for (const l of res.loss) batchLoss += l;
          const w = adv === 'none' ? 1 : 1 - cleanRatio;
          grads = res.grads.map((g) => g.map((v) => (v * w) / bn));
          if (adv !== 'none' && cleanRatio > 0) {
            const c = await session!.step(addNoise(batch.x), by, maskRng);
            c.grads.forEach((g, gi) => {
              const dst = grads[gi]!;
              for (let j = 0; j < g.length; j++) dst[j] = dst[j]! + (cleanRatio * g[j]!) / bn;
            });
            let cl = 0;
            for (const l of c.loss) cl += l;
            batchLoss = w * batchLoss + cleanRatio * cl;
          }
          correct += Math.round(scoreLogits(res.logits, by, k).accuracy * bn);
        }
        if (!Number.isFinite(batchLoss)) throw new BulwarkError('BULWARK_E_NONFINITE', `the training loss became ${batchLoss} at epoch ${epoch}, step ${i + 1}`, { hint: 'Training diverged: lower the learning rate (--lr) or use a warmup.' });
        optimizer.step(grads);
        lossSum += batchLoss;
        seen += bn;
        step++;
        i++;
        bar.update(i, `loss ${(lossSum / seen).toFixed(4)} acc ${((100 * correct) / seen).toFixed(2)}%`);
        o.onProgress?.({ kind: 'step', epoch, step: i, stepsPerEpoch, loss: batchLoss / bn });
      }
      bar.end();
      const record: RobustEpochRecord = { epoch, loss: lossSum / seen, trainAccuracy: correct / seen, lr: optimizer.lr, seconds: 0 };
      if (adv === 'ibp') Object.assign(record, { ibpEps: sched.eps, ibpKappa: sched.kappa, robustLoss: robustSum / seen });
      if (o.validation?.y) {
        const s = scoreLogits((await model.predict(o.validation.x)).data, o.validation.y, k);
        record.valAccuracy = s.accuracy;
        record.valLoss = s.loss;
      }
      if (robustSet && robustEval && adv === 'ibp') record.verifiedValAccuracy = ibpVerify(net, robustSet.x, robustSet.y!, robustEps, model.bounds).verifiedAccuracy;
      else if (robustSet && robustEval) record.robustValAccuracy = await pgdAccuracy(model, robustSet, robustEps, robustEval.steps ?? 20, robustEval.restarts ?? 1, mixSeed(o.seed, 1000 + epoch));
      if (guardSet && guardOpts) record.guardPgdAccuracy = await pgdAccuracy(model, guardSet, eps, guardOpts.steps ?? 10, 1, mixSeed(o.seed, 2000 + epoch));
      record.seconds = (performance.now() - t0) / 1000;
      history.push(record);
      o.onProgress?.({ kind: 'epoch', record });
      // Wong et al. 2020: a sudden collapse of PGD accuracy under FGSM training is catastrophic overfitting.
      if (record.guardPgdAccuracy !== undefined && guardOpts) {
        if (record.guardPgdAccuracy < guardBest - (guardOpts.drop ?? 0.2)) {
          stopped = 'catastrophic-overfitting';
          break;
        }
        guardBest = Math.max(guardBest, record.guardPgdAccuracy);
      }
      const score = record.verifiedValAccuracy ?? record.robustValAccuracy ?? record.guardPgdAccuracy ?? epoch;
      if (score > best.score) {
        best = { score, epoch, snap: snapshot(net) };
        sinceBest = 0;
      } else if (opts.patience !== undefined && ++sinceBest >= opts.patience) {
        stopped = 'early-stopping';
        break;
      }
    }
  } finally {
    await session?.release();
    await vjp?.release();
    await ibp?.release();
    await model.dispose();
  }
  const keep = robustSet || stopped ? best.epoch : history.length;
  if (keep !== history.length) restore(net, best.snap);
  return {
    history,
    steps: step,
    seconds: (performance.now() - started) / 1000,
    keptEpoch: keep,
    ...(stopped ? { stopped } : {}),
    settings: {
      adv,
      eps,
      epsRamp: ramp,
      advSteps: adv === 'none' || adv === 'ibp' ? 0 : advSteps,
      advStepSize: adv === 'none' || adv === 'ibp' ? 0 : advStepSize,
      ...(adv === 'ibp' ? { ibpWarmup, ibpRamp, ibpKappa } : {}),
      ...(adv === 'trades' ? { tradesBeta: beta } : {}),
      cleanRatio,
      noiseSigma: sigma,
      ...(adv === 'pgd' ? { paper: MADRY } : adv === 'trades' ? { paper: TRADES } : adv === 'fgsm-rs' ? { paper: WONG } : adv === 'ibp' ? { paper: GOWAL_PAPER } : {}),
    },
  };
}
