/**
 * DP-SGD (Abadi et al. 2016, "Deep Learning with Differential Privacy", arXiv:1607.00133): every step samples a
 * batch by Poisson sampling (each example independently with rate q), clips each example's gradient to L2 norm C,
 * adds N(0, σ²C²) noise to the clipped sum, divides by the expected batch size qN, and hands the result to an
 * ordinary optimizer. The accountant (RDP or PRV) turns (q, σ, steps actually taken, δ) into ε.
 */
import { BulwarkError } from '../core/errors.js';
import { progressBar } from '../core/progress.js';
import { Rng } from '../core/rng.js';
import { gatherRows } from '../core/tensor.js';
import type { Dataset } from '../data/index.js';
import type { Network } from '../nn/network.js';
import { learningRate, makeOptimizer, OPTIMIZERS, type OptimizerName, type Schedule } from '../nn/optim.js';
import { EvalSession, scoreLogits, type EpochRecord } from '../nn/train.js';
import { ACCOUNTANTS, calibrateNoise, checkDpParams, computeEpsilon, type AccountantName } from './accounting/index.js';
import { noiseFromOption, poissonSample, type NoiseSource } from './noise.js';
import { assertDpCompatible, createPerExampleGradients, type PerExampleKind } from './perexample.js';

/** Options of {@link trainDpSgd}. */
export interface DpSgdOptions {
  /** Passes over the data; each is round(N / batchSize) Poisson-sampled steps. */
  epochs: number;
  /** Expected batch size (q = batchSize / N); default 256. */
  batchSize?: number;
  /** Clipping bound C of each example's gradient (L2 over all parameters); default 1. */
  maxGradNorm?: number;
  /** σ: noise std is σ·C. Give this or targetEpsilon. */
  noiseMultiplier?: number;
  /** Calibrate σ so that the planned steps reach this ε at δ. Give this or noiseMultiplier. */
  targetEpsilon?: number;
  /** δ; default 1e-5. Should be well below 1/N. */
  delta?: number;
  /** Accountant for calibration and the reported ε; default rdp. */
  accountant?: AccountantName;
  /** Learning rate; default 0.1 (sgd). */
  lr?: number;
  /** Default sgd. */
  optimizer?: OptimizerName;
  /** SGD momentum; default 0. */
  momentum?: number;
  weightDecay?: number;
  /** Default constant. */
  schedule?: Schedule;
  /**
   * `secure` (default): node:crypto for noise and sampling. `{ seed }`: seeded and NOT PRIVATE, for tests only;
   * the record says so.
   */
  noise?: 'secure' | { seed: number };
  /** Seed of the dropout masks (not part of the privacy guarantee); default 0. */
  seed?: number;
  /** Per-example gradient engine; default auto (ghost for Dense-only networks, else graph, else reference). */
  perExample?: 'auto' | PerExampleKind;
  /** Examples per engine call; default max(512, 2 × batchSize), so a Poisson batch is rarely split (engines bound their own memory). */
  microBatch?: number;
  validation?: Dataset;
  threads?: number;
  onProgress?: (e: { kind: 'epoch'; record: DpEpochRecord }) => void;
  /** Progress bar on a TTY; default true. */
  progress?: boolean;
}

/** An epoch of DP-SGD: the usual record plus ε so far. */
export interface DpEpochRecord extends EpochRecord {
  /** ε after this epoch's steps (the accountant's guarantee). */
  epsilon: number;
  /** Mean size of the Poisson batches. */
  meanBatchSize: number;
  /** Fraction of examples whose gradient was clipped. */
  clippedFraction: number;
  /** Seconds of the epoch's training steps alone (`seconds` also counts validation). */
  trainSeconds: number;
}

/** The privacy record of a DP-SGD run. */
export interface DpRecord {
  epsilon: number;
  delta: number;
  /** σ. */
  noiseMultiplier: number;
  /** Poisson sampling rate q. */
  sampleRate: number;
  /** Steps actually taken. */
  steps: number;
  accountant: AccountantName;
  /** RDP order of the bound (null for PRV). */
  alpha: number | null;
  maxGradNorm: number;
  expectedBatchSize: number;
  targetEpsilon: number | null;
  /** Per-example engine used. */
  perExample: PerExampleKind;
  /** How noise and sampling were drawn. */
  noise: string;
  /** False when noise was seeded: the ε then describes the algorithm, not this run. */
  private: boolean;
}

/** What {@link trainDpSgd} returns. */
export interface DpSgdResult {
  history: DpEpochRecord[];
  steps: number;
  seconds: number;
  privacy: DpRecord;
}

function checkPositive(what: string, v: number): number {
  if (!(v > 0 && Number.isFinite(v))) throw new BulwarkError('BULWARK_E_ARG', `${what} must be a positive number, got ${v}`);
  return v;
}

/**
 * The privacy parameters a DP-SGD run will use: q, planned steps and σ (calibrated when a target ε is given).
 * @param n training-set size
 * @param opts the run's options
 * @throws BulwarkError BULWARK_E_ARG (bad or conflicting options), BULWARK_E_DP_ACCOUNTING (target unreachable)
 */
