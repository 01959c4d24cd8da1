/**
 * Remote models over the Open Inference Protocol (KServe v2 REST) against the test server: metadata, batching,
 * exact query counts on both ends, budgets, black-box attacks end to end, and every failure mode ending in a clear
 * coded error (or a success after retries), never a hang.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { BulwarkError, type ErrorCode } from '../../src/core/errors.js';
import type { Float32Tensor } from '../../src/core/tensor.js';
import { connectRemoteModel, parseRemoteUrl, type RemoteModel } from '../../src/runtime/remote.js';
import { hopSkipJump, nes, queryStats, square } from '../../src/evasion/blackbox/index.js';
import { repoRoot } from '../helpers.js';
import { startKServeServer, type KServeTestServer } from '../helpers/kserve-server.js';
import { mnistTest, referenceModel } from './reference.js';


let srv: KServeTestServer;
let x: Float32Tensor;
let y: Int32Array;

const rows = (n: number): Float32Tensor => ({ data: x.data.subarray(0, n * 784), shape: [n, 1, 28, 28], dtype: 'float32' });
const coded = (code: ErrorCode) => (e: unknown) => {
  assert.ok(e instanceof BulwarkError, `expected a BulwarkError, got ${String(e)}`);
  assert.equal(e.code, code, e.message);
  return true;
};

before(async () => {
  srv = await startKServeServer({ model: await referenceModel(), name: 'mnist', maxBatchSize: 256 });
  ({ x, y } = await mnistTest(0, 100));
});

after(async () => {
  await srv.close();
});

test('parseRemoteUrl reads the model, the version and a path prefix', () => {
  assert.deepEqual(parseRemoteUrl('http://h:8080/v2/models/mnist'), { base: 'http://h:8080', model: 'mnist', version: undefined });
  assert.deepEqual(parseRemoteUrl('https://h/serving/v2/models/m%20x/versions/3/infer'), { base: 'https://h/serving', model: 'm x', version: '3' });
  assert.throws(() => parseRemoteUrl('http://h/models/m'), coded('BULWARK_E_REMOTE_URL'));
  assert.throws(() => parseRemoteUrl('ftp://h/v2/models/m'), coded('BULWARK_E_REMOTE_URL'));
  assert.throws(() => parseRemoteUrl('not a url'), coded('BULWARK_E_REMOTE_URL'));
});

test('metadata, batching and outputs equal to the local model', async () => {
  srv.misbehave({ kind: 'ok' });
  const remote = await connectRemoteModel(srv.url, { maxBatchSize: 16 });
  try {
    assert.deepEqual(remote.inputShape, [-1, 1, 28, 28]);
    assert.equal(remote.numClasses, 10);
    assert.equal(remote.inputName, 'input');
    srv.resetStats();
    const out = await remote.predict(rows(40));
    assert.deepEqual(srv.stats.batchSizes, [16, 16, 8]);
    const local = await srv.model.predict(rows(40));
    assert.deepEqual(out.shape, [40, 10]);
    for (let j = 0; j < out.data.length; j++) assert.ok(Math.abs(out.data[j]! - local.data[j]!) < 1e-4);
    assert.equal(remote.queries, 40);
    assert.equal(srv.stats.examplesReceived, 40);
    await assert.rejects(remote.predict({ data: new Float32Array(784), shape: [1, 784], dtype: 'float32' }), coded('BULWARK_E_SHAPE'));
  } finally {
    remote.close();
  }
});

test('Square against the remote model: succeeds, and the server saw exactly the reported queries', async () => {
  srv.misbehave({ kind: 'ok' });
  const remote = await connectRemoteModel(srv.url, { maxBatchSize: 64 });
  try {
    srv.resetStats();
    const n = 20;
    const t0 = performance.now();
    const r = await square(remote, rows(n), y.subarray(0, n), { eps: 0.3, maxQueries: 1000, seed: 0 });
    const per = r.extras['queriesPerExample'] as Int32Array;
    console.log(`remote square linf 0.3, ${n} images: robust ${r.summary.robustAccuracy}, attack queries ${r.queries} (mean ${queryStats(per).mean.toFixed(1)}), server examples ${srv.stats.examplesReceived} in ${srv.stats.inferRequests} requests, ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    assert.ok(r.summary.robustAccuracy < 0.05);
    assert.equal(queryStats(per).total, r.queries);
    // The runner's clean pass and verification pass (n each) are the only other examples sent.
    assert.equal(srv.stats.examplesReceived, r.queries + 2 * n);
    assert.equal(srv.stats.examplesAnswered, remote.queries);
    assert.equal(remote.sentExamples, remote.queries);
  } finally {
    remote.close();
  }
});

test('HopSkipJump (labels only) and NES-PGD against the remote model, counts exact', async () => {
  srv.misbehave({ kind: 'ok' });
  const remote = await connectRemoteModel(srv.url, { maxBatchSize: 256 });
  try {
    srv.resetStats();
    const h = await hopSkipJump(remote, rows(3), y.subarray(0, 3), { norm: 2, steps: 3, maxQueries: 800 });
    for (let i = 0; i < 3; i++) if (h.attacked[i]) assert.equal(h.success[i], 1);
    assert.ok(queryStats(h.extras['queriesPerExample'] as Int32Array).max <= 800);
    assert.equal(srv.stats.examplesReceived, h.queries + 6);
    const before = srv.stats.examplesReceived;
    const r = await nes(remote, rows(3), y.subarray(0, 3), { eps: 0.3, maxQueries: 2500 });
    assert.equal(r.summary.robustAccuracy, 0);
    assert.equal(srv.stats.examplesReceived - before, r.queries + 6);
    assert.equal(srv.stats.examplesReceived, remote.queries);
  } finally {
    remote.close();
  }
});

test('a query budget stops before sending, with a clear error', async () => {
  srv.misbehave({ kind: 'ok' });
  const remote = await connectRemoteModel(srv.url, { maxQueries: 50 });
  try {
    srv.resetStats();
    await remote.predict(rows(30));
    await assert.rejects(remote.predict(rows(30)), coded('BULWARK_E_QUERY_BUDGET'));
    assert.equal(srv.stats.examplesReceived, 30, 'nothing was sent past the budget');
    await remote.predict(rows(20));
    await assert.rejects(square(remote, rows(5), y.subarray(0, 5), { eps: 0.3 }), coded('BULWARK_E_QUERY_BUDGET'));
  } finally {
    remote.close();
  }
});

test('a hanging endpoint times out on every attempt: BULWARK_E_REMOTE_TIMEOUT, no hang', { timeout: 60_000 }, async () => {
  const remote = await connectRemoteModel(srv.url, { timeoutMs: 150, retries: 1, backoffMs: 10 });
  try {
    srv.misbehave({ kind: 'hang' });
    await assert.rejects(remote.predict(rows(2)), coded('BULWARK_E_REMOTE_TIMEOUT'));
    assert.equal(remote.requests, 4, '2 metadata calls + 2 inference attempts');
  } finally {
    srv.misbehave({ kind: 'ok' });
    remote.close();
  }
});

test('transient 500s are retried with backoff and succeed; persistent ones fail clearly', async () => {
  const remote = await connectRemoteModel(srv.url, { retries: 3, backoffMs: 5 });
  try {
    srv.resetStats();
    srv.misbehave({ kind: 'error', times: 2, status: 500 });
    const out = await remote.predict(rows(3));
    assert.deepEqual(out.shape, [3, 10]);
    assert.equal(remote.retried, 2);
    assert.equal(srv.stats.examplesReceived, 9, 'two failed attempts and one answered, 3 examples each');
    assert.equal(remote.sentExamples, 9);
    assert.equal(remote.queries, 3, 'queries count answered examples');
    srv.misbehave({ kind: 'error', times: 100, status: 503 });
    await assert.rejects(remote.predict(rows(1)), coded('BULWARK_E_REMOTE_UNAVAILABLE'));
  } finally {
    srv.misbehave({ kind: 'ok' });
    remote.close();
  }
});

test('4xx is not retried; malformed answers are coded errors', async () => {
  const remote = await connectRemoteModel(srv.url, { retries: 3, backoffMs: 5 });
  try {
    const cases: [Parameters<KServeTestServer['misbehave']>[0], ErrorCode][] = [
      [{ kind: 'status', status: 400 }, 'BULWARK_E_REMOTE_REJECTED'],
      [{ kind: 'garbage' }, 'BULWARK_E_REMOTE_RESPONSE'],
      [{ kind: 'wrong-shape' }, 'BULWARK_E_REMOTE_RESPONSE'],
      [{ kind: 'short-data' }, 'BULWARK_E_REMOTE_RESPONSE'],
      [{ kind: 'non-finite' }, 'BULWARK_E_REMOTE_RESPONSE'],
      [{ kind: 'wrong-datatype' }, 'BULWARK_E_REMOTE_RESPONSE'],
    ];
    for (const [mode, code] of cases) {
      srv.misbehave(mode);
      srv.resetStats();
      await assert.rejects(remote.predict(rows(2)), coded(code), mode.kind);
      assert.equal(srv.stats.inferRequests, 1, `${mode.kind} is not retried`);
    }
  } finally {
    srv.misbehave({ kind: 'ok' });
    remote.close();
  }
});

test('connection errors: unknown model, unreachable server, server not ready', async () => {
  await assert.rejects(connectRemoteModel(`${srv.base}/v2/models/nope`), coded('BULWARK_E_REMOTE_REJECTED'));
  const dead = await startKServeServer({ model: srv.model, name: 'm' });
  const url = dead.url;
  await dead.close();
  await assert.rejects(connectRemoteModel(url, { retries: 2, backoffMs: 5 }), (e: unknown) => coded('BULWARK_E_REMOTE_UNAVAILABLE')(e) && /on all 3 attempts/.test((e as Error).message));
  const unready = await startKServeServer({ model: srv.model, name: 'm', ready: false });
  try {
    await assert.rejects(connectRemoteModel(unready.url, { retries: 1, backoffMs: 5 }), coded('BULWARK_E_REMOTE_UNAVAILABLE'));
  } finally {
    await unready.close();
  }
  const versioned = await startKServeServer({ model: srv.model, name: 'm', version: '2' });
  let remote: RemoteModel | undefined;
  try {
    remote = await connectRemoteModel(versioned.url);
    assert.equal(remote.address.version, '2');
    assert.deepEqual((await remote.predict(rows(1))).shape, [1, 10]);
  } finally {
    remote?.close();
    await versioned.close();
  }
});

test('CLI: bulwark attack square|hsj --model http://… runs against the endpoint; white-box attacks are refused', async () => {
  const { execFile } = await import('node:child_process');
  const bin = path.join(repoRoot, 'bin', 'bulwark.js');
  const cli = (args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [bin, ...args], { cwd: repoRoot, timeout: 60000 }, (err, stdout, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      });
    });
  srv.misbehave({ kind: 'ok' });
  srv.resetStats();
  const sq = await cli(['attack', 'square', '--model', srv.url, '--data', 'mnist:test[0:10]', '--eps', '0.3', '--queries', '500', '--json']);
  assert.equal(sq.code, 0, sq.stderr);
  const j = JSON.parse(sq.stdout.trim().split('\n').at(-1)!) as { robustAccuracy: number; queries: number; queryStats: { total: number } };
  assert.ok(j.robustAccuracy <= 0.1);
  assert.equal(j.queryStats.total, j.queries);
  assert.equal(srv.stats.examplesReceived, j.queries + 20, 'the server saw the attack queries plus the runner passes');
  const h = await cli(['attack', 'hsj', '--model', srv.url, '--data', 'mnist:test[0:2]', '--steps', '2', '--queries', '600', '--json']);
  assert.equal(h.code, 0, h.stderr);
  const wb = await cli(['attack', 'pgd', '--model', srv.url, '--data', 'mnist:test[0:2]', '--eps', '0.3']);
  assert.equal(wb.code, 2);
  assert.match(wb.stderr, /BULWARK_E_MODEL[\s\S]*hint: .*square/);
  const bad = await cli(['attack', 'square', '--model', 'http://127.0.0.1:9/models/x', '--data', 'mnist:test[0:2]', '--eps', '0.3']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /BULWARK_E_REMOTE_URL/);
});
