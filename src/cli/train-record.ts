import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { checkWritable, refuseCollidingOutputs, refuseOutputOverInput, writeFilesAtomic } from '../core/fsio.js';
import { encodeNpz } from '../data/npy.js';
import { dataSpecFiles } from '../data/spec.js';
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
 * Checks, before a training run, that its outputs can be written (the model, M.onnx.train.json, the --save-npz file:
 * none is a folder or device, their folders exist or can be created and are writable) and that none of them is an
 * input (--data, --val), so a long run never ends in a write error or replaces its own data.
 * @throws BulwarkError BULWARK_E_FILE_WRITE, BULWARK_E_ARG
 */
export function checkTrainingOutputs(out: string, savePath: unknown, dataSpec: string, valSpec: unknown): void {
  const outputs: [string, string][] = [['--out', out], ['--out', `${out}.train.json`]];
  if (typeof savePath === 'string') outputs.push(['--save-npz', savePath]);
  refuseCollidingOutputs(outputs);
  refuseOutputOverInput(outputs, [...dataSpecFiles(dataSpec).map((f): [string, string] => ['--data', f]), ...dataSpecFiles(valSpec).map((f): [string, string] => ['--val', f])]);
  for (const [flag, file] of outputs) checkWritable(file, flag);
}

/**
 * Writes the trained model (ONNX), optionally its weights as .npz, and M.onnx.train.json, the training record that
 * reports and the registry read, as one (writeFilesAtomic): either all are replaced or none is. Returns the record.
 */
export function writeTrainingOutputs(r: TrainRecordInput): Record<string, unknown> {
  const bytes = r.net.toOnnx();
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
  writeFilesAtomic([
    { file: r.out, data: bytes },
    ...(r.savePath ? [{ file: r.savePath, data: encodeNpz(r.net.stateDict()) }] : []),
    { file: `${r.out}.train.json`, data: JSON.stringify(record, null, 2) + '\n' },
  ], r.savePath ? '--out/--save-npz' : '--out');
  return record;
}