export function planDpSgd(n: number, opts: DpSgdOptions): { sampleRate: number; stepsPerEpoch: number; steps: number; noiseMultiplier: number; delta: number; accountant: AccountantName; batchSize: number } {
  if (!Number.isSafeInteger(opts.epochs) || opts.epochs < 1) throw new BulwarkError('BULWARK_E_ARG', `epochs must be an integer >= 1, got ${opts.epochs}`);
  const batchSize = opts.batchSize ?? 256;
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw new BulwarkError('BULWARK_E_ARG', `batch size must be an integer >= 1, got ${batchSize}`);
  if (batchSize > n) throw new BulwarkError('BULWARK_E_ARG', `the expected batch size ${batchSize} exceeds the ${n} training examples`);
  const accountant = opts.accountant ?? 'rdp';
  if (!(ACCOUNTANTS as readonly string[]).includes(accountant)) throw new BulwarkError('BULWARK_E_ARG', `unknown accountant ${JSON.stringify(accountant)}; use rdp or prv`);
  const delta = opts.delta ?? 1e-5;
  const sampleRate = batchSize / n;
  const stepsPerEpoch = Math.max(1, Math.round(n / batchSize));
  const steps = opts.epochs * stepsPerEpoch;
  const hasSigma = opts.noiseMultiplier !== undefined;
  const hasTarget = opts.targetEpsilon !== undefined;
  if (hasSigma === hasTarget) throw new BulwarkError('BULWARK_E_ARG', 'give exactly one of noiseMultiplier (--noise-multiplier) and targetEpsilon (--target-epsilon)');
  let noiseMultiplier: number;
  if (hasTarget) noiseMultiplier = calibrateNoise(opts.targetEpsilon!, { sampleRate, steps, delta }, { accountant, tolerance: 1e-4 }).noiseMultiplier;
  else noiseMultiplier = opts.noiseMultiplier!;
  checkDpParams({ sampleRate, noiseMultiplier, steps, delta });
  return { sampleRate, stepsPerEpoch, steps, noiseMultiplier, delta, accountant, batchSize };
}

function addInto(acc: Float32Array[], add: Float32Array[]): void {
  for (let p = 0; p < acc.length; p++) {
    const a = acc[p]!;
    const b = add[p]!;
    for (let j = 0; j < a.length; j++) a[j]! += b[j]!;
  }
}

/** g ← (g + N(0, std²)) / expected, in place; `z` is scratch at least as long as g. */
function noisyMean(g: Float32Array, noise: NoiseSource, std: number, expected: number, z: Float32Array): void {
  const zz = z.subarray(0, g.length);
  noise.fillGaussian(zz, std);
  const inv = 1 / expected;
  for (let j = 0; j < g.length; j++) g[j] = (g[j]! + zz[j]!) * inv;
}

/**
 * Trains a network in place with DP-SGD.
 * @param net the network (no BatchNorm); its parameters are updated
 * @param data labelled training data
 * @param opts see {@link DpSgdOptions}
 * @returns per-epoch history (with ε so far) and the privacy record
 * @throws BulwarkError BULWARK_E_DP_UNSUPPORTED (BatchNorm), BULWARK_E_ARG, BULWARK_E_DP_ACCOUNTING,
 *   BULWARK_E_LABELS, BULWARK_E_SHAPE, BULWARK_E_NONFINITE
 * @example
 * const r = await trainDpSgd(buildArch('mlp'), await loadData('mnist:train'), { epochs: 5, targetEpsilon: 3, delta: 1e-5 });
 * r.privacy.epsilon // <= 3
 */
