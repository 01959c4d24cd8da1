/**
 * Training: the network's training graph (weights as inputs, cross-entropy head, parameter gradients from the
 * autodiff pass) runs in one onnxruntime session reused by every step; optimizers update the Float32Arrays in
 * TypeScript; BatchNorm running statistics are updated from the batch statistics the graph outputs.
 */
import type * as ort from 'onnxruntime-node';
import { BulwarkError } from '../core/errors.js';
import { progressBar } from '../core/progress.js';
import { Rng } from '../core/rng.js';
import { concatRows, shapeStr, sizeOf, type Float32Tensor } from '../core/tensor.js';
import { appendHead } from '../autodiff/heads.js';
import { normalizeOpset, simplifyForGradient, toFloat64 } from '../autodiff/normalize.js';
import { buildGradient } from '../autodiff/walker.js';
import { batches, numBatches, type Dataset } from '../data/index.js';
import { ELEM, type Graph } from '../onnx/ir.js';
import { probeShapes } from '../runtime/probe.js';
import { convWeightGradientFor, createSession, fromOrt, runSession, toOrt } from '../runtime/session.js';
import { checkWorkers, makeRunner, type Runner } from '../runtime/workers.js';
import { BatchNorm, Dropout } from './layers.js';
import { INPUT_NAME, OUTPUT_NAME, type Network } from './network.js';
import { learningRate, makeOptimizer, OPTIMIZERS, SCHEDULES, type OptimizerName, type Schedule } from './optim.js';

/** A network's training graph and the names a step feeds and reads. */
export interface TrainingGraph {
  graph: Graph;
  /** Per-example loss [N] (label-smoothed cross-entropy). */
  loss: string;
  /** Labels input, int64 [N]. */
  labels: string;
  /** Logits output [N, K] (train mode). */
  logits: string;
  /** Parameter name -> output holding the gradient of Σ loss. */
  grads: Map<string, string>;
  /** Dropout layers, each with a mask input. */
  dropouts: Dropout[];
  /** BatchNorm layers, each with batch-mean and batch-variance outputs. */
  norms: BatchNorm[];
}

/**
 * Builds the training graph: train-mode forward (weights as graph inputs), a cross-entropy head, and the gradient of
 * the summed per-example loss with respect to every parameter.
 * @param net the network
 * @param opts label smoothing ε, float64 (for numerical gradient checks), perExample (gradients [B, ...shape] per example,
 *   for DP-SGD), and the threads and workers the graph's session will run with (which pick the Conv weight-gradient form)
 * @returns the graph and its names
 * @throws BulwarkError BULWARK_E_UNSUPPORTED_OP if a layer emits an op without a gradient rule (a Bulwark bug)
 */
export async function buildTrainingGraph(net: Network, opts: { labelSmoothing?: number; float64?: boolean; perExample?: boolean; threads?: number; workers?: number } = {}): Promise<TrainingGraph> {
  let g = simplifyForGradient(normalizeOpset(net.graph({ mode: 'train', weightsAsInputs: true })));
  if (opts.float64) g = toFloat64(g);
  const head = appendHead(g, OUTPUT_NAME, net.numClasses, { kind: 'ce', labelSmoothing: opts.labelSmoothing ?? 0 }, opts.float64 ? ELEM.DOUBLE : ELEM.FLOAT);
  const shapes = await probeShapes(g);
  const wrt = net.params().map((p) => p.name);
  const res = buildGradient({ graph: g, shapes, loss: head.loss, wrt, ...(opts.perExample ? { perExample: wrt } : {}), convWeightGradient: convWeightGradientFor(opts.threads, opts.workers ?? 1) });
  const layers = net.layers();
  return {
    graph: res.graph,
    loss: head.loss,
    labels: head.labels,
    logits: OUTPUT_NAME,
    grads: res.grads,
    dropouts: layers.filter((l): l is Dropout => l instanceof Dropout),
    norms: layers.filter((l): l is BatchNorm => l instanceof BatchNorm),
  };
}


