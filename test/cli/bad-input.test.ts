import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { encodeNpy } from '../../src/data/npy.js';
import { repoRoot, hardmaxModel, assertUserError } from '../helpers.js';

const bin = path.join(repoRoot, 'bin', 'bulwark.js');
const fx = path.join(repoRoot, 'fixtures', 'torch', 'cnn_norm');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-cli-'));

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function npy(name: string, data: Float32Array | BigInt64Array, shape: number[]): string {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, encodeNpy({ data, shape, dtype: data instanceof Float32Array ? 'float32' : 'int64' }));
  return file;
}



const good = { x: path.join(fx, 'x.npy'), y: path.join(fx, 'y.npy'), m: path.join(fx, 'model.onnx') };

test('a missing model file is a clear error', () => {
  assertUserError(cli('grad', '--model', path.join(tmp, 'none.onnx'), '--input', good.x, '--labels', good.y, '--out', path.join(tmp, 'g.npy')), 'BULWARK_E_FILE_NOT_FOUND');
});

test('a truncated ONNX file and a non-ONNX file are clear errors', () => {
  const trunc = path.join(tmp, 'trunc.onnx');
  fs.writeFileSync(trunc, fs.readFileSync(good.m).subarray(0, 200));
  assertUserError(cli('info', trunc), 'BULWARK_E_ONNX_PARSE');
  assertUserError(cli('predict', '--model', path.join(repoRoot, 'package.json'), '--input', good.x, '--out', path.join(tmp, 'p.npy')), 'BULWARK_E_ONNX_PARSE');
});

test('an op without a gradient rule is named', () => {
  const m = hardmaxModel(tmp);
  const x = npy('x4.npy', new Float32Array(8).fill(0.5), [2, 4]);
  const y = npy('y4.npy', new BigInt64Array([0n, 1n]), [2]);
  assertUserError(cli('grad', '--model', m, '--input', x, '--labels', y, '--out', path.join(tmp, 'g.npy')), 'BULWARK_E_UNSUPPORTED_OP', /Hardmax/);
  const info = JSON.parse(cli('info', m, '--json').stdout.trim().split('\n').pop()!);
  assert.deepEqual(info.unsupportedOps, ['Hardmax']);
  assert.equal(info.differentiable, false);
});

test('a wrong input shape says what the model expects', () => {
  const x = npy('x3.npy', new Float32Array(3 * 28 * 28), [3, 28, 28]);
  assertUserError(cli('predict', '--model', good.m, '--input', x, '--out', path.join(tmp, 'p.npy')), 'BULWARK_E_SHAPE', /expects \[N,1,28,28\]/);
});

test('NaN inputs are refused', () => {
  const d = new Float32Array(2 * 784).fill(0.5);
  d[17] = NaN;
  const x = npy('xnan.npy', d, [2, 1, 28, 28]);
  assertUserError(cli('predict', '--model', good.m, '--input', x, '--out', path.join(tmp, 'p.npy')), 'BULWARK_E_NONFINITE', /index 17/);
});

test('labels out of range are refused', () => {
  const x = npy('x2.npy', new Float32Array(2 * 784).fill(0.5), [2, 1, 28, 28]);
  const y = npy('ybad.npy', new BigInt64Array([3n, 10n]), [2]);
  assertUserError(cli('grad', '--model', good.m, '--input', x, '--labels', y, '--out', path.join(tmp, 'g.npy')), 'BULWARK_E_LABELS', /\[1\] = 10/);
});

test('unknown flags are usage errors', () => {
  assertUserError(cli('grad', '--model', good.m, '--bogus', '1'), 'BULWARK_E_USAGE');
});

test('grad writes the per-example input gradient that PyTorch computed', () => {
  const out = path.join(tmp, 'g_ok.npy');
  const r = cli('grad', '--model', good.m, '--input', good.x, '--labels', good.y, '--out', out, '--json');
  assert.equal(r.code, 0, r.stderr);
  const res = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.deepEqual(res.shape, [6, 1, 28, 28]);
  assert.ok(fs.statSync(out).size > 6 * 784 * 4);
});

