/**
 * Remote models over the Open Inference Protocol (KServe v2 REST, DESIGN.md section 6): a {@link RemoteModel}
 * implements `Model.predict` by POSTing `{inputs: [{name, shape, datatype, data}]}` to
 * `/v2/models/{m}[/versions/{v}]/infer`. It reads the input name, shape and output from the model metadata
 * (`GET /v2/models/{m}`), checks readiness (`GET /v2/health/ready`), splits batches, times out every attempt,
 * retries network errors, timeouts, 5xx and 429 with exponential backoff and jitter (never other 4xx), enforces a
 * query budget before anything is sent, validates every response (JSON, shape, datatype, finite values) and
 * counts queries exactly. Only node:http / node:https are used.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { BulwarkError } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import { assertFinite, shapeStr, type Float32Tensor } from '../core/tensor.js';
import type { Model, OutputKind } from './model.js';

/** Options of {@link connectRemoteModel}. */
export interface RemoteModelOptions {
  /** Valid input range; default [0, 1]. */
  bounds?: [number, number];
  /** What the endpoint returns; default `logits`. */
  outputKind?: OutputKind;
  /** Input shape with -1 for the batch, when the metadata leaves dims unknown. */
  inputShape?: number[];
  /** Number of classes, when the metadata leaves it unknown (otherwise read from the first response). */
  numClasses?: number;
  /** Input tensor to feed; default the model's only input. */
  inputName?: string;
  /** Output tensor to read; default the first output of the metadata. */
  outputName?: string;
  /** Examples per request at most; default 64. */
  maxBatchSize?: number;
  /** Milliseconds an attempt may take, from connect to the last byte; default 30000. */
  timeoutMs?: number;
  /** Retries after a failed attempt (network error, timeout, 5xx, 429); default 3. */
  retries?: number;
  /** Base of the exponential backoff in ms (attempt a waits base·2^a, with jitter in [50%, 100%]); default 100. */
  backoffMs?: number;
  /** Cap of one backoff wait in ms; default 5000. */
  maxBackoffMs?: number;
  /** Examples this model may send in total, retries included; a predict that would pass it throws BULWARK_E_QUERY_BUDGET. Default Infinity. */
  maxQueries?: number;
  /** Extra request headers (e.g. authorization). */
  headers?: Record<string, string>;
  /** Seed of the backoff jitter; default 0. */
  seed?: number;
  /** Check `GET /v2/health/ready` when connecting; default true. */
  checkReady?: boolean;
  /** Largest response body accepted, in bytes; default 64 MiB. */
  maxResponseBytes?: number;
}

/** A parsed Open Inference Protocol model address. */
export interface RemoteAddress {
  /** Scheme, host and any path prefix before `/v2`, without a trailing slash. */
  base: string;
  model: string;
  version: string | undefined;
}

/** What a RemoteModel needs from the model metadata. */
export interface RemoteMetadata {
  inputName: string;
  inputDatatype: string;
  /** Input shape, -1 for the batch and unknown dims. */
  inputShape: number[];
  outputName: string | undefined;
  /** 0 when unknown (then read from the first response). */
  numClasses: number;
}

/** Datatypes accepted in responses (JSON numbers). */
const NUMERIC = new Set(['FP16', 'BF16', 'FP32', 'FP64', 'INT8', 'INT16', 'INT32', 'INT64', 'UINT8', 'UINT16', 'UINT32', 'UINT64']);
/** Input datatypes Bulwark can send (float data as JSON numbers). */
const FLOAT_IN = new Set(['FP32', 'FP64', 'FP16']);

/** Whether a model argument names a remote endpoint rather than a file. */
export function isRemoteModelUrl(s: string): boolean {
  return /^https?:\/\//i.test(s);
}

/**
 * Parses `http(s)://host[:port][/prefix]/v2/models/{m}[/versions/{v}][/infer|/ready]`.
 * @throws BulwarkError BULWARK_E_REMOTE_URL when the URL is not of that form
 * @example parseRemoteUrl('http://127.0.0.1:8080/v2/models/mnist') // { base: 'http://127.0.0.1:8080', model: 'mnist' }
 */
