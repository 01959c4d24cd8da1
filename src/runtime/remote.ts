/**
 * Remote models over the Open Inference Protocol (KServe v2 REST, DESIGN.md section 6): a {@link RemoteModel}
 * implements `Model.predict` by POSTing `{inputs: [{name, shape, datatype, data}]}` to
 * `/v2/models/{m}[/versions/{v}]/infer`. It reads the input name, shape and output from the model metadata
 * (`GET /v2/models/{m}`), checks readiness (`GET /v2/health/ready`), splits batches, times out every attempt,
 * retries network errors, timeouts, 5xx and 429 with exponential backoff and jitter (never other 4xx), enforces a
 * query budget before anything is sent, validates every response (JSON, shape, datatype, finite values) and
 * counts queries exactly. Redirects are refused, never followed; credentials in the URL are refused (headers carry
 * them), and URLs are printed redacted. Only node:http / node:https are used.
 */
import { redactUrl } from '../core/urls.js';
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
  /** Extra request headers (e.g. authorization); names must be HTTP tokens, values free of control characters. Never logged. */
  headers?: Record<string, string>;
  /** Seed of the backoff jitter; default 0. */
  seed?: number;
  /** Check `GET /v2/health/ready` when connecting; default true. */
  checkReady?: boolean;
  /**
   * Largest response body accepted, in bytes, for every request. When not given, an inference response may take
   * {@link RESPONSE_FLOOR_BYTES} plus {@link RESPONSE_BYTES_PER_VALUE} per expected value (batch × classes), at most
   * 64 MiB, and a metadata or health response 4 MiB; larger bodies are refused before they are parsed.
   */
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
    throw new BulwarkError('BULWARK_E_REMOTE_URL', `${JSON.stringify(redactUrl(url))} is not a URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new BulwarkError('BULWARK_E_REMOTE_URL', `remote models are reached over http or https, got ${u.protocol}`);
  if (u.username !== '' || u.password !== '') {
    throw new BulwarkError('BULWARK_E_REMOTE_URL', `the model URL ${redactUrl(url)} carries credentials (user:password@); credentials in model URLs are not supported (they would be visible in the process list and logs)`, {
      hint: `Drop them from the URL and send an Authorization header instead: ${HEADER_HINT}.`,
    });
  }
  if (u.search || u.hash) throw new BulwarkError('BULWARK_E_REMOTE_URL', `the model URL must not carry a query string or fragment: ${redactUrl(url)}`);
  const m = /^(.*?)\/v2\/models\/([^/]+)(?:\/versions\/([^/]+))?(?:\/(?:infer|ready))?\/?$/.exec(u.pathname);
  if (!m) throw new BulwarkError('BULWARK_E_REMOTE_URL', `${redactUrl(url)} does not name a model: expected a path /v2/models/<name>[/versions/<v>]`);
  const model = decodeURIComponent(m[2]!);
  const version = m[3] === undefined ? undefined : decodeURIComponent(m[3]);
  return { base: `${u.protocol}//${u.host}${m[1]!.replace(/\/+$/, '')}`, model, version };
}

/** Where request headers come from on the command line (named in hints). */
const HEADER_HINT = "bulwark attack --header 'Authorization: Basic <base64 of user:password>', or the same line in the BULWARK_REMOTE_HEADERS environment variable to keep it out of the process list (library: the headers option)";

/** Redaction of URLs for messages lives in core/urls.ts; re-exported for the client's users. */
export { redactUrl };

/** Header names Bulwark sets itself or that change the framing; refused in the headers option. */
const RESERVED_HEADERS = new Set(['host', 'content-length', 'content-type', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'te', 'trailer', 'expect', 'proxy-connection']);
/** An HTTP field name (RFC 9110 token). */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * Checks one request header; `where` names its source in messages. The value is never echoed.
 * @throws BulwarkError BULWARK_E_ARG for a name that is not an HTTP token, a reserved name, or a value with control characters
 */
export function checkHeader(name: string, value: string, where: string): void {
  if (!TOKEN.test(name)) throw new BulwarkError('BULWARK_E_ARG', `${where}: the header name is not a valid HTTP field name (letters, digits and !#$%&'*+-.^_\`|~, no spaces)`, { hint: "Write each header as 'Name: value', e.g. 'Authorization: Bearer <token>'." });
  if (RESERVED_HEADERS.has(name.toLowerCase())) throw new BulwarkError('BULWARK_E_ARG', `${where}: the header ${name} is set by Bulwark itself and cannot be given`, { hint: 'Give only extra headers such as Authorization or an API key header.' });
  // field-value (RFC 9110 section 5.5): visible characters, spaces and tabs; CR/LF would split the request
  if (/[\u0000-\u0008\u000a-\u001f\u007f]/.test(value)) throw new BulwarkError('BULWARK_E_ARG', `${where}: the value of header ${name} holds a control character (line break or NUL); the value is not shown`, { hint: "Give the value on one line, e.g. 'Authorization: Bearer <token>'." });
}

