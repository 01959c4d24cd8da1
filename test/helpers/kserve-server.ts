/**
 * A small Open Inference Protocol (KServe v2 REST) server for tests: it serves one model (an ONNX file through
 * loadModel, or any Model) on 127.0.0.1 at a random port, counts the examples it receives and answers, and can be
 * told to misbehave (hang, fail with 5xx for a while, answer garbage, wrong shapes, non-finite values, 4xx).
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadModel, type Model } from '../../src/runtime/model.js';

/** How the server answers inference requests. */
export type Misbehavior =
  | { kind: 'ok' }
  /** Never answer (the client must time out). */
  | { kind: 'hang' }
  /** Answer the next `times` inference requests with this 5xx status (default 500), then recover. */
  | { kind: 'error'; times: number; status?: number }
  /** 200 with a body that is not JSON. */
  | { kind: 'garbage' }
  /** 200 with an output of shape [N, K + 1] and data to match. */
  | { kind: 'wrong-shape' }
  /** 200 with a data array one value short of the shape. */
  | { kind: 'short-data' }
  /** 200 with a non-number in the data (JSON cannot carry NaN). */
  | { kind: 'non-finite' }
  /** 200 with datatype BYTES. */
  | { kind: 'wrong-datatype' }
  /** Refuse every inference with this 4xx status. */
  | { kind: 'status'; status: number };

/** What the server counted. */
export interface ServerStats {
  /** HTTP requests of any kind. */
  requests: number;
  /** Inference requests with a well-formed body. */
  inferRequests: number;
  /** Examples in well-formed inference requests (whatever the answer). */
  examplesReceived: number;
  /** Examples answered with a correct 200 response. */
  examplesAnswered: number;
  /** Batch size of every well-formed inference request. */
  batchSizes: number[];
}

/** A running test server. */
export interface KServeTestServer {
  /** `http://127.0.0.1:<port>/v2/models/<name>` (with `/versions/<v>` when a version is served). */
  url: string;
  /** `http://127.0.0.1:<port>`. */
  base: string;
  port: number;
  stats: ServerStats;
  /** The model served. */
  model: Model;
  /** Changes how inference requests are answered from now on. */
  misbehave(m: Misbehavior): void;
  /** Zeroes the counters. */
  resetStats(): void;
  /** Stops the server, cutting open connections (hung requests included). */
  close(): Promise<void>;
}

/** Options of {@link startKServeServer}. */
export interface KServeServerOptions {
  /** An ONNX file path or bytes (loaded with loadModel), or a Model. */
  model: string | Uint8Array | Model;
  /** Model name in the URL; default `model`. */
  name?: string;
  /** Served version (URLs with or without `/versions/<v>` are accepted). */
  version?: string;
  /** Largest batch accepted per request (413 beyond); default unlimited. */
  maxBatchSize?: number;
  /** Answer `/v2/health/ready` with 200 (default) or 503. */
  ready?: boolean;
  /** Input tensor name in the metadata; default `input`. */
  inputName?: string;
}

/**
 * Starts a KServe v2 server for tests on 127.0.0.1 and a random port.
 * @example const srv = await startKServeServer({ model: 'fixtures/models/mnist-cnn-small.onnx', name: 'mnist' });
 */
