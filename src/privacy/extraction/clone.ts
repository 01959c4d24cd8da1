/**
 * Shared parts of the extraction attacks: the clone network, its training on victim labels, and the fidelity /
 * accuracy measurement.
 */
import { BulwarkError } from '../../core/errors.js';
import { argmaxRows, type Float32Tensor } from '../../core/tensor.js';
import type { Dataset } from '../../data/index.js';
import { buildArch, EvalSession, train, type Network } from '../../nn/index.js';
import type { Model } from '../../runtime/model.js';

/** Default clone architecture: a small CNN (two 5x5 convolutions) that trains in seconds on a few thousand images. */
export const DEFAULT_CLONE_ARCH = 'conv:16x5p2,relu,maxpool:2,conv:32x5p2,relu,maxpool:2,flatten,dense:64,relu,dense:{K}';

/** Options shared by every extraction attack. */
export interface CloneOptions {
  /** Architecture of the clone (a built-in name or an nn spec; `{K}` is replaced by the victim's class count); default {@link DEFAULT_CLONE_ARCH}. */
  arch?: string;
  /** Training epochs over the transfer set at each training point; default 10. */
  epochs?: number;
  /** Clone learning rate (Adam); default 3e-3. */
  lr?: number;
  /** Clone mini-batch size; default 64. */
  batchSize?: number;
  /** Seed of the clone's initialization, the query selection and the training order; default 0. */
  seed?: number;
  /** Labelled data to measure fidelity (agreement with the victim) and accuracy on; its victim queries are counted apart. */
  evalSet?: Dataset;
  /** onnxruntime threads for clone training. */
  threads?: number;
}

/** One point of an attack's learning curve. */
export interface CurvePoint {
  /** Victim queries spent by the attack so far. */
  queries: number;
  /** Fraction of evalSet inputs on which the clone's top-1 class equals the victim's. */
  fidelity: number;
  /** Clone accuracy on evalSet's true labels (NaN when evalSet has no labels). */
  accuracy: number;
}

/** What an extraction attack returns. */
export interface ExtractionResult {
  /** The trained clone (export it with clone.saveOnnx). */
  clone: Network;
  /** Victim queries spent by the attack (evaluation queries excluded). */
  queries: number;
  /** Fidelity and accuracy after each training point (empty without evalSet). */
  curve: CurvePoint[];
  /** Victim queries spent labelling evalSet (not part of the attack). */
  evalQueries: number;
  /** The attack's transfer set: inputs and the victim's top-1 labels. */
  transfer: { x: Float32Tensor; y: Int32Array };
  seconds: number;
}

/** Resolved clone options. */
export interface ResolvedClone {
  arch: string;
  epochs: number;
  lr: number;
  batchSize: number;
  seed: number;
  threads: number | undefined;
}

/** Validates and fills clone options. */
export function resolveClone(victim: Model, o: CloneOptions): ResolvedClone {
  const shape = victim.inputShape.slice(1);
  if (shape.length === 0 || shape.some((d) => !(d > 0))) {
    throw new BulwarkError('BULWARK_E_MODEL', `the victim's input shape [${victim.inputShape.join(',')}] has dynamic dims; extraction needs a fixed per-example shape`);
  }
  if (!(victim.numClasses >= 2)) throw new BulwarkError('BULWARK_E_MODEL', `the victim reports ${victim.numClasses} classes; extraction needs at least 2`);
  const r: ResolvedClone = {
    arch: (o.arch ?? DEFAULT_CLONE_ARCH).replace(/\{K\}/g, String(victim.numClasses)),
    epochs: o.epochs ?? 10,
    lr: o.lr ?? 3e-3,
    batchSize: o.batchSize ?? 64,
    seed: o.seed ?? 0,
    threads: o.threads,
  };
  if (!Number.isInteger(r.epochs) || r.epochs < 1) throw new BulwarkError('BULWARK_E_ARG', `clone epochs must be a positive integer, got ${r.epochs}`);
  return r;
}

/** Builds a fresh clone network for the victim. */
export function newClone(victim: Model, r: ResolvedClone): Network {
  return buildArch(r.arch, { inputShape: victim.inputShape.slice(1), numClasses: victim.numClasses, seed: r.seed });
}

/** Trains the clone (in place) on inputs and victim labels. */
export async function trainClone(net: Network, x: Float32Tensor, y: Int32Array, r: ResolvedClone, round: number): Promise<void> {
  const data: Dataset = { name: 'transfer set', x, y, numClasses: net.numClasses };
  await train(net, data, {
    epochs: r.epochs,
    lr: r.lr,
    batchSize: r.batchSize,
    schedule: { kind: 'constant' },
    seed: (r.seed + 7919 * round) >>> 0,
    progress: false,
    ...(r.threads === undefined ? {} : { threads: r.threads }),
  });
}

/** Top-1 classes of the clone. */
export async function clonePredict(net: Network, x: Float32Tensor): Promise<Int32Array> {
  const ev = await EvalSession.create(net);
  try {
    const logits = await ev.logits(x);
    return argmaxRows({ data: logits, shape: [x.shape[0]!, net.numClasses], dtype: 'float32' });
  } finally {
    await ev.release();
  }
}

/** Victim labels of the evaluation set, computed once. */
export interface EvalRef {
  x: Float32Tensor;
  victim: Int32Array;
  truth: Int32Array | undefined;
  queries: number;
}

/** Labels evalSet with the victim. */
export async function evalReference(victim: Model, evalSet: Dataset | undefined): Promise<EvalRef | undefined> {
  if (!evalSet) return undefined;
  const out = await victim.predict(evalSet.x);
  return { x: evalSet.x, victim: argmaxRows(out), truth: evalSet.y, queries: evalSet.x.shape[0]! };
}

/**
 * Fidelity and accuracy of a clone.
 * @param net the clone
 * @param ref the victim-labelled evaluation set
 * @param queries attack queries spent so far (recorded in the point)
 */
export async function measure(net: Network, ref: EvalRef, queries: number): Promise<CurvePoint> {
  const pred = await clonePredict(net, ref.x);
  let agree = 0;
  let correct = 0;
  for (let i = 0; i < pred.length; i++) {
    if (pred[i] === ref.victim[i]) agree++;
    if (ref.truth && pred[i] === ref.truth[i]) correct++;
  }
  return { queries, fidelity: agree / pred.length, accuracy: ref.truth ? correct / pred.length : NaN };
}