function int64Labels(y: ArrayLike<number>): ort.Tensor {
  const out = new BigInt64Array(y.length);
  for (let i = 0; i < y.length; i++) out[i] = BigInt(y[i]!);
  return toOrt(ELEM.INT64, out, [y.length]);
}

/** What one training step returns. */
export interface StepResult {
  /** Per-example losses [B]. */
  loss: Float32Array;
  /** Train-mode logits [B·K]. */
  logits: Float32Array;
  /** Gradients of Σ loss, one per parameter in `net.params()` order ([B, ...shape] per example when the session is perExample). */
  grads: Float32Array[];
}

/** One onnxruntime session over the training graph, fed the network's current weights at every step. */
export class TrainingSession {
  private constructor(
    readonly net: Network,
    readonly tg: TrainingGraph,
    private readonly runner: Runner,
    private readonly perExample: boolean,
  ) {}

  /**
   * Builds the training graph and its session.
   * @param net the network
   * @param opts label smoothing, onnxruntime threads, and `workers`: worker threads that each take a share of every
   *   batch (data parallelism; the gradients of the shares are summed). Networks with BatchNorm train on one thread,
   *   since batch statistics of shares would differ from those of the batch.
   */
  static async create(net: Network, opts: { labelSmoothing?: number; threads?: number; perExample?: boolean; workers?: number } = {}): Promise<TrainingSession> {
    const perExample = opts.perExample ?? false;
    const requested = checkWorkers(opts.workers);
    const workers = net.layers().some((l) => l instanceof BatchNorm) ? 1 : requested;
    const tg = await buildTrainingGraph(net, { ...(opts.labelSmoothing === undefined ? {} : { labelSmoothing: opts.labelSmoothing }), perExample, ...(opts.threads === undefined ? {} : { threads: opts.threads }), workers });
    return new TrainingSession(net, tg, await makeRunner(tg.graph, opts.threads, workers), perExample);
  }

  /**
   * Forward and backward on one batch with fresh dropout masks from `rng`; updates BatchNorm running statistics
   * (as a train-mode forward does in PyTorch). Does not change the parameters.
   */
  async step(x: Float32Tensor, y: ArrayLike<number>, rng: Rng): Promise<StepResult> {
    const n = x.shape[0]!;
    const params = this.net.params();
    const masks = this.tg.dropouts.map((d) => d.makeMask(n, rng));
    const fetch = [this.tg.loss, this.tg.logits, ...params.map((p) => this.tg.grads.get(p.name)!), ...this.tg.norms.flatMap((b) => [b.meanOutput, b.varOutput])];
    const feedsFor = (s: number, e: number): Record<string, ort.Tensor> => {
      const row = sizeOf(x.shape.slice(1));
      const feeds: Record<string, ort.Tensor> = {
        [INPUT_NAME]: toOrt(ELEM.FLOAT, x.data.subarray(s * row, e * row), [e - s, ...x.shape.slice(1)]),
        [this.tg.labels]: int64Labels(Array.prototype.slice.call(y, s, e) as number[]),
      };
      for (const p of params) feeds[p.name] = toOrt(ELEM.FLOAT, p.data, p.shape);
      this.tg.dropouts.forEach((d, k) => {
        const per = d.maskShape.reduce((a, v) => a * v, 1);
        feeds[d.maskInput] = toOrt(ELEM.FLOAT, masks[k]!.subarray(s * per, e * per), [e - s, ...d.maskShape]);
      });
      return feeds;
    };
    if (this.runner.lanes > 1 && n >= 2) {
      const count = Math.min(this.runner.lanes, n);
      const cuts = Array.from({ length: count + 1 }, (_, i) => Math.round((i * n) / count));
      const parts = await Promise.all(Array.from({ length: count }, (_, i) => this.runner.run(feedsFor(cuts[i]!, cuts[i + 1]!), fetch, i)));
      const cat = (name: string) => concatRows(parts.map((r) => fromOrt(r[name]!))).data as Float32Array;
      const sum = (name: string) => {
        // Lane outputs are buffers of their own (transferred from the worker): the first takes the sum in place.
        const out = parts[0]![name]!.data as Float32Array;
        for (const r of parts.slice(1)) {
          const d = r[name]!.data as Float32Array;
          for (let i = 0; i < out.length; i++) out[i]! += d[i]!;
        }
        return out;
      };
      return {
        loss: cat(this.tg.loss),
        logits: cat(this.tg.logits),
        // Per-example gradients stack along the batch; batch gradients (sums over examples) add up.
        grads: params.map((p) => (this.perExample ? cat : sum)(this.tg.grads.get(p.name)!)),
      };
    }
    const out = await this.runner.run(feedsFor(0, n), fetch, 0);
    for (const bn of this.tg.norms) bn.updateRunning(out[bn.meanOutput]!.data as Float32Array, out[bn.varOutput]!.data as Float32Array, bn.countPerChannel(n));
    return {
      loss: out[this.tg.loss]!.data as Float32Array,
      logits: out[this.tg.logits]!.data as Float32Array,
      grads: params.map((p) => out[this.tg.grads.get(p.name)!]!.data as Float32Array),
    };
  }

