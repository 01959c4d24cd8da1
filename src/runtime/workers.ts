import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { BulwarkError } from '../core/errors.js';
import type { Graph } from '../onnx/ir.js';
import { createSession, ortMessage, runSession, sessionBytes, sessionThreads } from './session.js';

/** A tensor as it crosses the thread boundary. */
export interface WireTensor {
  type: string;
  data: Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array | Int8Array | Int16Array | Uint16Array | Uint32Array | BigUint64Array;
  dims: number[];
}
type WireBody =
  | { kind: 'create'; session: number; bytes: Uint8Array; threads: number }
  | { kind: 'run'; session: number; feeds: Record<string, WireTensor>; outputs: string[] }
  | { kind: 'release'; session: number };
export type WireRequest = WireBody & { id: number };
export type WireResponse = { id: number; ok: true; outputs?: Record<string, WireTensor> } | { id: number; ok: false; message: string };

/** One worker thread and its pending requests; referenced (keeps the process alive) only while a request is pending. */
class Lane {
  private readonly worker: Worker;
  private readonly pending = new Map<number, { resolve: (r: WireResponse) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private failure: Error | undefined;

  constructor() {
    // No inherited Node flags: a process started with --input-type/--eval would pass them on, and a worker refuses
    // those without a string to run. The lane only runs onnxruntime.
    this.worker = new Worker(new URL('./worker.js', import.meta.url), { execArgv: [] });
    this.worker.unref();
    this.worker.on('message', (res: WireResponse) => {
      const p = this.pending.get(res.id);
      if (!p) return;
      this.pending.delete(res.id);
      if (this.pending.size === 0) this.worker.unref();
      p.resolve(res);
    });
    const fail = (e: Error) => {
      this.failure = e;
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => fail(new Error(`worker thread exited (code ${code})`)));
  }

  request(msg: WireBody, transfer: ArrayBuffer[] = []): Promise<WireResponse> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      if (this.pending.size === 0) this.worker.ref();
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...msg, id }, transfer);
    });
  }
}

const lanes: Lane[] = [];
let nextSession = 1;

function lane(i: number): Lane {
  while (lanes.length <= i) lanes.push(new Lane());
  return lanes[i]!;
}

function check(res: WireResponse, what: string): Extract<WireResponse, { ok: true }> {
  if (!res.ok) throw new BulwarkError('BULWARK_E_RUNTIME', `onnxruntime failed to ${what}: ${ortMessage(res.message)}`);
  return res;
}

/**
 * The tensor as sent: copied to a buffer of its own, which is then transferred. (Structured cloning would copy a view's
 * whole buffer, and copies even an owned buffer twice, into the message and out of it: postMessage took 2.4 ms per
 * training step of cnn-small on two lanes when the weights were cloned, 1.5 ms with one copy and a transfer.)
 */
function standalone(t: ort.Tensor, transfer: ArrayBuffer[]): WireTensor {
  const src = t.data as WireTensor['data'];
  const copy = src.slice() as WireTensor['data'];
  transfer.push(copy.buffer as ArrayBuffer);
  return { type: t.type, data: copy, dims: [...t.dims] };
}

/**
 * One model graph with a session in each of `count` worker threads (lanes). Requests to one lane run in order; lanes
 * run in parallel, which gives data parallelism across cores (a batch split across lanes) where onnxruntime's
 * intra-op threads scale poorly on small convolutions.
 */
export class LaneSessions {
  readonly count: number;
  private readonly id: number;

  private constructor(count: number, id: number) {
    this.count = count;
    this.id = id;
  }

  /** Creates the session in lanes 0..count-1, each with `threads` intra-op threads. */
  static async create(bytes: Uint8Array, count: number, threads: number): Promise<LaneSessions> {
    const id = nextSession++;
    await Promise.all(Array.from({ length: count }, async (_, i) => {
      check(await lane(i).request({ kind: 'create', session: id, bytes, threads }), 'load the graph');
    }));
    return new LaneSessions(count, id);
  }

  /** Runs the session on lane `laneIndex` (mod count). Feeds are copied; outputs arrive as new tensors. */
  async run(feeds: Record<string, ort.Tensor>, outputs: string[], laneIndex = 0): Promise<Record<string, ort.Tensor>> {
    const wire: Record<string, WireTensor> = {};
    const transfer: ArrayBuffer[] = [];
    for (const [k, t] of Object.entries(feeds)) wire[k] = standalone(t, transfer);
    const res = check(await lane(laneIndex % this.count).request({ kind: 'run', session: this.id, feeds: wire, outputs }, transfer), 'run the graph');
    const out: Record<string, ort.Tensor> = {};
    for (const [k, t] of Object.entries(res.outputs ?? {})) out[k] = new ort.Tensor(t.type as never, t.data as never, t.dims);
    return out;
  }

  async release(): Promise<void> {
    await Promise.all(Array.from({ length: this.count }, (_, i) => lane(i).request({ kind: 'release', session: this.id })));
  }
}

/** The most worker lanes a command starts on its own (each holds its own copy of the model's sessions). */
export const MAX_DEFAULT_LANES = 4;

/**
 * How commands run a model when neither threads nor workers are given: one worker lane per core (up to
 * {@link MAX_DEFAULT_LANES}), the cores shared out as intra-op threads. Small convolutional models scale poorly on
 * onnxruntime's intra-op threads (cnn-small input gradient at batch 128: 31 ms on 1 thread, 31 ms on 2 intra-op
 * threads, 17 ms on 2 lanes of 1), so splitting the examples across lanes is the better use of several cores.
 * One core: the calling thread, as before.
 */
export function defaultLanes(cores = availableParallelism()): { workers: number; threads: number | undefined } {
  const workers = Math.max(1, Math.min(cores, MAX_DEFAULT_LANES));
  return workers === 1 ? { workers, threads: undefined } : { workers, threads: Math.max(1, Math.floor(cores / workers)) };
}

/** `workers` checked: an integer in [1, 256], default 1. */
export function checkWorkers(workers: number | undefined): number {
  const w = workers ?? 1;
  if (!Number.isInteger(w) || w < 1 || w > 256) throw new BulwarkError('BULWARK_E_ARG', `workers must be an integer in [1, 256], got ${workers}`);
  return w;
}

/** A session on the calling thread (`lanes` 1) or one per worker lane; `lane` picks the worker. */
export interface Runner {
  readonly lanes: number;
  run(feeds: Record<string, ort.Tensor>, outputs: string[], lane: number): Promise<Record<string, ort.Tensor>>;
  release(): Promise<void>;
}

/**
 * A graph's session: on the calling thread when `workers` is 1 (`threads` intra-op threads, undefined for the
 * default), else in `workers` lanes with `threads` threads each (at least 1).
 */
export async function makeRunner(graph: Graph, threads: number | undefined, workers: number): Promise<Runner> {
  if (workers > 1) {
    const lanes = await LaneSessions.create(await sessionBytes(graph), workers, sessionThreads(threads, workers));
    return { lanes: workers, run: (f, o, lane) => lanes.run(f, o, lane), release: () => lanes.release() };
  }
  const session = await createSession(graph, threads === undefined ? {} : { threads });
  return { lanes: 1, run: (f, o) => runSession(session, f, o), release: () => session.release() };
}