test('grad --workers 2 writes the same gradient as one thread; --workers 0 is refused', async () => {
  const { readNpy } = await import('../../src/data/npy.js');
  const outs = ['1', '2'].map((w) => {
    const out = path.join(tmp, `g_w${w}.npy`);
    const r = cli('grad', '--model', good.m, '--input', good.x, '--labels', good.y, '--out', out, '--workers', w, '--batch-size', '4');
    assert.equal(r.code, 0, r.stderr);
    return readNpy(out).data as Float32Array;
  });
  assert.ok(outs[0]!.some((v) => v !== 0));
  assert.deepEqual(outs[1], outs[0]);
  assertUserError(cli('grad', '--model', good.m, '--input', good.x, '--labels', good.y, '--out', path.join(tmp, 'g_w0.npy'), '--workers', '0'), 'BULWARK_E_ARG', /--workers/);
});

test('a missing or malformed data file names the flag it was given under, for every command', () => {
  const none = path.join(tmp, 'none.npz');
  const m = /--data: npz file: no such file: .*none\.npz/;
  assertUserError(cli('eval', '--model', good.m, '--data', none), 'BULWARK_E_FILE_NOT_FOUND', m);
  assertUserError(cli('attack', 'fgsm', '--model', good.m, '--data', none, '--eps', '0.1', '--out', path.join(tmp, 'a.npy')), 'BULWARK_E_FILE_NOT_FOUND', m);
  const junk = path.join(tmp, 'junk.npy');
  fs.writeFileSync(junk, 'not an npy file');
  assertUserError(cli('eval', '--model', good.m, '--data', `${junk},${good.y}`), 'BULWARK_E_NPY', /--data: .*junk\.npy: not a \.npy file/);
  assertUserError(cli('attack', 'fgsm', '--model', good.m, '--input', path.join(tmp, 'none.npy'), '--labels', good.y, '--eps', '0.1', '--out', path.join(tmp, 'a.npy')), 'BULWARK_E_FILE_NOT_FOUND', /--input: npy file: no such file/);
  assertUserError(cli('attack', 'fgsm', '--model', good.m, '--input', good.x, '--labels', junk, '--eps', '0.1', '--out', path.join(tmp, 'a.npy')), 'BULWARK_E_NPY', /--labels: not a \.npy file/);
});

test('an eps wider than the input range is refused by IBP training and IBP certification', () => {
  assertUserError(cli('train', '--arch', 'flatten,dense:8,dense:10', '--data', 'mnist:train[0:10]', '--out', path.join(tmp, 't.onnx'), '--adv', 'ibp', '--eps', '1e300'), 'BULWARK_E_ARG', /--eps 1e\+300 .*exceeds/);
  assertUserError(cli('certify', '--method', 'ibp', '--model', good.m, '--data', `${good.x},${good.y}`, '--eps', '1e308'), 'BULWARK_E_ARG', /--eps 1e\+308 .*exceeds/);
  assert.ok(!fs.existsSync(path.join(tmp, 't.onnx')));
});

const mnistModel = path.join(repoRoot, 'fixtures', 'models', 'mnist-cnn-small.onnx');

test('bad outputs fail before any work: --out a folder (attack, predict), scan --out a file', () => {
  const file = path.join(tmp, 'a-file');
  fs.writeFileSync(file, 'x');
  // 2000 PGD steps would take many seconds: the refusal comes first
  const t0 = Date.now();
  assertUserError(cli('attack', 'pgd', '--model', mnistModel, '--data', 'mnist:test[0:500]', '--eps', '0.1', '--steps', '2000', '--out', tmp), 'BULWARK_E_FILE_WRITE', /--out: cannot write .*: it is a folder/);
  assertUserError(cli('predict', '--model', mnistModel, '--data', 'mnist:test[0:8]', '--out', tmp), 'BULWARK_E_FILE_WRITE', /it is a folder/);
  assertUserError(cli('scan', '--model', mnistModel, '--data', 'mnist:test[0:200]', '--budget', 'standard', '--out', file), 'BULWARK_E_FILE_WRITE', /--out: cannot write into .*is not a folder/);
  assert.equal(fs.readFileSync(file, 'utf8'), 'x');
  assert.ok(Date.now() - t0 < 20000, `the refusals took ${Date.now() - t0} ms: was the work done first?`);
});