export async function startKServeServer(opts: KServeServerOptions): Promise<KServeTestServer> {
  const model: Model = typeof opts.model === 'string' || opts.model instanceof Uint8Array ? await loadModel(opts.model) : opts.model;
  const name = opts.name ?? 'model';
  const inputName = opts.inputName ?? 'input';
  const stats: ServerStats = { requests: 0, inferRequests: 0, examplesReceived: 0, examplesAnswered: 0, batchSizes: [] };
  let mode: Misbehavior = { kind: 'ok' };
  const rowShape = model.inputShape.slice(1);
  const rowSize = rowShape.reduce((a, d) => a * d, 1);

  const send = (res: http.ServerResponse, status: number, body: unknown, raw = false): void => {
    const text = raw ? String(body) : JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
  const fail = (res: http.ServerResponse, status: number, error: string): void => send(res, status, { error });

  const metadata = () => ({
    name,
    versions: opts.version ? [opts.version] : [],
    platform: 'onnxruntime_onnx',
    inputs: [{ name: inputName, datatype: 'FP32', shape: [-1, ...rowShape] }],
    outputs: [{ name: 'output', datatype: 'FP32', shape: [-1, model.numClasses] }],
  });

  const infer = async (body: string, res: http.ServerResponse): Promise<void> => {
    let req: { inputs?: { name?: unknown; shape?: unknown; datatype?: unknown; data?: unknown }[] };
    try {
      req = JSON.parse(body) as typeof req;
    } catch {
      return fail(res, 400, 'request body is not JSON');
    }
    const input = req.inputs?.[0];
    if (!input || req.inputs!.length !== 1) return fail(res, 400, 'expected exactly one input');
    if (input.name !== inputName) return fail(res, 400, `unknown input ${JSON.stringify(input.name)}; the model's input is ${inputName}`);
    if (input.datatype !== 'FP32') return fail(res, 400, `input datatype ${JSON.stringify(input.datatype)}; expected FP32`);
    const shape = input.shape;
    if (!Array.isArray(shape) || shape.length !== rowShape.length + 1 || shape.slice(1).some((d, i) => d !== rowShape[i])) {
      return fail(res, 400, `input shape ${JSON.stringify(shape)}; expected [-1, ${rowShape.join(', ')}]`);
    }
    const n = shape[0] as number;
    if (!Number.isInteger(n) || n < 1) return fail(res, 400, `bad batch size ${n}`);
    const data = input.data;
    if (!Array.isArray(data) || data.length !== n * rowSize || data.some((v) => typeof v !== 'number')) return fail(res, 400, `input data must be ${n * rowSize} numbers`);
    if (opts.maxBatchSize !== undefined && n > opts.maxBatchSize) return fail(res, 413, `batch of ${n} exceeds the maximum of ${opts.maxBatchSize}`);
    stats.inferRequests++;
    stats.examplesReceived += n;
    stats.batchSizes.push(n);
    const m = mode;
    switch (m.kind) {
      case 'hang':
        return; // never answered; close() cuts the connection
      case 'error':
        if (m.times > 0) {
          m.times--;
          return fail(res, m.status ?? 500, 'injected server error');
        }
        break;
      case 'garbage':
        return send(res, 200, '{"outputs": [{"name": "output", "shape": [1, 10], "data": [0.1, 0.2', true);
      case 'status':
        return fail(res, m.status, 'injected refusal');
      default:
        break;
    }
    const out = await model.predict({ data: Float32Array.from(data as number[]), shape: [n, ...rowShape], dtype: 'float32' });
    const k = out.data.length / n;
    let values: unknown[] = Array.from(out.data);
    let oshape = [n, k];
    let datatype = 'FP32';
    if (m.kind === 'wrong-shape') {
      oshape = [n, k + 1];
      values = [...values, ...new Array<number>(n).fill(0)];
    } else if (m.kind === 'short-data') values = values.slice(1);
    else if (m.kind === 'non-finite') values[0] = 'NaN';
    else if (m.kind === 'wrong-datatype') datatype = 'BYTES';
    send(res, 200, { model_name: name, ...(opts.version ? { model_version: opts.version } : {}), outputs: [{ name: 'output', datatype, shape: oshape, data: values }] });
    if (m.kind === 'ok' || m.kind === 'error') stats.examplesAnswered += n;
  };

  const modelRe = /^\/v2\/models\/([^/]+)(?:\/versions\/([^/]+))?(\/infer|\/ready)?$/;
  const server = http.createServer((req, res) => {
    stats.requests++;
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= 256 << 20) chunks.push(c);
    });
    req.on('end', () => {
      void (async () => {
        const path = (req.url ?? '/').split('?')[0]!;
        if (req.method === 'GET' && path === '/v2/health/live') return send(res, 200, { live: true });
        if (req.method === 'GET' && path === '/v2/health/ready') return opts.ready === false ? send(res, 503, { ready: false }) : send(res, 200, { ready: true });
        const mm = modelRe.exec(path);
        if (!mm) return fail(res, 404, `no route ${req.method} ${path}`);
        if (decodeURIComponent(mm[1]!) !== name) return fail(res, 404, `unknown model ${mm[1]}`);
        if (mm[2] !== undefined && opts.version !== undefined && decodeURIComponent(mm[2]) !== opts.version) return fail(res, 404, `unknown version ${mm[2]}`);
        if (size > 256 << 20) return fail(res, 413, 'request body too large');
        if (mm[3] === '/infer') {
          if (req.method !== 'POST') return fail(res, 405, 'infer takes POST');
          return infer(Buffer.concat(chunks).toString('utf8'), res);
        }
        if (req.method !== 'GET') return fail(res, 405, 'metadata takes GET');
        if (mm[3] === '/ready') return send(res, 200, { name, ready: true });
        return send(res, 200, metadata());
      })().catch((e: unknown) => {
        if (!res.headersSent) fail(res, 500, (e as Error).message);
      });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const base = `http://127.0.0.1:${port}`;
  return {
    url: `${base}/v2/models/${encodeURIComponent(name)}${opts.version ? `/versions/${encodeURIComponent(opts.version)}` : ''}`,
    base,
    port,
    stats,
    model,
    misbehave(m) {
      mode = m.kind === 'error' ? { ...m } : m;
    },
    resetStats() {
      stats.requests = 0;
      stats.inferRequests = 0;
      stats.examplesReceived = 0;
      stats.examplesAnswered = 0;
      stats.batchSizes = [];
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