/**
 * Parses `Name: value` header lines (a repeated --header flag, or the lines of BULWARK_REMOTE_HEADERS); blank
 * lines are skipped. `where(i)` names line i in messages. Later lines replace earlier ones of the same name.
 * @throws BulwarkError BULWARK_E_ARG naming the line, never echoing its value
 */
export function parseHeaderLines(lines: readonly string[], where: (i: number) => string, into: Record<string, string> = {}): Record<string, string> {
  lines.forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    if (line.trim() === '') return;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new BulwarkError('BULWARK_E_ARG', `${where(i)} must be 'Name: value' (no name before a colon); the text is not shown in case it is a secret`, { hint: "e.g. --header 'Authorization: Bearer <token>'." });
    const name = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    checkHeader(name, value, where(i));
    for (const k of Object.keys(into)) if (k.toLowerCase() === name.toLowerCase()) delete into[k];
    into[name] = value;
  });
  return into;
}

/** Longest wait a Retry-After may ask for, in seconds, before the backoff cap applies (one day). */
const MAX_RETRY_AFTER_S = 86400;
const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];

/**
 * The wait a Retry-After header asks for, in ms (RFC 9110 section 10.2.3): delay-seconds, or an HTTP-date in any
 * of its three forms (IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`, obsolete RFC 850 `Sunday, 06-Nov-94 08:49:37 GMT`
 * and asctime `Sun Nov  6 08:49:37 1994`), counted from `now`; a date in the past is 0. At most one day; undefined
 * when absent or malformed.
 * @example parseRetryAfter('120') // 120000
 */
export function parseRetryAfter(v: string | undefined, now = Date.now()): number | undefined {
  if (v === undefined) return undefined;
  const s = v.trim();
  if (/^\d+$/.test(s)) return Math.min(Number(s), MAX_RETRY_AFTER_S) * 1000;
  let d: RegExpExecArray | null;
  let day: number, mon: string, year: number, hh: number, mm: number, ss: number;
  if ((d = /^[A-Za-z]{3}, (\d{2}) ([A-Za-z]{3}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/.exec(s))) {
    [day, mon, year, hh, mm, ss] = [Number(d[1]), d[2]!, Number(d[3]), Number(d[4]), Number(d[5]), Number(d[6])];
  } else if ((d = /^[A-Za-z]{6,9}, (\d{2})-([A-Za-z]{3})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) GMT$/.exec(s))) {
    [day, mon, year, hh, mm, ss] = [Number(d[1]), d[2]!, Number(d[3]), Number(d[4]), Number(d[5]), Number(d[6])];
    // two-digit years: the most recent year with those digits that is not more than 50 years ahead (RFC 9110)
    const cur = new Date(now).getUTCFullYear();
    year += Math.floor(cur / 100) * 100;
    if (year > cur + 50) year -= 100;
  } else if ((d = /^[A-Za-z]{3} ([A-Za-z]{3}) ([ \d]\d) (\d{2}):(\d{2}):(\d{2}) (\d{4})$/.exec(s))) {
    [mon, day, hh, mm, ss, year] = [d[1]!, Number(d[2]!.trim()), Number(d[3]), Number(d[4]), Number(d[5]), Number(d[6])];
  } else return undefined;
  const month = MONTHS.indexOf(mon.toLowerCase());
  if (month < 0 || day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60) return undefined;
  const t = Date.UTC(year, month, day, hh, mm, Math.min(ss, 59));
  return Math.min(Math.max(0, t - now), MAX_RETRY_AFTER_S * 1000);
}

interface HttpReply {
  status: number;
  text: string;
  retryAfterMs: number | undefined;
  /** The Location header of a redirect. */
  location: string | undefined;
}

/** The largest body one request may bring back, and why (for the message). */
export interface ResponseLimit {
  bytes: number;
  why: string;
}

/** Room for the rest of an inference response (names, shape, other fields) when its limit is derived. */
export const RESPONSE_FLOOR_BYTES = 1 << 20;
/** Room per expected output value when an inference response limit is derived (pretty-printed, nested, FP64 text fits). */
export const RESPONSE_BYTES_PER_VALUE = 64;
/** Default limit of a response when nothing smaller is derived. */
const DEFAULT_MAX_RESPONSE = 64 << 20;
/** Default limit of a metadata or health response. */
const METADATA_MAX_RESPONSE = 4 << 20;

