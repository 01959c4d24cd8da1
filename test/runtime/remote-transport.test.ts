/**
 * The remote model transport against a small in-process KServe v2 server on 127.0.0.1 (no ONNX model behind it):
 * credentials in URLs, redirects, response-size limits derived from the request, Retry-After as an HTTP date,
 * request headers, and the `attack` flags that control all of it.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { BulwarkError } from '../../src/core/errors.js';
import type { Float32Tensor } from '../../src/core/tensor.js';
import { connectRemoteModel, parseHeaderLines, parseRemoteUrl, parseRetryAfter, redactUrl, RESPONSE_BYTES_PER_VALUE, RESPONSE_FLOOR_BYTES } from '../../src/runtime/remote.js';
import { assertUserError, fails, lastJson, runCli } from '../helpers.js';

type Mode = 'ok' | 'hang' | '429date' | 'redirect' | 'redirect-relative' | 'huge' | 'huge-chunked' | 'auth';

const K = 10;
let mode: Mode = 'ok';
let server: http.Server;
let base = '';
/** Inference requests received, and the headers of the last request of any kind. */
const seen = { infer: 0, requests: 0, headers: {} as http.IncomingHttpHeaders };

function answer(res: http.ServerResponse, status: number, body: string, headers: Record<string, string> = {}, chunked = false): void {
  res.writeHead(status, { 'content-type': 'application/json', ...(chunked ? {} : { 'content-length': String(Buffer.byteLength(body)) }), ...headers });
  if (!chunked) return void res.end(body);
  // several writes without a Content-Length: the client has to count the bytes itself
  for (let i = 0; i < body.length; i += 1 << 16) res.write(body.slice(i, i + (1 << 16)));
  res.end();
}

