import { availableParallelism } from 'node:os';
import * as ort from 'onnxruntime-node';
import type { ConvWeightGradient } from '../autodiff/context.js';
import { BulwarkError } from '../core/errors.js';
import type { Tensor, TypedArray, DType } from '../core/tensor.js';
import { ELEM, writeModelBytes, type Graph } from '../onnx/ir.js';
import { nchwcBlockSize, nchwcWeightInputConvs } from './nchwc.js';

/** Options of the onnxruntime sessions Bulwark creates. */
export interface SessionOptions {
  /** Threads one operator may use; 0 lets onnxruntime choose. */
  threads?: number;
}

let defaultThreads = 0;

/**
 * Intra-op threads a session will run with: `threads` per lane when there are worker lanes (at least 1), else
 * `threads` or the default (0: all cores, onnxruntime's choice).
 */
export function sessionThreads(threads: number | undefined, workers: number): number {
  return workers > 1 ? threads || 1 : threads ?? defaultThreads;
}

/**
 * The Conv weight-gradient form (GradientRequest.convWeightGradient) for a session run with these threads and
 * workers: per-tap GEMMs when it runs on one thread (each worker lane does), im2col with per-example GEMMs when
 * onnxruntime has several threads to spread them over (0: all cores).
 */
export function convWeightGradientFor(threads: number | undefined, workers: number): ConvWeightGradient {
  return intraOpThreads(threads, workers) === 1 ? 'taps' : 'im2col';
}

/** The intra-op threads a session will actually use: {@link sessionThreads}, with 0 (onnxruntime's choice) as the cores. */
export function intraOpThreads(threads: number | undefined, workers: number): number {
  const t = sessionThreads(threads, workers);
  return t === 0 ? availableParallelism() : t;
}

/** Sets the thread count used by sessions created without an explicit `threads`. */
export function setDefaultThreads(n: number): void {
  defaultThreads = n;
}

/**
 * The bytes a session is created from: convolutions whose kernels are graph inputs (training graphs) are moved onto
 * onnxruntime's blocked kernels when the CPU has them (see ./nchwc.ts).
 */
export async function sessionBytes(g: Graph): Promise<Uint8Array> {
  return writeModelBytes(nchwcWeightInputConvs(g, await nchwcBlockSize()));
}

/** Bulwark's onnxruntime session options (also used by the worker lanes, ./worker.ts). */
export function ortSessionOptions(threads: number): ort.InferenceSession.SessionOptions {
  return { intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all', logSeverityLevel: 4 };
}

/**
 * onnxruntime's message without the source location it starts with (`/onnxruntime_src/...model.cc:202
 * onnxruntime::Model::Model(...) `), which means nothing to a user; the reason after it is kept.
 */
export function ortMessage(message: string): string {
  return message.replace(/^\S*onnxruntime_src\/\S+:\d+ [\w:~<>]+\((?:[^()]|\([^()]*\))*\)\s*/, '');
}

/** Creates an onnxruntime session for a Graph (or ONNX bytes), with Bulwark's defaults. */
export async function createSession(model: Graph | Uint8Array, opts: SessionOptions = {}): Promise<ort.InferenceSession> {
  const bytes = model instanceof Uint8Array ? model : await sessionBytes(model);
  try {
    return await ort.InferenceSession.create(bytes, ortSessionOptions(opts.threads ?? defaultThreads));
  } catch (e) {
    throw new BulwarkError('BULWARK_E_RUNTIME', `onnxruntime could not load the graph: ${ortMessage((e as Error).message)}`);
  }
}

/** Runs a session, mapping runtime failures to BULWARK_E_RUNTIME. */
export async function runSession(session: ort.InferenceSession, feeds: Record<string, ort.Tensor>, outputs?: string[]): Promise<Record<string, ort.Tensor>> {
  try {
    return (await (outputs ? session.run(feeds, outputs) : session.run(feeds))) as Record<string, ort.Tensor>;
  } catch (e) {
    throw new BulwarkError('BULWARK_E_RUNTIME', `onnxruntime failed to run the graph: ${ortMessage((e as Error).message)}`);
  }
}

const ORT_TYPE: Record<number, ort.Tensor.Type> = {
  [ELEM.FLOAT]: 'float32',
  [ELEM.DOUBLE]: 'float64',
  [ELEM.INT64]: 'int64',
  [ELEM.INT32]: 'int32',
  [ELEM.UINT8]: 'uint8',
  [ELEM.INT8]: 'int8',
  [ELEM.BOOL]: 'bool',
  [ELEM.INT16]: 'int16',
  [ELEM.UINT16]: 'uint16',
  [ELEM.UINT32]: 'uint32',
  [ELEM.UINT64]: 'uint64',
  [ELEM.FLOAT16]: 'float16',
};

/** The onnxruntime type name for an ONNX element type. */
export function ortType(elem: number): ort.Tensor.Type {
  const t = ORT_TYPE[elem];
  if (!t) throw new BulwarkError('BULWARK_E_DTYPE', `element type ${elem} is not supported by the runtime`);
  return t;
}

/** Wraps a typed array as an onnxruntime tensor without copying. */
export function toOrt(elem: number, data: TypedArray, dims: readonly number[]): ort.Tensor {
  return new ort.Tensor(ortType(elem), data as never, dims);
}

/** Converts an onnxruntime output to a Bulwark tensor (shares the output's buffer). */
export function fromOrt(t: ort.Tensor): Tensor {
  return { data: t.data as TypedArray, shape: [...t.dims], dtype: t.type as DType };
}