export async function trainDpSgd(net: Network, data: Dataset, opts: DpSgdOptions): Promise<DpSgdResult> {
  assertDpCompatible(net);
  if (!data.y) throw new BulwarkError('BULWARK_E_LABELS', `training data ${data.name} has no labels`);
  const y = data.y;
  const k = net.numClasses;
  const bad = y.findIndex((v) => v < 0 || v >= k);
  if (bad >= 0) throw new BulwarkError('BULWARK_E_LABELS', `training data ${data.name}: label ${bad} is ${y[bad]}, outside the network's ${k} classes`);
  if (data.x.shape.slice(1).join(',') !== net.inputShape.join(',')) {
    throw new BulwarkError('BULWARK_E_SHAPE', `training data ${data.name} has examples of shape [${data.x.shape.slice(1)}]; the network takes [${net.inputShape}]`);
  }
  const n = data.x.shape[0]!;
  const plan = planDpSgd(n, opts);
  const maxGradNorm = checkPositive('max grad norm', opts.maxGradNorm ?? 1);
  const lr = checkPositive('learning rate', opts.lr ?? 0.1);
  const optimizerName = opts.optimizer ?? 'sgd';
  if (!(OPTIMIZERS as readonly string[]).includes(optimizerName)) throw new BulwarkError('BULWARK_E_ARG', `unknown optimizer ${JSON.stringify(optimizerName)}; use one of ${OPTIMIZERS.join(', ')}`);
  const schedule = opts.schedule ?? { kind: 'constant' };
  const microBatch = opts.microBatch ?? Math.max(512, 2 * plan.batchSize);
  if (!Number.isSafeInteger(microBatch) || microBatch < 1) throw new BulwarkError('BULWARK_E_ARG', `microBatch must be an integer >= 1, got ${microBatch}`);
  const noise: NoiseSource = noiseFromOption(opts.noise ?? 'secure');
  const threads = opts.threads === undefined ? {} : { threads: opts.threads };
  const started = performance.now();
  const engine = await createPerExampleGradients(net, { kind: opts.perExample ?? 'auto', ...threads });
  const evalSession = opts.validation ? await EvalSession.create(net, threads) : undefined;
  const valY = opts.validation?.y;
  const params = net.params();
  const optimizer = makeOptimizer(optimizerName, params, { lr, momentum: opts.momentum ?? 0, ...(opts.weightDecay === undefined ? {} : { weightDecay: opts.weightDecay }) });
  const maskRng = new Rng(((opts.seed ?? 0) ^ 0x5eed) >>> 0);
  const expected = plan.sampleRate * n;
  const noiseStd = plan.noiseMultiplier * maxGradNorm;
  const z = new Float32Array(Math.max(...params.map((p) => p.data.length)));
  const history: DpEpochRecord[] = [];
  let step = 0;
  try {
    for (let epoch = 1; epoch <= opts.epochs; epoch++) {
      const t0 = performance.now();
      const bar = progressBar(`DP epoch ${epoch}/${opts.epochs}`, plan.stepsPerEpoch, { enabled: opts.progress !== false && process.stderr.isTTY === true });
      let lossSum = 0;
      let correct = 0;
      let seen = 0;
      let clipped = 0;
      for (let s = 0; s < plan.stepsPerEpoch; s++) {
        const idx = poissonSample(n, plan.sampleRate, noise);
        let sum: Float32Array[] | undefined;
        for (let c = 0; c < idx.length; c += microBatch) {
          const part = idx.subarray(c, Math.min(idx.length, c + microBatch));
          const xb = gatherRows(data.x, part);
          const yb = Int32Array.from(part, (i) => y[i]!);
          const r = await engine.clippedSum(xb, yb, maskRng, maxGradNorm);
          if (!sum) sum = r.sum;
          else addInto(sum, r.sum);
          for (const l of r.loss) lossSum += l;
          for (const v of r.norms) if (v > maxGradNorm) clipped++;
          correct += Math.round(scoreLogits(r.logits, yb, k).accuracy * part.length);
        }
        if (!Number.isFinite(lossSum)) throw new BulwarkError('BULWARK_E_NONFINITE', `the training loss became ${lossSum} at epoch ${epoch}, step ${s + 1}`, { hint: 'Lower the learning rate (--lr).' });
        seen += idx.length;
        // An empty Poisson batch still takes a step: noise only (the accountant counts it).
        sum ??= params.map((p) => new Float32Array(p.data.length));
        for (const g of sum) noisyMean(g, noise, noiseStd, expected, z);
        optimizer.lr = learningRate(schedule, lr, step, plan.steps);
        optimizer.step(sum);
        step++;
        bar.update(s + 1, `loss ${(lossSum / Math.max(1, seen)).toFixed(4)}`);
      }
      bar.end();
      const trainSeconds = (performance.now() - t0) / 1000;
      const eps = computeEpsilon({ sampleRate: plan.sampleRate, noiseMultiplier: plan.noiseMultiplier, steps: step, delta: plan.delta }, { accountant: plan.accountant }).epsilon;
      const record: DpEpochRecord = {
        epoch,
        loss: seen ? lossSum / seen : 0,
        trainAccuracy: seen ? correct / seen : 0,
        lr: optimizer.lr,
        seconds: 0,
        epsilon: eps,
        meanBatchSize: seen / plan.stepsPerEpoch,
        clippedFraction: seen ? clipped / seen : 0,
        trainSeconds,
      };
      if (evalSession && opts.validation && valY) {
        const sc = scoreLogits(await evalSession.logits(opts.validation.x), valY, k);
        record.valAccuracy = sc.accuracy;
        record.valLoss = sc.loss;
      }
      record.seconds = (performance.now() - t0) / 1000;
      history.push(record);
      opts.onProgress?.({ kind: 'epoch', record });
    }
  } finally {
    await engine.release();
    await evalSession?.release();
  }
  const final = computeEpsilon({ sampleRate: plan.sampleRate, noiseMultiplier: plan.noiseMultiplier, steps: step, delta: plan.delta }, { accountant: plan.accountant });
  return {
    history,
    steps: step,
    seconds: (performance.now() - started) / 1000,
    privacy: {
      epsilon: final.epsilon,
      delta: plan.delta,
      noiseMultiplier: plan.noiseMultiplier,
      sampleRate: plan.sampleRate,
      steps: step,
      accountant: plan.accountant,
      alpha: final.alpha,
      maxGradNorm,
      expectedBatchSize: plan.batchSize,
      targetEpsilon: opts.targetEpsilon ?? null,
      perExample: engine.kind,
      noise: noise.description,
      private: noise.private,
    },
  };
}