export function parseRemoteUrl(url: string): RemoteAddress {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new BulwarkError('BULWARK_E_REMOTE_URL', `${JSON.stringify(url)} is not a URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new BulwarkError('BULWARK_E_REMOTE_URL', `remote models are reached over http or https, got ${u.protocol}`);
  if (u.search || u.hash) throw new BulwarkError('BULWARK_E_REMOTE_URL', `the model URL must not carry a query string or fragment: ${url}`);
  const m = /^(.*?)\/v2\/models\/([^/]+)(?:\/versions\/([^/]+))?(?:\/(?:infer|ready))?\/?$/.exec(u.pathname);
  if (!m) throw new BulwarkError('BULWARK_E_REMOTE_URL', `${url} does not name a model: expected a path /v2/models/<name>[/versions/<v>]`);
  const model = decodeURIComponent(m[2]!);
  const version = m[3] === undefined ? undefined : decodeURIComponent(m[3]);
  return { base: `${u.protocol}//${u.host}${m[1]!.replace(/\/+$/, '')}`, model, version };
}

interface HttpReply {
  status: number;
  text: string;
  retryAfterMs: number | undefined;
}

/** A failed attempt: retryable or not, with what to report. */
class AttemptError extends Error {
  constructor(readonly kind: 'timeout' | 'network' | 'status', message: string, readonly retryable: boolean, readonly status?: number, readonly retryAfterMs?: number) {
    super(message);
  }
}

/**
 * The HTTP side of a remote model: one logical request with timeouts, retries, backoff and counters.
 * @internal shared by {@link RemoteModel} and {@link connectRemoteModel}
 */
export class OipClient {
  /** Requests sent (attempts). */
  requests = 0;
  /** Attempts that were retried. */
  retried = 0;
  /** Examples sent, retries included. */
  sentExamples = 0;
  readonly opts: TransportSettings;
  private readonly agent: http.Agent;
  private readonly rng: Rng;

  constructor(readonly address: RemoteAddress, options: RemoteModelOptions = {}) {
    this.opts = resolveTransport(options);
    this.rng = new Rng(options.seed ?? 0);
    this.agent = address.base.startsWith('https:') ? new https.Agent({ keepAlive: true, maxSockets: 4 }) : new http.Agent({ keepAlive: true, maxSockets: 4 });
  }

  /** Closes pooled connections. */
  close(): void {
    this.agent.destroy();
  }

  /**
   * One logical request with retries; returns the 2xx reply.
   * @param examples examples the body carries, checked against `budget` before every attempt and counted as sent
   */
  async call(method: 'GET' | 'POST', url: string, body: string | undefined, what: string, examples = 0, budget = Infinity): Promise<HttpReply> {
    let last: AttemptError | undefined;
    for (let attempt = 0; attempt <= this.opts.retries; attempt++) {
      if (attempt > 0) {
        this.retried++;
        await sleep(this.backoff(attempt - 1, last?.retryAfterMs));
      }
      if (examples > 0) {
        if (this.sentExamples + examples > budget) {
          throw new BulwarkError('BULWARK_E_QUERY_BUDGET', `the remote model's query budget of ${budget} examples would be exceeded by a retry (${this.sentExamples} sent, the retry needs ${examples})`, {
            details: { budget, sent: this.sentExamples, needed: examples },
          });
        }
        this.sentExamples += examples;
      }
      this.requests++;
      try {
        const reply = await this.attempt(method, url, body);
        if (reply.status >= 200 && reply.status < 300) return reply;
        const msg = serverMessage(reply.text);
        if (reply.status === 429 || reply.status >= 500) {
          last = new AttemptError('status', `HTTP ${reply.status}${msg ? `: ${msg}` : ''}`, true, reply.status, reply.retryAfterMs);
          continue;
        }
        throw new BulwarkError('BULWARK_E_REMOTE_REJECTED', `${what} at ${url} was refused with HTTP ${reply.status}${msg ? `: ${msg}` : ''}`, { details: { status: reply.status, url } });
      } catch (e) {
        if (!(e instanceof AttemptError)) throw e;
        if (!e.retryable) throw new BulwarkError('BULWARK_E_REMOTE_UNAVAILABLE', `${what} at ${url} could not be sent: ${e.message}`, { details: { url } });
        last = e;
      }
    }
    const tries = this.opts.retries + 1;
    if (last?.kind === 'timeout') {
      throw new BulwarkError('BULWARK_E_REMOTE_TIMEOUT', `${what} at ${url} timed out after ${this.opts.timeoutMs} ms on all ${tries} attempts`, { details: { url, timeoutMs: this.opts.timeoutMs, attempts: tries } });
    }
    throw new BulwarkError('BULWARK_E_REMOTE_UNAVAILABLE', `${what} at ${url} failed on all ${tries} attempts; last: ${last?.message ?? 'unknown error'}`, { details: { url, attempts: tries, status: last?.status } });
  }
  /** Backoff before retry a (0-based): base·2^a capped, times a jitter in [0.5, 1); a server's Retry-After wins when longer. */
  private backoff(a: number, retryAfterMs: number | undefined): number {
    const exp = Math.min(this.opts.maxBackoffMs, this.opts.backoffMs * 2 ** a);
    const wait = exp * this.rng.uniform(0.5, 1);
    return retryAfterMs === undefined ? wait : Math.min(this.opts.maxBackoffMs, Math.max(wait, retryAfterMs));
  }

  /** One HTTP exchange under the timeout (AbortController over connect, send and the whole body). */
  private attempt(method: 'GET' | 'POST', url: string, body: string | undefined): Promise<HttpReply> {
    return new Promise<HttpReply>((resolve, reject) => {
      const ac = new AbortController();
      let settled = false;
      let timedOut = false;
      const finish = (err: AttemptError | undefined, reply?: HttpReply): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(reply!);
      };
      const timer = setTimeout(() => {
        timedOut = true;
        ac.abort();
        finish(new AttemptError('timeout', `no complete answer within ${this.opts.timeoutMs} ms`, true));
      }, this.opts.timeoutMs);
      const mod = url.startsWith('https:') ? https : http;
      const headers: Record<string, string> = { accept: 'application/json', ...this.opts.headers };
      if (body !== undefined) {
        headers['content-type'] = 'application/json';
        headers['content-length'] = String(Buffer.byteLength(body));
      }
      let req: http.ClientRequest;
      try {
        req = mod.request(url, { method, headers, agent: this.agent, signal: ac.signal }, (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > this.opts.maxResponseBytes) {
              finish(new AttemptError('status', `response larger than ${this.opts.maxResponseBytes} bytes`, false));
              req.destroy();
              return;
            }
            chunks.push(c);
          });
          res.on('end', () => {
            const ra = Number(res.headers['retry-after']);
            finish(undefined, { status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), retryAfterMs: Number.isFinite(ra) && ra >= 0 ? ra * 1000 : undefined });
          });
          res.on('error', (e) => finish(new AttemptError(timedOut ? 'timeout' : 'network', `response interrupted: ${e.message}`, true)));
          res.on('close', () => {
            if (!res.complete) finish(new AttemptError(timedOut ? 'timeout' : 'network', 'connection closed before the response was complete', true));
          });
        });
      } catch (e) {
        finish(new AttemptError('network', (e as Error).message, false));
        return;
      }
      req.on('error', (e: NodeJS.ErrnoException) => finish(new AttemptError(timedOut ? 'timeout' : 'network', `${e.code ?? 'error'}: ${e.message}`, true)));
      req.end(body);
    }).catch((e: unknown) => {
      if (e instanceof AttemptError && e.kind === 'status' && !e.retryable) {
        throw new BulwarkError('BULWARK_E_REMOTE_RESPONSE', `${this.address.model}: ${e.message}`, { hint: 'Raise maxResponseBytes if the output is legitimately this large.' });
      }
      throw e;
    });
  }

}