before(async () => {
  server = http.createServer((req, res) => {
    seen.requests++;
    seen.headers = req.headers;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (mode === 'auth' && req.headers.authorization !== 'Bearer t0ken') return answer(res, 401, '{"error":"auth required"}');
      if (req.url === '/v2/health/ready') return answer(res, 200, '{}');
      const m = /^\/v2\/models\/m(\/infer)?$/.exec(req.url ?? '');
      if (!m) return answer(res, 404, '{"error":"no such model"}');
      if (!m[1]) {
        return answer(res, 200, JSON.stringify({ name: 'm', inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 1, 28, 28] }], outputs: [{ name: 'output', datatype: 'FP32', shape: [-1, K] }] }));
      }
      seen.infer++;
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { inputs: { shape: number[]; data: number[] }[] };
      const n = body.inputs[0]!.shape[0]!;
      const data: number[] = [];
      // a fixed linear score of the mean pixel, so predictions depend on the input
      for (let e = 0; e < n; e++) {
        let s = 0;
        for (let j = 0; j < 784; j++) s += body.inputs[0]!.data[e * 784 + j]!;
        for (let k = 0; k < K; k++) data.push(((k + 1) * s) / 784 - k);
      }
      const good = (d: unknown) => JSON.stringify({ model_name: 'm', outputs: [{ name: 'output', datatype: 'FP32', shape: [n, K], data: d }] });
      switch (mode) {
        case 'hang':
          return; // never answer
        case '429date':
          return answer(res, 429, '{"error":"slow down"}', { 'retry-after': new Date(Date.now() + 2000).toUTCString() });
        case 'redirect':
          return answer(res, 307, '', { location: 'http://admin:pa55word@127.0.0.2:9/v2/models/m/infer?token=t0psecret' });
        case 'redirect-relative':
          return answer(res, 301, '', { location: '/v2/models/other/infer' });
        case 'huge':
        case 'huge-chunked':
          // valid JSON and about 1.6 MB: 400000 numbers where the request expects n x 10
          return answer(res, 200, good(new Array<number>(400000).fill(0.5)), {}, mode === 'huge-chunked');
        default:
          return answer(res, 200, good(data));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

const url = () => `${base}/v2/models/m`;
const rows = (n: number): Float32Tensor => ({ data: new Float32Array(n * 784).map((_, i) => (i % 7) / 7), shape: [n, 1, 28, 28], dtype: 'float32' });
const setMode = (m: Mode) => {
  mode = m;
  seen.infer = 0;
  seen.requests = 0;
};

test('credentials in a model URL are refused before anything is sent, and never printed', async () => {
  setMode('ok');
  const creds = url().replace('http://', 'http://admin:s3cret@');
  assert.throws(() => parseRemoteUrl(creds), fails('BULWARK_E_REMOTE_URL', /credentials/));
  try {
    parseRemoteUrl(creds);
  } catch (e) {
    assert.ok(e instanceof BulwarkError);
    assert.doesNotMatch(`${e.message} ${e.hint}`, /s3cret|admin/);
    assert.match(e.hint, /--header 'Authorization: Basic/);
    assert.match(e.hint, /BULWARK_REMOTE_HEADERS/);
  }
  await assert.rejects(connectRemoteModel(creds), fails('BULWARK_E_REMOTE_URL'));
  assert.equal(seen.requests, 0, 'nothing was sent to the server');
  // other URL errors print the URL redacted too
  assert.throws(() => parseRemoteUrl('http://u:s3cret@h/models/x'), (e: unknown) => e instanceof BulwarkError && !e.message.includes('s3cret'));
  assert.throws(() => parseRemoteUrl('http://u:s3cret@[bad/v2/models/x'), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_REMOTE_URL' && !e.message.includes('s3cret'));
  assert.throws(() => parseRemoteUrl('http://h/v2/models/x?key=s3cret'), (e: unknown) => e instanceof BulwarkError && !e.message.includes('s3cret'));
  assert.equal(redactUrl('http://admin:s3cret@h:8080/v2/models/m'), 'http://***@h:8080/v2/models/m');
  assert.equal(redactUrl('https://h/v2/models/m?token=x#y'), 'https://h/v2/models/m?…#…');
  assert.equal(redactUrl('http://h/v2/models/m'), 'http://h/v2/models/m');

  const r = await runCli('attack', 'square', '--model', creds, '--data', 'mnist:test[0:2]', '--eps', '0.1', '--json');
  assertUserError(r, 'BULWARK_E_REMOTE_URL', /credentials in model URLs are not supported/);
  assert.doesNotMatch(r.stderr + r.stdout, /s3cret/);
});

test('headers from --header and BULWARK_REMOTE_HEADERS reach the server; without them a 401 is reported as access denied', async () => {
  setMode('auth');
  const data = ['--data', 'mnist:test[0:2]', '--eps', '0.1', '--queries', '3', '--json'];
  const denied = await runCli('attack', 'square', '--model', url(), ...data);
  assertUserError(denied, 'BULWARK_E_REMOTE_REJECTED', /HTTP 401/);
  assert.match(denied.stderr, /hint: .*--header/);

  const ok = await runCli('attack', 'square', '--model', url(), ...data, '--header', 'Authorization: Bearer t0ken', '--header', 'X-Trace: 7');
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(lastJson(ok.stdout)['n'], 2);
  assert.equal(seen.headers.authorization, 'Bearer t0ken');
  assert.equal(seen.headers['x-trace'], '7');
  assert.doesNotMatch(ok.stdout + ok.stderr, /t0ken/, 'header values are never printed');

  process.env['BULWARK_REMOTE_HEADERS'] = 'Authorization: Bearer wrong\nX-Env: yes\n';
  try {
    // --header wins over the environment for the same name
    const both = await runCli('attack', 'square', '--model', url(), ...data, '--header', 'authorization: Bearer t0ken');
    assert.equal(both.code, 0, both.stderr);
    assert.equal(seen.headers['x-env'], 'yes');
    process.env['BULWARK_REMOTE_HEADERS'] = 'Authorization: Bearer t0ken';
    const env = await runCli('attack', 'square', '--model', url(), ...data);
    assert.equal(env.code, 0, env.stderr);
    process.env['BULWARK_REMOTE_HEADERS'] = 'Authorization Bearer t0ken';
    const bad = await runCli('attack', 'square', '--model', url(), ...data);
    assertUserError(bad, 'BULWARK_E_ARG', /BULWARK_REMOTE_HEADERS line 1/);
    assert.doesNotMatch(bad.stderr, /t0ken/);
  } finally {
    delete process.env['BULWARK_REMOTE_HEADERS'];
  }
  assert.deepEqual(parseHeaderLines(['A: 1', '', 'B:2 ', 'a: 3'], (i) => `line ${i}`), { B: '2', a: '3' });
  await assert.rejects(connectRemoteModel(url(), { headers: { 'X-A': 'x\r\nInjected: 1' } }), fails('BULWARK_E_ARG', /control character/));
  await assert.rejects(connectRemoteModel(url(), { headers: { 'Bad Name': 'x' } }), fails('BULWARK_E_ARG', /field name/));
});

test('attack validates the remote transport flags (BULWARK_E_ARG naming the flag) and refuses them with a model file', async () => {
  setMode('ok');
  const common = ['attack', 'square', '--model', url(), '--data', 'mnist:test[0:2]', '--eps', '0.1'];
  const cases: [string[], string, RegExp][] = [
    [['--timeout', '0'], 'BULWARK_E_ARG', /--timeout/],
    [['--timeout', 'soon'], 'BULWARK_E_ARG', /--timeout/],
    [['--retries', '1.5'], 'BULWARK_E_ARG', /--retries/],
    [['--retries', '1000'], 'BULWARK_E_ARG', /--retries/],
    [['--max-response-bytes', '0'], 'BULWARK_E_ARG', /--max-response-bytes/],
    [['--header', 'Bearer s3cret'], 'BULWARK_E_ARG', /--header #1 must be 'Name: value'/],
    [['--header', 'A: 1', '--header', 'X: s3cret\nHost: evil'], 'BULWARK_E_ARG', /--header #2: .*control character/],
    [['--header', 'Content-Length: 3'], 'BULWARK_E_ARG', /--header #1: .*Content-Length/],
  ];
  for (const [flags, code, pattern] of cases) {
    const r = await runCli(...common, ...flags);
    assertUserError(r, code, pattern);
    assert.doesNotMatch(r.stderr, /s3cret/);
  }
  assert.equal(seen.requests, 0, 'bad flags are refused before connecting');
  const file = await runCli('attack', 'square', '--model', 'fixtures/models/mnist-cnn-small.onnx', '--data', 'mnist:test[0:2]', '--eps', '0.1', '--retries', '1');
  assertUserError(file, 'BULWARK_E_USAGE', /--retries applies to a remote model/);
  const help = await runCli('attack', '--help');
  for (const flag of ['--timeout SECONDS', '--retries N', '--max-response-bytes B', "--header 'Name: value'", 'BULWARK_REMOTE_HEADERS']) assert.ok(help.stdout.includes(flag), flag);
});

test('a hung endpoint ends after --timeout x (--retries + 1), and the hint names the flags', { timeout: 60_000 }, async () => {
  setMode('hang');
  const r = await runCli('attack', 'square', '--model', url(), '--data', 'mnist:test[0:2]', '--eps', '0.1', '--timeout', '0.2', '--retries', '1');
  assertUserError(r, 'BULWARK_E_REMOTE_TIMEOUT', /timed out after 200 ms on all 2 attempts/);
  assert.match(r.stderr, /hint: .*--timeout SECONDS/);
  assert.equal(seen.infer, 2, 'one attempt and one retry, then the run ends');
});

test('an inference response larger than the request can need is refused before it is parsed; maxResponseBytes overrides', async () => {
  const remote = await connectRemoteModel(url(), { retries: 0 });
  try {
    assert.deepEqual(remote.client.inferLimit(2, K), { bytes: RESPONSE_FLOOR_BYTES + RESPONSE_BYTES_PER_VALUE * 2 * K, why: `the limit for 2×${K} values` });
    assert.equal(remote.client.inferLimit(64, 1e6).bytes, 64 << 20, 'never above the 64 MiB default');
    for (const m of ['huge', 'huge-chunked'] as const) {
      setMode(m);
      await assert.rejects(remote.predict(rows(2)), fails('BULWARK_E_REMOTE_RESPONSE', /larger than the limit for 2×10 values/), m);
    }
    setMode('ok');
    assert.deepEqual((await remote.predict(rows(2))).shape, [2, K], 'a normal answer fits');
  } finally {
    remote.close();
  }
  const big = await connectRemoteModel(url(), { retries: 0, maxResponseBytes: 8 << 20 });
  try {
    setMode('huge');
    // read and parsed under the explicit limit, then refused by the shape check
    await assert.rejects(big.predict(rows(2)), fails('BULWARK_E_REMOTE_RESPONSE', /not an array of 20 numbers/));
  } finally {
    big.close();
  }
  setMode('huge-chunked');
  const r = await runCli('attack', 'square', '--model', url(), '--data', 'mnist:test[0:2]', '--eps', '0.1', '--retries', '0');
  assertUserError(r, 'BULWARK_E_REMOTE_RESPONSE', /larger than/);
  assert.match(r.stderr, /hint: .*--max-response-bytes/);
  const r2 = await runCli('attack', 'square', '--model', url(), '--data', 'mnist:test[0:2]', '--eps', '0.1', '--retries', '0', '--max-response-bytes', '100');
  assertUserError(r2, 'BULWARK_E_REMOTE_RESPONSE', /the set limit \(--max-response-bytes, maxResponseBytes\), 100 bytes/);
});

test('Retry-After as an HTTP date is honoured (RFC 9110 forms), bounded', async () => {
  const now = Date.UTC(1994, 10, 6, 8, 49, 30);
  assert.equal(parseRetryAfter('120', now), 120000);
  assert.equal(parseRetryAfter('Sun, 06 Nov 1994 08:49:37 GMT', now), 7000);
  assert.equal(parseRetryAfter('Sunday, 06-Nov-94 08:49:37 GMT', now), 7000);
  assert.equal(parseRetryAfter('Sun Nov  6 08:49:37 1994', now), 7000);
  assert.equal(parseRetryAfter('Wed Nov 16 08:49:37 1994', now + 10 * 86400000), 7000, 'asctime with a two-digit day');
  // the form the test server below sends (Date#toUTCString is IMF-fixdate)
  assert.equal(parseRetryAfter(new Date(now + 2000).toUTCString(), now), 2000);
  assert.equal(parseRetryAfter('Sunday, 06-Nov-94 08:49:00 GMT', now), 0, 'RFC 850, in the past');
  assert.equal(parseRetryAfter('Sun Nov  6 08:00:00 1994', now), 0, 'asctime, in the past');
  assert.equal(parseRetryAfter('Sun Nov  6 08:49:37 2094', now), 86400000, 'asctime, far ahead: capped');
  assert.equal(parseRetryAfter(' 5 ', now), 5000, 'surrounding spaces are ignored');
  assert.equal(parseRetryAfter('Sun, 06 Nov 1994 08:49:00 GMT', now), 0, 'a date in the past means now');
  assert.equal(parseRetryAfter('Sun, 06 Nov 2094 08:49:37 GMT', now), 86400000, 'at most a day');
  assert.equal(parseRetryAfter('99999999999', now), 86400000);
  for (const bad of ['', '1.5', '-3', '0x10', 'soon', 'Sun, 06 Foo 1994 08:49:37 GMT']) assert.equal(parseRetryAfter(bad, now), undefined, bad);

  setMode('429date');
  const remote = await connectRemoteModel(url(), { retries: 1, backoffMs: 1 });
  try {
    await assert.rejects(remote.predict(rows(1)), fails('BULWARK_E_REMOTE_UNAVAILABLE', /HTTP 429/));
    // a 429 is retried (once, as asked); the wait it asks for is parseRetryAfter's, checked above on fixed dates
    assert.equal(seen.infer, 2);
  } finally {
    remote.close();
  }
});

test('redirects are not followed: the error names the redacted Location and hints at the final URL', async () => {
  setMode('redirect');
  const remote = await connectRemoteModel(url(), { retries: 3, backoffMs: 1 });
  try {
    let err: unknown;
    await remote.predict(rows(1)).catch((e: unknown) => (err = e));
    assert.ok(err instanceof BulwarkError, String(err));
    assert.equal(err.code, 'BULWARK_E_REMOTE_REJECTED');
    assert.match(err.message, /redirect \(HTTP 307 to "http:\/\/\*\*\*@127\.0\.0\.2:9\/v2\/models\/m\/infer\?…"\); Bulwark does not follow redirects/);
    assert.doesNotMatch(err.message + JSON.stringify(err.details), /pa55word|t0psecret|admin/);
    assert.match(err.hint, /final URL/);
    assert.equal(seen.infer, 1, 'a redirect is not retried');
    setMode('redirect-relative');
    await assert.rejects(remote.predict(rows(1)), fails('BULWARK_E_REMOTE_REJECTED', new RegExp(`HTTP 301 to "${base.replace(/\./g, '\\.')}/v2/models/other/infer"`)));
  } finally {
    remote.close();
  }
  setMode('redirect');
  const r = await runCli('attack', 'square', '--model', url(), '--data', 'mnist:test[0:2]', '--eps', '0.1');
  assertUserError(r, 'BULWARK_E_REMOTE_REJECTED', /does not follow redirects/);
  assert.match(r.stderr, /hint: Give the final URL/);
  assert.doesNotMatch(r.stderr, /pa55word|t0psecret/);
});
