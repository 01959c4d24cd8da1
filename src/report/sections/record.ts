/**
 * Glue shared by the hardening and privacy sections: the model's training record (M.onnx.train.json, written by
 * `bulwark train` / `bulwark train --dp`, see src/cli/train-record.ts), seeded samples of data rows outside the
 * assessed examples, and ROC thinning for charts.
 */
import * as fs from 'node:fs';
import { Rng } from '../../core/rng.js';
import type { Roc } from '../../privacy/membership/index.js';

/** One epoch of a training record (the fields the report reads). */
export interface RecordEpoch {
  epoch: number;
  loss?: number;
  trainAccuracy?: number;
  valAccuracy?: number;
  /** Adversarial training with --val: PGD-20 accuracy on the first 500 validation rows at the training eps. */
  robustValAccuracy?: number;
  /** The catastrophic-overfitting guard's PGD-10 accuracy on a held-out batch. */
  guardPgdAccuracy?: number;
  /** DP-SGD: epsilon after this epoch. */
  epsilon?: number;
}

/** The `hardening` block of a record (robustTrain's settings plus the kept epoch). */
export interface RecordHardening {
  adv: string;
  eps: number;
  epsRamp?: number;
  advSteps?: number;
  advStepSize?: number;
  tradesBeta?: number;
  cleanRatio?: number;
  noiseSigma?: number;
  paper?: string;
  keptEpoch?: number;
  stopped?: string | null;
}

/** The `privacy` block of a DP-SGD record (src/privacy/dpsgd.ts DpRecord). */
export interface RecordPrivacy {
  epsilon: number;
  delta: number;
  noiseMultiplier: number;
  sampleRate?: number;
  steps?: number;
  accountant?: string;
  alpha?: number | null;
  maxGradNorm?: number;
  expectedBatchSize?: number;
  targetEpsilon?: number | null;
  perExample?: string;
  noise?: string;
  private?: boolean;
}

/** A training record as the report reads it. */
export interface TrainRecord {
  format?: string;
  modelSha256?: string;
  arch?: string;
  data?: { spec?: string; n?: number };
  validation?: { spec?: unknown; n?: number } | null;
  hyperparameters?: Record<string, unknown>;
  history?: RecordEpoch[];
  hardening?: RecordHardening;
  privacy?: RecordPrivacy;
}

/** What {@link readTrainRecord} found. */
export interface RecordLookup {
  /** Where the record is looked for: `${model}.train.json`. */
  path: string;
  /** The record, when present, parseable and about this model. */
  record: TrainRecord | undefined;
  /** Why there is no usable record (missing, unreadable, another model's). */
  problem: string | undefined;
}

/** The largest training record read (a record is a few kB per epoch). */
const RECORD_MAX_BYTES = 64 * 1024 * 1024;

const isObject = (v: unknown): boolean => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Why a parsed record cannot be read as a {@link TrainRecord} (blocks that are not objects), or undefined. */
function recordShapeProblem(r: TrainRecord): string | undefined {
  if (r.history !== undefined && (!Array.isArray(r.history) || !r.history.every(isObject))) return 'is malformed: history must be a list of epoch objects';
  const blocks = r as unknown as Record<string, unknown>;
  for (const k of ['data', 'hardening', 'privacy', 'hyperparameters', 'validation']) {
    if (blocks[k] !== undefined && blocks[k] !== null && !isObject(blocks[k])) return `is malformed: ${k} must be an object`;
  }
  return undefined;
}

/**
 * Reads the training record next to a model. A record whose modelSha256 differs from the model's is not used (it
 * describes another model: the file was retrained or replaced).
 * @param modelPath the model file
 * @param sha256 the model file's SHA-256 (hex), when known
 */
export function readTrainRecord(modelPath: string, sha256?: string): RecordLookup {
  const p = `${modelPath}.train.json`;
  let out: RecordLookup;
  if (!fs.existsSync(p)) out = { path: p, record: undefined, problem: `no training record (${p})` };
  else {
    try {
      if (fs.statSync(p).size > RECORD_MAX_BYTES) throw new Error(`larger than ${RECORD_MAX_BYTES} bytes`);
      const r = JSON.parse(fs.readFileSync(p, 'utf8')) as TrainRecord;
      const bad = typeof r !== 'object' || r === null || Array.isArray(r) ? 'is not a JSON object' : recordShapeProblem(r);
      if (bad) out = { path: p, record: undefined, problem: `${p} ${bad}` };
      else if (sha256 && typeof r.modelSha256 === 'string' && r.modelSha256 !== sha256) out = { path: p, record: undefined, problem: `${p} describes another model (its modelSha256 ${r.modelSha256.slice(0, 12)}… differs from the model's ${sha256.slice(0, 12)}…)` };
      else out = { path: p, record: r, problem: undefined };
    } catch (e) {
      out = { path: p, record: undefined, problem: `${p} cannot be read: ${(e as Error).message}` };
    }
  }
  return out;
}

/** The epoch whose weights the model holds: the record's kept epoch, else the last one. */
export function keptEpoch(r: TrainRecord): RecordEpoch | undefined {
  const h = r.history ?? [];
  const k = r.hardening?.keptEpoch;
  return (k === undefined ? undefined : h.find((e) => e.epoch === k)) ?? h[h.length - 1];
}

/**
 * A seeded sample of up to `n` row indices of [0, total) outside `exclude` (the assessed examples), in sampled
 * order; when fewer rows remain outside, the excluded ones are used as well.
 */
export function sampleOutside(total: number, exclude: ArrayLike<number>, n: number, seed: number): Int32Array {
  const ex = new Set<number>(Array.from(exclude));
  const perm = new Rng(seed).permutation(total);
  const outside = Array.from(perm).filter((i) => !ex.has(i));
  if (outside.length >= n) return Int32Array.from(outside.slice(0, n));
  const inside = Array.from(perm).filter((i) => ex.has(i));
  return Int32Array.from([...outside, ...inside].slice(0, n));
}

/** A ROC curve thinned to at most `max` vertices (always keeping both ends), as chart points. */
export function rocPoints(roc: Pick<Roc, 'fpr' | 'tpr'>, max = 200): { x: number; y: number }[] {
  const n = roc.fpr.length;
  const step = Math.max(1, Math.ceil(n / max));
  const pts: { x: number; y: number }[] = [];
  for (let i = 0; i < n; i += step) pts.push({ x: roc.fpr[i]!, y: roc.tpr[i]! });
  const last = { x: roc.fpr[n - 1]!, y: roc.tpr[n - 1]! };
  if (pts.length === 0 || pts[pts.length - 1]!.x !== last.x || pts[pts.length - 1]!.y !== last.y) pts.push(last);
  return pts;
}

/** The budget index: quick 0, standard 1, thorough 2. */
export function budgetIndex(b: string): 0 | 1 | 2 {
  return b === 'thorough' ? 2 : b === 'standard' ? 1 : 0;
}