/**
 * A model served over the Open Inference Protocol. Build it with {@link connectRemoteModel}, which reads the
 * metadata. `queries` counts examples answered; `sentExamples` counts examples sent, failed attempts and retries
 * included (what the server saw).
 */
export class RemoteModel implements Model {
  readonly inputShape: number[];
  numClasses: number;
  readonly bounds: [number, number];
  readonly outputKind: OutputKind;
  /** Examples answered (valid responses). */
  queries = 0;
  readonly address: RemoteAddress;
  readonly inputName: string;
  readonly inputDatatype: string;
  readonly outputName: string | undefined;
  /** Budget of examples sent, retries included. */
  readonly maxQueries: number;
  /** The transport (timeouts, retries, counters). */
  readonly client: OipClient;

  /** Use {@link connectRemoteModel}; this constructor takes already-resolved metadata. */
  constructor(client: OipClient, meta: RemoteMetadata, options: RemoteModelOptions = {}) {
    this.client = client;
    this.address = client.address;
    this.inputName = meta.inputName;
    this.inputDatatype = meta.inputDatatype;
    this.inputShape = meta.inputShape;
    this.outputName = meta.outputName;
    this.numClasses = meta.numClasses;
    this.bounds = options.bounds ?? [0, 1];
    this.outputKind = options.outputKind ?? 'logits';
    this.maxQueries = options.maxQueries ?? Infinity;
    if (!(this.maxQueries >= 0)) throw new BulwarkError('BULWARK_E_ARG', `remote model option maxQueries must be >= 0, got ${options.maxQueries}`);
  }