  /** Releases the onnxruntime session. */
  async release(): Promise<void> {
    await this.runner.release();
  }
}

/** Inference-mode forward passes with the network's current weights and running statistics fed as inputs. */
export class EvalSession {
  private constructor(
    readonly net: Network,
    private readonly session: ort.InferenceSession,
  ) {}

  static async create(net: Network, opts: { threads?: number } = {}): Promise<EvalSession> {
    const session = await createSession(net.graph({ mode: 'infer', weightsAsInputs: true }), opts.threads === undefined ? {} : { threads: opts.threads });
    return new EvalSession(net, session);
  }

  /**
   * Logits [N·K] of the inputs, run in chunks of `batchSize`.
   * @param x inputs [N, ...inputShape]
   */
  async logits(x: Float32Tensor, batchSize = 500): Promise<Float32Array> {
    checkInputShape(this.net, x, 'inputs');
    const n = x.shape[0]!;
    const row = sizeOf(x.shape.slice(1));
    const k = this.net.numClasses;
    const out = new Float32Array(n * k);
    const weights: Record<string, ort.Tensor> = {};
    for (const p of this.net.state()) weights[p.name] = toOrt(ELEM.FLOAT, p.data, p.shape);
    for (let s = 0; s < n; s += batchSize) {
      const e = Math.min(n, s + batchSize);
      const res = await runSession(this.session, { ...weights, [INPUT_NAME]: toOrt(ELEM.FLOAT, x.data.subarray(s * row, e * row), [e - s, ...x.shape.slice(1)]) }, [OUTPUT_NAME]);
      out.set(res[OUTPUT_NAME]!.data as Float32Array, s * k);
    }
    return out;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** Accuracy and mean loss over a set of examples. */
export interface Score {
  accuracy: number;
  /** Mean cross-entropy (no label smoothing). */
  loss: number;
  n: number;
}

/**
 * Accuracy and mean cross-entropy of logits [N·K] against labels.
 * @param logits row-major logits
 * @param y labels
 * @param k number of classes
 */
export function scoreLogits(logits: ArrayLike<number>, y: ArrayLike<number>, k: number): Score {
  const n = y.length;
  let correct = 0;
  let loss = 0;
  for (let i = 0; i < n; i++) {
    let best = 0;
    let max = -Infinity;
    for (let j = 0; j < k; j++) {
      const v = logits[i * k + j]!;
      if (v > max) {
        max = v;
        best = j;
      }
    }
    let sum = 0;
    for (let j = 0; j < k; j++) sum += Math.exp(logits[i * k + j]! - max);
    loss += max + Math.log(sum) - logits[i * k + y[i]!]!;
    if (best === y[i]) correct++;
  }
  return { accuracy: n ? correct / n : 0, loss: n ? loss / n : 0, n };
}

/**
 * Accuracy and mean cross-entropy of a network on a labelled dataset (inference mode).
 * @throws BulwarkError BULWARK_E_LABELS, BULWARK_E_SHAPE
 */
export async function evaluate(net: Network, data: Dataset, opts: { threads?: number; batchSize?: number } = {}): Promise<Score> {
  const y = checkLabelled(net, data, 'data');
  const ev = await EvalSession.create(net, opts.threads === undefined ? {} : { threads: opts.threads });
  try {
    return scoreLogits(await ev.logits(data.x, opts.batchSize), y, net.numClasses);
  } finally {
    await ev.release();
  }
}

function checkInputShape(net: Network, x: Float32Tensor, what: string): void {
  const per = x.shape.slice(1);
  if (per.join(',') !== net.inputShape.join(',')) {
    throw new BulwarkError('BULWARK_E_SHAPE', `${what} have shape ${shapeStr(x.shape)}; the network takes [N,${net.inputShape.join(',')}]`);
  }
}

function checkLabelled(net: Network, data: Dataset, what: string): Int32Array {
  if (!data.y) throw new BulwarkError('BULWARK_E_LABELS', `${what} ${data.name} has no labels; training and evaluation need them`);
  checkInputShape(net, data.x, `${what} ${data.name}`);
  const k = net.numClasses;
  const bad = data.y.findIndex((v) => v < 0 || v >= k);
  if (bad >= 0) throw new BulwarkError('BULWARK_E_LABELS', `${what} ${data.name}: label ${bad} is ${data.y[bad]}, outside the network's ${k} classes`);
  return data.y;
}

/** Options of {@link train}. */
export interface TrainOptions {
  /** Passes over the data (integer >= 1). */
  epochs: number;
  /** Examples per step; default 64. */
  batchSize?: number;
  /** Base (peak) learning rate; default 3e-3. */
  lr?: number;
  /** Default adam. */
  optimizer?: OptimizerName;
  /** SGD momentum; default 0.9. */
  momentum?: number;
  /** SGD Nesterov momentum; default false. */
  nesterov?: boolean;
  /** Learning-rate schedule over all steps; default onecycle (3 epochs of cnn-small on MNIST: 99.2% test accuracy). */
  schedule?: Schedule;
  /** L2 (sgd, adam) or decoupled (adamw) weight decay; default 0, adamw 0.01. */
  weightDecay?: number;
  /** Label smoothing ε of the cross-entropy; default 0. */
  labelSmoothing?: number;
  /** Seed of the example order and the dropout masks; default 0. Weight init takes the Network's own seed. */
  seed?: number;
  /** Evaluated after every epoch. */
  validation?: Dataset;
  /** onnxruntime intra-op threads (per worker); default onnxruntime's choice. */
  threads?: number;
  /** Worker threads sharing every batch (data parallelism; see TrainingSession.create); default 1. */
  workers?: number;
  /** Called after every step and every epoch. */
  onProgress?: (e: TrainEvent) => void;
  /** Draw a progress bar on stderr when it is a TTY; default true. */
  progress?: boolean;
}

/** The record of one epoch. */
export interface EpochRecord {
  epoch: number;
  /** Mean training loss over the epoch (with label smoothing, train mode). */
  loss: number;
  /** Accuracy of the train-mode predictions made during the epoch. */
  trainAccuracy: number;
  valAccuracy?: number;
  valLoss?: number;
  /** Learning rate of the epoch's last step. */
  lr: number;
  seconds: number;
}

export type TrainEvent = { kind: 'step'; epoch: number; step: number; stepsPerEpoch: number; loss: number } | { kind: 'epoch'; record: EpochRecord };

/** What {@link train} returns. */
export interface TrainResult {
  history: EpochRecord[];
  steps: number;
  seconds: number;
}

/** Train options with every default filled in. */
export type ResolvedTrainOptions = Required<Omit<TrainOptions, 'validation' | 'onProgress' | 'threads' | 'weightDecay' | 'workers'>> & Pick<TrainOptions, 'validation' | 'onProgress' | 'threads' | 'weightDecay' | 'workers'>;

/**
 * Fills defaults and validates the options (the CLI calls this before loading data).
 * @throws BulwarkError BULWARK_E_ARG naming the option out of range
 */
export function resolveTrainOptions(opts: TrainOptions): ResolvedTrainOptions {
  const intAtLeast = (what: string, v: number, min: number) => {
    if (!Number.isSafeInteger(v) || v < min) throw new BulwarkError('BULWARK_E_ARG', `${what} must be an integer >= ${min}, got ${v}`);
    return v;
  };
  const r: ResolvedTrainOptions = {
    epochs: intAtLeast('epochs', opts.epochs, 1),
    batchSize: intAtLeast('batch size', opts.batchSize ?? 64, 1),
    lr: opts.lr ?? 3e-3,
    optimizer: opts.optimizer ?? 'adam',
    momentum: opts.momentum ?? 0.9,
    nesterov: opts.nesterov ?? false,
    schedule: opts.schedule ?? { kind: 'onecycle' },
    labelSmoothing: opts.labelSmoothing ?? 0,
    seed: opts.seed ?? 0,
    progress: opts.progress ?? true,
    ...(opts.weightDecay === undefined ? {} : { weightDecay: opts.weightDecay }),
    ...(opts.validation ? { validation: opts.validation } : {}),
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    ...(opts.threads === undefined ? {} : { threads: intAtLeast('threads', opts.threads, 0) }),
    ...(opts.workers === undefined ? {} : { workers: intAtLeast('workers', opts.workers, 1) }),
  };
  if (!(r.lr > 0 && Number.isFinite(r.lr))) throw new BulwarkError('BULWARK_E_ARG', `learning rate must be a positive number, got ${r.lr}`);
  if (!(OPTIMIZERS as readonly string[]).includes(r.optimizer)) throw new BulwarkError('BULWARK_E_ARG', `unknown optimizer ${JSON.stringify(r.optimizer)}; use one of ${OPTIMIZERS.join(', ')}`);
  if (!(SCHEDULES as readonly string[]).includes(r.schedule.kind)) throw new BulwarkError('BULWARK_E_ARG', `unknown schedule ${JSON.stringify(r.schedule.kind)}; use one of ${SCHEDULES.join(', ')}`);
  if (!(r.labelSmoothing >= 0 && r.labelSmoothing < 1)) throw new BulwarkError('BULWARK_E_ARG', `label smoothing must be in [0, 1), got ${r.labelSmoothing}`);
  if (r.weightDecay !== undefined && !(r.weightDecay >= 0 && Number.isFinite(r.weightDecay))) throw new BulwarkError('BULWARK_E_ARG', `weight decay must be >= 0, got ${r.weightDecay}`);
  intAtLeast('seed', r.seed, 0);
  return r;
}

/** Mixes a seed and a stream id into a 32-bit seed, so (seed, epoch) pairs never collide across seeds. */
function mixSeed(seed: number, stream: number): number {
  return new Rng((seed ^ Math.imul(stream + 1, 0x9e3779b1)) >>> 0).u32();
}

/**
 * Trains a network in place with mini-batch gradient descent on the batch-mean loss. Deterministic: the same network
 * seed, options and data give the same weights bit for bit (with the same onnxruntime thread count).
 * @param net the network; its parameters and running statistics are updated
 * @param data labelled training data shaped [N, ...net.inputShape]
 * @param opts see {@link TrainOptions}
 * @returns per-epoch history
 * @throws BulwarkError BULWARK_E_ARG for bad options; BULWARK_E_LABELS, BULWARK_E_SHAPE for bad data;
 *   BULWARK_E_NONFINITE when the loss diverges
 * @example const { history } = await train(buildArch('cnn-small'), await loadData('mnist:train'), { epochs: 3 });
 */
export async function train(net: Network, data: Dataset, opts: TrainOptions): Promise<TrainResult> {
  const o = resolveTrainOptions(opts);
  const y = checkLabelled(net, data, 'training data');
  const valY = o.validation ? checkLabelled(net, o.validation, 'validation data') : undefined;
  const threads = o.threads === undefined ? {} : { threads: o.threads };
  const started = performance.now();
  const session = await TrainingSession.create(net, { labelSmoothing: o.labelSmoothing, ...threads, ...(o.workers === undefined ? {} : { workers: o.workers }) });
  const evalSession = o.validation ? await EvalSession.create(net, threads) : undefined;
  const params = net.params();
  const optimizer = makeOptimizer(o.optimizer, params, { lr: o.lr, momentum: o.momentum, nesterov: o.nesterov, ...(o.weightDecay === undefined ? {} : { weightDecay: o.weightDecay }) });
  const n = data.x.shape[0]!;
  const k = net.numClasses;
  const stepsPerEpoch = numBatches(n, o.batchSize);
  const total = o.epochs * stepsPerEpoch;
  const maskRng = new Rng(mixSeed(o.seed, 0xd509));
  const history: EpochRecord[] = [];
  let step = 0;
  try {
    for (let epoch = 1; epoch <= o.epochs; epoch++) {
      const t0 = performance.now();
      const bar = progressBar(`epoch ${epoch}/${o.epochs}`, stepsPerEpoch, { enabled: o.progress && process.stderr.isTTY === true });
      let lossSum = 0;
      let correct = 0;
      let seen = 0;
      let i = 0;
      for (const batch of batches({ ...data, y }, { batchSize: o.batchSize, shuffle: true, seed: mixSeed(o.seed, epoch) })) {
        const by = batch.y!;
        const bn = by.length;
        optimizer.lr = learningRate(o.schedule, o.lr, step, total);
        const res = await session.step(batch.x, by, maskRng);
        let batchLoss = 0;
        for (const l of res.loss) batchLoss += l;
        if (!Number.isFinite(batchLoss)) {
          throw new BulwarkError('BULWARK_E_NONFINITE', `the training loss became ${batchLoss} at epoch ${epoch}, step ${i + 1}`, { hint: 'Training diverged: lower the learning rate (--lr) or use a warmup.' });
        }
        // The graph returns gradients of the summed loss; the update follows the batch mean.
        optimizer.step(res.grads, 1 / bn);
        lossSum += batchLoss;
        correct += Math.round(scoreLogits(res.logits, by, k).accuracy * bn);
        seen += bn;
        step++;
        i++;
        bar.update(i, `loss ${(lossSum / seen).toFixed(4)} acc ${((100 * correct) / seen).toFixed(2)}%`);
        o.onProgress?.({ kind: 'step', epoch, step: i, stepsPerEpoch, loss: batchLoss / bn });
      }
      bar.end();
      const record: EpochRecord = { epoch, loss: lossSum / seen, trainAccuracy: correct / seen, lr: optimizer.lr, seconds: 0 };
      if (evalSession && o.validation && valY) {
        const s = scoreLogits(await evalSession.logits(o.validation.x), valY, k);
        record.valAccuracy = s.accuracy;
        record.valLoss = s.loss;
      }
      record.seconds = (performance.now() - t0) / 1000;
      history.push(record);
      o.onProgress?.({ kind: 'epoch', record });
    }
  } finally {
    await session.release();
    await evalSession?.release();
  }
  return { history, steps: step, seconds: (performance.now() - started) / 1000 };
}

/**
 * Median wall time of one full training step (forward, backward, SGD momentum 0.9 update at lr 0.01, as
 * bench/torch_bench.py's train step) on a fixed batch, for benchmarks.
 * @param net the network (its weights are updated)
 * @param x the batch
 * @param y its labels
 * @param opts onnxruntime threads, timed iterations (default 20), warm-up iterations (default 3)
 * @returns milliseconds per step
 */
export async function trainStepTimer(net: Network, x: Float32Tensor, y: ArrayLike<number>, opts: { threads?: number; workers?: number; iters?: number; warmup?: number } = {}): Promise<number> {
  const session = await TrainingSession.create(net, { ...(opts.threads === undefined ? {} : { threads: opts.threads }), ...(opts.workers === undefined ? {} : { workers: opts.workers }) });
  const optimizer = makeOptimizer('sgd', net.params(), { lr: 0.01, momentum: 0.9 });
  const rng = new Rng(0);
  const n = x.shape[0]!;
  const times: number[] = [];
  try {
    const iters = opts.iters ?? 20;
    const warmup = opts.warmup ?? 3;
    for (let i = 0; i < warmup + iters; i++) {
      const t0 = performance.now();
      const res = await session.step(x, y, rng);
      optimizer.step(res.grads, 1 / n);
      if (i >= warmup) times.push(performance.now() - t0);
    }
  } finally {
    await session.release();
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}
