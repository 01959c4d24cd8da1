import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { writeFileAtomic } from '../core/fsio.js';
import type { Dataset } from '../data/index.js';
import type { Network } from '../nn/network.js';
import type { EpochRecord } from '../nn/train.js';

/** What a training command knows when it finishes; the record adds the model's identity and the common fields. */
export interface TrainRecordInput {
  out: string;
  net: Network;
  arch: string;
  dataSpec: string;
  data: Dataset;
  valSpec: unknown;
  validation: Dataset | undefined;
  hyperparameters: Record<string, unknown>;
  seed: number;
  threads: number | undefined;
  history: readonly EpochRecord[];
  seconds: number;
  steps: number;
  loadSeconds: number;
  t0: number;
  savePath?: string | undefined;
  /** Extra top-level sections (privacy, hardening) and extra final metrics. */
  extra?: Record<string, unknown>;
  finalExtra?: Record<string, unknown>;
}

/**
 * Writes the trained model (ONNX, atomically), optionally its weights as .npz, and M.onnx.train.json, the training
 * record that reports and the registry read. Returns the record.
 */
export function writeTrainingOutputs(r: TrainRecordInput): Record<string, unknown> {
  const bytes = r.net.toOnnx();
  writeFileAtomic(r.out, bytes);
  if (r.savePath) r.net.saveNpz(r.savePath);
  const last = r.history[r.history.length - 1]!;
  const record = {
    format: 'bulwark.train-record/1',
    model: r.out,
    modelSha256: createHash('sha256').update(bytes).digest('hex'),
    arch: r.arch,
    parameters: r.net.parameterCount(),
    inputShape: r.net.inputShape,
    numClasses: r.net.numClasses,
    data: { spec: r.dataSpec, n: r.data.x.shape[0] },
    validation: r.validation ? { spec: r.valSpec, n: r.validation.x.shape[0] } : null,
    hyperparameters: r.hyperparameters,
    seed: r.seed,
    threads: r.threads ?? 0,
    history: r.history,
    ...(r.extra ?? {}),
    final: { loss: last.loss, trainAccuracy: last.trainAccuracy, ...(last.valAccuracy === undefined ? {} : { valAccuracy: last.valAccuracy }), ...(r.finalExtra ?? {}) },
    timings: { loadSeconds: r.loadSeconds, trainSeconds: r.seconds, totalSeconds: (performance.now() - r.t0) / 1000, steps: r.steps, stepsPerSecond: r.steps / r.seconds },
    versions: { bulwark: '0.1.0', node: process.version },
    createdAt: new Date().toISOString(),
  };
  writeFileAtomic(`${r.out}.train.json`, JSON.stringify(record, null, 2) + '\n');
  return record;
}