/** A failed attempt: retryable or not, with what to report. */
class AttemptError extends Error {
  constructor(readonly kind: 'timeout' | 'network' | 'status' | 'too-large', message: string, readonly retryable: boolean, readonly status?: number, readonly retryAfterMs?: number) {
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
  async call(method: 'GET' | 'POST', url: string, body: string | undefined, what: string, examples = 0, budget = Infinity, limit: ResponseLimit = this.metadataLimit()): Promise<HttpReply> {
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
        const reply = await this.attempt(method, url, body, limit);
        if (reply.status >= 200 && reply.status < 300) return reply;
        if (reply.status >= 300 && reply.status < 400) throw redirectError(what, url, reply);
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
  /** The limit of a metadata or health response: the user's maxResponseBytes, else 4 MiB. */
  metadataLimit(): ResponseLimit {
    return this.opts.maxResponseBytesGiven ? { bytes: this.opts.maxResponseBytes, why: 'the set limit (--max-response-bytes, maxResponseBytes)' } : { bytes: Math.min(this.opts.maxResponseBytes, METADATA_MAX_RESPONSE), why: 'the limit for metadata' };
  }

  /**
   * The limit of an inference response for m examples of k classes (k 0 when unknown): the user's maxResponseBytes,
   * else {@link RESPONSE_FLOOR_BYTES} + {@link RESPONSE_BYTES_PER_VALUE}·m·k, at most 64 MiB.
   */
  inferLimit(m: number, k: number): ResponseLimit {
    if (this.opts.maxResponseBytesGiven) return { bytes: this.opts.maxResponseBytes, why: 'the set limit (--max-response-bytes, maxResponseBytes)' };
    if (k <= 0) return { bytes: this.opts.maxResponseBytes, why: 'the default limit' };
    const derived = RESPONSE_FLOOR_BYTES + RESPONSE_BYTES_PER_VALUE * m * k;
    return derived < this.opts.maxResponseBytes ? { bytes: derived, why: `the limit for ${m}×${k} values` } : { bytes: this.opts.maxResponseBytes, why: 'the default limit' };
  }

  /** Backoff before retry a (0-based): base·2^a capped, times a jitter in [0.5, 1); a server's Retry-After wins when longer. */
  private backoff(a: number, retryAfterMs: number | undefined): number {
    const exp = Math.min(this.opts.maxBackoffMs, this.opts.backoffMs * 2 ** a);
    const wait = exp * this.rng.uniform(0.5, 1);
    return retryAfterMs === undefined ? wait : Math.min(this.opts.maxBackoffMs, Math.max(wait, retryAfterMs));
  }

  /** One HTTP exchange under the timeout (AbortController over connect, send and the whole body). */
  private attempt(method: 'GET' | 'POST', url: string, body: string | undefined, limit: ResponseLimit): Promise<HttpReply> {
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
          const tooLarge = (what: string): void => {
            finish(new AttemptError('too-large', `the response (${what}) is larger than ${limit.why}, ${limit.bytes} bytes; it was cut off, not parsed`, false));
            req.destroy();
          };
          const declared = Number(res.headers['content-length']);
          if (Number.isFinite(declared) && declared > limit.bytes) {
            tooLarge(`Content-Length ${declared} bytes`);
            return;
          }
          res.on('data', (c: Buffer) => {
            if (settled) return;
            size += c.length;
            if (size > limit.bytes) {
              tooLarge(`over ${limit.bytes} bytes received`);
              return;
            }
            chunks.push(c);
          });
          res.on('end', () => {
            const ra = res.headers['retry-after'];
            finish(undefined, { status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), retryAfterMs: parseRetryAfter(typeof ra === 'string' ? ra : undefined), location: res.headers.location });
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
      if (e instanceof AttemptError && e.kind === 'too-large') {
        throw new BulwarkError('BULWARK_E_REMOTE_RESPONSE', `${this.address.model}: ${e.message}`, {
          hint: 'If the output is legitimately this large, raise the limit: bulwark attack --max-response-bytes B (library: the maxResponseBytes option).',
          details: { limit: limit.bytes },
        });
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
    const reply = await this.client.call('POST', `${this.address.base}${this.inferUrl}`, body, 'inference', m, this.maxQueries, this.client.inferLimit(m, this.numClasses));
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
  /** maxResponseBytes was given (then it is the limit of every response, none is derived). */
  maxResponseBytesGiven: boolean;
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
    maxResponseBytes: int(o.maxResponseBytes, DEFAULT_MAX_RESPONSE, 'maxResponseBytes', 1),
    maxResponseBytesGiven: o.maxResponseBytes !== undefined,
    headers: checkedHeaders(o.headers),
  };
}

function checkedHeaders(h: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h ?? {})) {
    if (typeof v !== 'string') throw new BulwarkError('BULWARK_E_ARG', `remote model option headers: the value of ${TOKEN.test(k) ? k : 'a header'} must be a string`);
    checkHeader(k, v, 'remote model option headers');
    out[k] = v;
  }
  return out;
}

/** A 3xx answer: redirects are never followed (they could carry inputs and the Authorization header elsewhere). */
function redirectError(what: string, url: string, reply: HttpReply): BulwarkError {
  let location: string | undefined;
  if (reply.location !== undefined) {
    let abs = reply.location;
    try {
      abs = new URL(reply.location, url).href;
    } catch {
      // not a URL: shown redacted as given
    }
    location = redactUrl(abs).slice(0, 300);
  }
  return new BulwarkError('BULWARK_E_REMOTE_REJECTED', `${what} at ${redactUrl(url)} was answered with a redirect (HTTP ${reply.status}${location !== undefined ? ` to ${JSON.stringify(location)}` : ', no Location'}); Bulwark does not follow redirects`, {
    hint: 'Give the final URL (the redirect target, if you trust it) as the model URL; redirects are not followed so that inputs and headers such as Authorization never go to another address.',
    details: { status: reply.status, url: redactUrl(url), ...(location !== undefined ? { location } : {}) },
  });
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