  /** Examples sent, failed attempts and retries included (what the server saw); the budget counts these. */
  get sentExamples(): number {
    return this.client.sentExamples;
  }

  /** HTTP requests sent (attempts, metadata calls included). */
  get requests(): number {
    return this.client.requests;
  }

  /** Attempts that were retried. */
  get retried(): number {
    return this.client.retried;
  }

  /** The infer endpoint. */
  get inferUrl(): string {
    return `${modelPath(this.address)}/infer`;
  }

  /**
   * Sends x in requests of at most `maxBatchSize` examples and returns the output tensor [N, K].
   * @throws BulwarkError BULWARK_E_SHAPE / BULWARK_E_NONFINITE (bad input), BULWARK_E_QUERY_BUDGET (before sending),
   *   BULWARK_E_REMOTE_TIMEOUT, BULWARK_E_REMOTE_UNAVAILABLE, BULWARK_E_REMOTE_REJECTED, BULWARK_E_REMOTE_RESPONSE
   */
  async predict(x: Float32Tensor): Promise<Float32Tensor> {
    this.checkInput(x);
    const n = x.shape[0]!;
    if (this.sentExamples + n > this.maxQueries) {
      throw new BulwarkError('BULWARK_E_QUERY_BUDGET', `the remote model's query budget of ${this.maxQueries} examples would be exceeded: ${this.sentExamples} sent, this call needs ${n}`, {
        details: { budget: this.maxQueries, sent: this.sentExamples, needed: n },
      });
    }
    const row = x.data.length / n;
    const parts: Float32Array[] = [];
    const per = this.client.opts.maxBatchSize;
    for (let s = 0; s < n; s += per) {
      const e = Math.min(n, s + per);
      parts.push(await this.inferBatch(x.data.subarray(s * row, e * row), [e - s, ...x.shape.slice(1)]));
    }
    const k = this.numClasses;
    const data = new Float32Array(n * k);
    let off = 0;
    for (const p of parts) {
      data.set(p, off);
      off += p.length;
    }
    return { data, shape: [n, k], dtype: 'float32' };
  }