test('attack flag conflicts and ranges: white-box on an endpoint, two target flags, NES sigma past the input range, C&W c', () => {
  // nothing listens on port 9: the refusal must come before any connection attempt (no retries)
  const r = cli('attack', 'pgd', '--model', 'http://127.0.0.1:9/v2/models/m', '--data', 'mnist:test[0:4]', '--eps', '0.1');
  assertUserError(r, 'BULWARK_E_MODEL', /white-box attack .* remote endpoint/);
  assert.match(r.stderr, /square/);
  const targets = npy('targets.npy', BigInt64Array.from([1n, 2n, 3n, 4n]), [4]);
  assertUserError(cli('attack', 'pgd', '--model', mnistModel, '--data', 'mnist:test[0:4]', '--eps', '0.1', '--targeted', '--targets', targets, '--target-class', '3'), 'BULWARK_E_USAGE', /--targets and --target-class/);
  assertUserError(cli('attack', 'nes', '--model', mnistModel, '--data', 'mnist:test[0:4]', '--eps', '0.1', '--sigma', '1e300'), 'BULWARK_E_ARG', /--sigma must be <= the input range 1/);
  assertUserError(cli('attack', 'cw', '--model', mnistModel, '--data', 'mnist:test[0:4]', '--steps', '2', '--c', '1e39'), 'BULWARK_E_ARG', /--c must be <= /);
});

test('--output-kind probs on a model whose output is not probabilities is refused', () => {
  assertUserError(cli('eval', '--model', mnistModel, '--data', 'mnist:test[0:8]', '--output-kind', 'probs'), 'BULWARK_E_MODEL', /declared probabilities .* outside \[0, 1\]/);
});

test('scan names the data flag of a malformed spec, and a part that could not run is reported skipped, not passed', () => {
  assertUserError(cli('scan', '--model', mnistModel, '--data', 'mnist:test[0:8]', '--train-data', 'nosuch:train', '--out', path.join(tmp, 'rep0')), 'BULWARK_E_DATA_SPEC', /--train-data: data spec "nosuch:train"/);
  const r = cli('scan', '--model', mnistModel, '--data', 'mnist:test[0:8]', '--sections', 'hardening.detector', '--out', path.join(tmp, 'rep1'), '--json');
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(fs.readFileSync(path.join(tmp, 'rep1', 'report.json'), 'utf8')) as { sections: { id: string; status: string; summary: string }[] };
  const h = report.sections.find((s) => s.id === 'hardening')!;
  assert.equal(h.status, 'skipped');
  assert.match(h.summary, /at least 40 are needed/);
});

test('no command, or no attack, is a usage error on stderr with a code and a hint; stdout stays empty', () => {
  for (const args of [[], ['attack']]) {
    const r = cli(...args);
    assertUserError(r, 'BULWARK_E_USAGE', /no (command|attack) given/);
    assert.equal(r.stdout, '');
  }
});

test('onnxruntime refusals keep their reason without onnxruntime source locations (a model of IR version 99)', async () => {
  const { ortMessage } = await import('../../src/runtime/session.js');
  const raw = '/onnxruntime_src/onnxruntime/core/graph/model.cc:202 onnxruntime::Model::Model(onnx::ModelProto&&, const onnxruntime::PathString&, const onnxruntime::logging::Logger&) Unsupported model IR version: 99, max supported IR version: 13';
  assert.equal(ortMessage(raw), 'Unsupported model IR version: 99, max supported IR version: 13');
  assert.equal(ortMessage('Got invalid dimensions for input: x'), 'Got invalid dimensions for input: x');
  const { readModel, writeModelBytes } = await import('../../src/onnx/ir.js');
  const g = readModel(mnistModel);
  g.irVersion = 99;
  const file = path.join(tmp, 'ir99.onnx');
  fs.writeFileSync(file, writeModelBytes(g));
  const r = cli('eval', '--model', file, '--data', 'mnist:test[0:4]');
  assertUserError(r, 'BULWARK_E_RUNTIME', /Unsupported model IR version: 99/);
  assert.doesNotMatch(r.stderr, /onnxruntime_src/);
});

test('eval names --data when the data does not fit the model', () => {
  const flat = npy('flat.npy', new Float32Array(4 * 784), [4, 784]);
  const labels = npy('flat-y.npy', new BigInt64Array(4), [4]);
  assertUserError(cli('eval', '--model', mnistModel, '--data', `${flat},${labels}`), 'BULWARK_E_SHAPE', /--data: input has shape \[4,784\]; the model expects \[N,1,28,28\]/);
});