  /** Whether the server reports ready (`GET /v2/health/ready` answers 2xx), with the retry policy. */
  async ready(): Promise<boolean> {
    try {
      await this.client.call('GET', `${this.address.base}/v2/health/ready`, undefined, 'health check');
      return true;
    } catch (e) {
      if (e instanceof BulwarkError && e.code === 'BULWARK_E_REMOTE_REJECTED') return false;
      throw e;
    }
  }

  /** Closes pooled connections. */
  close(): void {
    this.client.close();
  }

  private async inferBatch(data: Float32Array, shape: number[]): Promise<Float32Array> {
    const m = shape[0]!;
    // JSON prints each float32 (widened to a double) in its shortest exact form, so the server reads the same bits.
    const body = JSON.stringify({
      inputs: [{ name: this.inputName, shape, datatype: this.inputDatatype, data: Array.from(data) }],
      ...(this.outputName ? { outputs: [{ name: this.outputName }] } : {}),
    });
    const reply = await this.client.call('POST', `${this.address.base}${this.inferUrl}`, body, 'inference', m, this.maxQueries);
    const out = this.parseInfer(reply.text, m);
    this.queries += m;
    return out;
  }

  /** Validates an inference response and returns its output data as float32 [m × K]. */
  private parseInfer(text: string, m: number): Float32Array {
    const bad = (msg: string): never => {
      throw new BulwarkError('BULWARK_E_REMOTE_RESPONSE', `${this.address.model}: ${msg}`, { details: { url: this.inferUrl } });
    };
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return bad(`the inference response is not JSON (starts ${JSON.stringify(text.slice(0, 60))})`);
    }
    if (!isObject(json)) return bad('the inference response is not a JSON object');
    const outputs = json['outputs'];
    if (!Array.isArray(outputs) || outputs.length === 0) return bad('the inference response has no "outputs" array');
    const out = this.outputName ? outputs.find((o) => isObject(o) && o['name'] === this.outputName) : outputs[0];
    if (!isObject(out)) return bad(this.outputName ? `the inference response has no output named ${JSON.stringify(this.outputName)}` : 'the first output is not an object');
    const dt = out['datatype'];
    if (typeof dt !== 'string' || !NUMERIC.has(dt)) return bad(`output datatype ${JSON.stringify(dt)} is not numeric (expected FP32 or another numeric type)`);
    const params = out['parameters'];
    if (isObject(params) && params['binary_data_size'] !== undefined) return bad('the output uses the binary data extension, which Bulwark does not read; ask for JSON data');
    const shape = out['shape'];
    if (!Array.isArray(shape) || shape.some((d) => typeof d !== 'number' || !Number.isInteger(d) || d < 0)) return bad(`output shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
    const k = shape.length === 2 ? (shape[1] as number) : -1;
    if (shape.length !== 2 || shape[0] !== m || k < 1) return bad(`output shape ${shapeStr(shape as number[])} does not fit a batch of ${m}: expected [${m}, K]`);
    if (this.numClasses > 0 && k !== this.numClasses) return bad(`output shape ${shapeStr(shape as number[])}: expected ${this.numClasses} classes per example`);
    const flat: number[] = [];
    if (!flatten(out['data'], flat, m * k, 0)) return bad(`output data is not an array of ${m * k} numbers`);
    if (flat.length !== m * k) return bad(`output data has ${flat.length} values; shape ${shapeStr(shape as number[])} needs ${m * k}`);
    const res = new Float32Array(flat);
    for (let i = 0; i < res.length; i++) {
      if (!Number.isFinite(res[i]!)) return bad(`output data holds a non-finite value (${flat[i]}) at index ${i}`);
    }
    if (this.numClasses === 0) this.numClasses = k;
    return res;
  }

  private checkInput(x: Float32Tensor): void {
    if (!(x.data instanceof Float32Array)) throw new BulwarkError('BULWARK_E_DTYPE', 'input must be float32');
    const want = this.inputShape;
    const got = x.shape;
    if (got.length !== want.length || got.some((d, i) => i > 0 && want[i]! > 0 && d !== want[i])) {
      throw new BulwarkError('BULWARK_E_SHAPE', `input has shape ${shapeStr(got)}; the remote model expects ${shapeStr(want.map((d, i) => (i === 0 && d < 0 ? 'N' : d < 0 ? '?' : d)))}`);
    }
    if (got[0] === 0) throw new BulwarkError('BULWARK_E_SHAPE', 'input has no examples (batch of 0)');
    assertFinite(x.data, 'input');
  }
}

/** Resolved transport settings. */
export interface TransportSettings {
  maxBatchSize: number;
  timeoutMs: number;
  retries: number;
  backoffMs: number;
  maxBackoffMs: number;
  maxResponseBytes: number;
  headers: Record<string, string>;
}

function resolveTransport(o: RemoteModelOptions): TransportSettings {
  const int = (v: number | undefined, def: number, name: string, min: number): number => {
    const r = v ?? def;
    if (!Number.isInteger(r) || r < min) throw new BulwarkError('BULWARK_E_ARG', `remote model option ${name} must be an integer >= ${min}, got ${v}`);
    return r;
  };
  return {
    maxBatchSize: int(o.maxBatchSize, 64, 'maxBatchSize', 1),
    timeoutMs: int(o.timeoutMs, 30000, 'timeoutMs', 1),
    retries: int(o.retries, 3, 'retries', 0),
    backoffMs: int(o.backoffMs, 100, 'backoffMs', 0),
    maxBackoffMs: int(o.maxBackoffMs, 5000, 'maxBackoffMs', 0),
    maxResponseBytes: int(o.maxResponseBytes, 64 << 20, 'maxResponseBytes', 1),
    headers: { ...(o.headers ?? {}) },
  };
}

function modelPath(a: RemoteAddress): string {
  return `/v2/models/${encodeURIComponent(a.model)}${a.version === undefined ? '' : `/versions/${encodeURIComponent(a.version)}`}`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Flattens nested arrays of numbers (row-major) into out; false on a non-number or more than `limit` values. */
function flatten(v: unknown, out: number[], limit: number, depth: number): boolean {
  if (!Array.isArray(v) || depth > 8) return false;
  for (const e of v) {
    if (typeof e === 'number') {
      if (out.length >= limit) return false;
      out.push(e);
    } else if (!flatten(e, out, limit, depth + 1)) return false;
  }
  return true;
}

/** The `error` field of a KServe v2 error body, else the start of the body. */
function serverMessage(text: string): string {
  try {
    const j = JSON.parse(text) as unknown;
    if (isObject(j) && typeof j['error'] === 'string') return j['error'].slice(0, 300);
  } catch {
    // not JSON: fall through to the raw text
  }
  return text.slice(0, 120).trim();
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Connects to a model served over the Open Inference Protocol: checks readiness, reads the metadata (input name,
 * datatype and shape; output name and class count) and returns a {@link RemoteModel}.
 * @param url `http(s)://host[:port]/v2/models/{m}[/versions/{v}]` (an `/infer` suffix is accepted)
 * @param options transport (batch size, timeout, retries, backoff, budget, headers) and model facts (bounds, output kind)
 * @returns the connected model
 * @throws BulwarkError BULWARK_E_REMOTE_URL, BULWARK_E_REMOTE_UNAVAILABLE, BULWARK_E_REMOTE_TIMEOUT,
 *   BULWARK_E_REMOTE_REJECTED (not ready, unknown model), BULWARK_E_REMOTE_RESPONSE (bad metadata), BULWARK_E_MODEL
 * @example const m = await connectRemoteModel('http://127.0.0.1:8080/v2/models/mnist', { maxQueries: 100000 });
 */
export async function connectRemoteModel(url: string, options: RemoteModelOptions = {}): Promise<RemoteModel> {
  const address = parseRemoteUrl(url);
  const client = new OipClient(address, options);
  try {
    if (options.checkReady ?? true) await client.call('GET', `${address.base}/v2/health/ready`, undefined, 'readiness check (GET /v2/health/ready)');
    const meta = await client.call('GET', `${address.base}${modelPath(address)}`, undefined, 'metadata request');
    return new RemoteModel(client, readMetadata(meta.text, address, options), options);
  } catch (e) {
    client.close();
    throw e;
  }
}

/** Reads KServe v2 model metadata into what a RemoteModel needs. */
function readMetadata(text: string, address: RemoteAddress, options: RemoteModelOptions): RemoteMetadata {
  const bad = (msg: string): never => {
    throw new BulwarkError('BULWARK_E_REMOTE_RESPONSE', `metadata of ${address.model}: ${msg}`);
  };
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch {
    return bad(`not JSON (starts ${JSON.stringify(text.slice(0, 60))})`);
  }
  if (!isObject(j)) return bad('not a JSON object');
  const inputs = j['inputs'];
  if (!Array.isArray(inputs) || inputs.length === 0 || !inputs.every(isObject)) return bad('no "inputs" list');
  const ins = inputs as Record<string, unknown>[];
  let input: Record<string, unknown> | undefined;
  if (options.inputName) {
    input = ins.find((i) => i['name'] === options.inputName);
    if (!input) throw new BulwarkError('BULWARK_E_MODEL', `the remote model has no input named ${JSON.stringify(options.inputName)}; it has ${ins.map((i) => JSON.stringify(i['name'])).join(', ')}`);
  } else if (ins.length !== 1) {
    throw new BulwarkError('BULWARK_E_MODEL', `the remote model has ${ins.length} inputs (${ins.map((i) => JSON.stringify(i['name'])).join(', ')}); Bulwark's Model takes exactly one`, { hint: 'Name the image input with the inputName option.' });
  } else input = ins[0]!;
  const name = input['name'];
  if (typeof name !== 'string' || name === '') return bad('an input has no name');
  const dt = input['datatype'];
  if (typeof dt !== 'string' || !FLOAT_IN.has(dt)) {
    throw new BulwarkError('BULWARK_E_MODEL', `the remote model's input ${name} has datatype ${JSON.stringify(dt)}; Bulwark sends floating-point images (FP32, FP64 or FP16)`);
  }
  const shape = input['shape'];
  if (!Array.isArray(shape) || shape.some((d) => typeof d !== 'number' || !Number.isInteger(d) || d < -1)) return bad(`input shape ${JSON.stringify(shape)} is not a list of integers (-1 for dynamic)`);
  let inputShape = (shape as number[]).map((d, i) => (i === 0 || d <= 0 ? -1 : d));
  if (options.inputShape) {
    if (inputShape.length > 0 && options.inputShape.length !== inputShape.length) {
      throw new BulwarkError('BULWARK_E_SHAPE', `inputShape ${shapeStr(options.inputShape)} has rank ${options.inputShape.length}; the remote model's input ${name} has rank ${inputShape.length}`);
    }
    inputShape = options.inputShape.map((d, i) => (i === 0 ? -1 : d));
  }
  if (inputShape.length < 2) return bad(`input shape ${JSON.stringify(shape)} has no batch dimension`);
  const outputs = Array.isArray(j['outputs']) ? (j['outputs'] as unknown[]).filter(isObject) : [];
  let output: Record<string, unknown> | undefined;
  if (options.outputName) {
    output = outputs.find((o) => o['name'] === options.outputName);
    if (!output && outputs.length > 0) throw new BulwarkError('BULWARK_E_MODEL', `the remote model has no output named ${JSON.stringify(options.outputName)}; it has ${outputs.map((o) => JSON.stringify(o['name'])).join(', ')}`);
  } else output = outputs[0];
  const outName = options.outputName ?? (typeof output?.['name'] === 'string' ? (output['name'] as string) : undefined);
  const oshape = output?.['shape'];
  const last = Array.isArray(oshape) && oshape.length >= 2 ? oshape[oshape.length - 1] : undefined;
  const numClasses = options.numClasses ?? (typeof last === 'number' && last > 0 ? last : 0);
  return { inputName: name, inputDatatype: dt, inputShape, outputName: outName, numClasses };
}
