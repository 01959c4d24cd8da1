import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { encodeNpy, writeNpz } from '../../src/data/npy.js';
import { repoRoot, runCli, assertUserError } from '../helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-outputs-'));
const fx = path.join(repoRoot, 'fixtures', 'torch', 'cnn_norm');
const sha = (f: string) => createHash('sha256').update(fs.readFileSync(f)).digest('hex');

function trainset(file: string): string {
  const n = 32;
  const x = new Float32Array(n * 16).map((_, i) => ((i * 7919) % 97) / 97);
  writeNpz(file, { x: { data: x, shape: [n, 16], dtype: 'float32' }, y: { data: Int32Array.from({ length: n }, (_, i) => i % 3), shape: [n], dtype: 'int32' } });
  return file;
}

test('train checks its outputs before training and writes model, record and npz as one', async () => {
  const data = trainset(path.join(tmp, 'trainset.npz'));
  const out = path.join(tmp, 'tr', 'm5.onnx');
  const args = ['train', '--arch', 'mlp', '--data', data, '--epochs', '1', '--json'];
  assert.equal((await runCli(...args, '--out', out)).code, 0);
  const first = sha(out);
  // A folder where the record goes: refused before training, the earlier model left as it was.
  fs.rmSync(`${out}.train.json`);
  fs.mkdirSync(`${out}.train.json`);
  let r = await runCli(...args, '--seed', '7', '--out', out);
  assertUserError(r, 'BULWARK_E_FILE_WRITE', /m5\.onnx\.train\.json: it is a folder/);
  assert.doesNotMatch(r.stderr, /epoch 1/, 'refused before training');
  assert.equal(sha(out), first);
  fs.rmdirSync(`${out}.train.json`);
  // An unwritable --save-npz (its folder is a file): refused before training, the model untouched.
  fs.writeFileSync(path.join(tmp, 'plain'), 'x');
  r = await runCli(...args, '--seed', '7', '--out', out, '--save-npz', path.join(tmp, 'plain', 'w.npz'));
  assertUserError(r, 'BULWARK_E_FILE_WRITE', /--save-npz: .*not a folder/);
  assert.equal(sha(out), first);
  assert.equal(fs.existsSync(`${out}.train.json`), false);
  // All three written together.
  r = await runCli(...args, '--seed', '7', '--out', out, '--save-npz', path.join(tmp, 'tr', 'w.npz'));
  assert.equal(r.code, 0, r.stderr);
  assert.notEqual(sha(out), first);
  assert.equal(JSON.parse(fs.readFileSync(`${out}.train.json`, 'utf8')).modelSha256, sha(out));
  assert.ok(fs.statSync(path.join(tmp, 'tr', 'w.npz')).size > 0);
});

test('--out that is one of the inputs is refused before anything is replaced', async () => {
  const data = trainset(path.join(tmp, 'z.npz'));
  const before = sha(data);
  assertUserError(await runCli('train', '--arch', 'mlp', '--data', data, '--epochs', '1', '--out', data), 'BULWARK_E_ARG', /--out .* is the input file given by --data/);
  assertUserError(await runCli('train', '--arch', 'mlp', '--data', data, '--epochs', '1', '--out', path.join(tmp, 'm.onnx'), '--save-npz', data), 'BULWARK_E_ARG', /--save-npz .* --data/);
  assert.equal(sha(data), before);

  const model = path.join(tmp, 'victim.onnx');
  fs.copyFileSync(path.join(fx, 'model.onnx'), model);
  const x = path.join(tmp, 'x.npy');
  fs.writeFileSync(x, encodeNpy({ data: new Float32Array(2 * 784).fill(0.5), shape: [2, 1, 28, 28], dtype: 'float32' }));
  const y = path.join(tmp, 'y.npy');
  fs.writeFileSync(y, encodeNpy({ data: new BigInt64Array([1n, 2n]), shape: [2], dtype: 'int64' }));
  const m0 = sha(model);
  const x0 = sha(x);
  const y0 = sha(y);
  const viaDots = path.join(tmp, '.', path.basename(model));
  assertUserError(await runCli('predict', '--model', model, '--input', x, '--out', viaDots), 'BULWARK_E_ARG', /--out .* --model/);
  assertUserError(await runCli('predict', '--model', model, '--input', x, '--out', x), 'BULWARK_E_ARG', /--out .* --input/);
  assertUserError(await runCli('grad', '--model', model, '--input', x, '--labels', y, '--out', y), 'BULWARK_E_ARG', /--out .* --labels/);
  assertUserError(await runCli('grad', '--model', model, '--input', x, '--labels', y, '--out', model), 'BULWARK_E_ARG', /--out .* --model/);
  assertUserError(await runCli('attack', 'fgsm', '--model', model, '--input', x, '--labels', y, '--eps', '0.1', '--out', x), 'BULWARK_E_ARG', /--out .* --input/);
  assert.deepEqual([sha(model), sha(x), sha(y)], [m0, x0, y0]);
  assertUserError(await runCli('extract', '--model', model, '--strategy', 'random', '--budget', '10', '--out', viaDots), 'BULWARK_E_ARG', /--out .* --model/);
  assertUserError(await runCli('detect', 'fit', '--model', model, '--data', 'mnist:test[0:50]', '--out', model), 'BULWARK_E_ARG', /--out .* --model/);
  assertUserError(await runCli('detect', 'score', '--model', model, '--detector', path.join(tmp, 'det.json'), '--input', x, '--out', x), 'BULWARK_E_ARG', /--out .* --input/);
  assert.deepEqual([sha(model), sha(x), sha(y)], [m0, x0, y0]);
  // A different output path still works.
  assert.equal((await runCli('predict', '--model', model, '--input', x, '--out', path.join(tmp, 'p.npy'))).code, 0);
});

test('train refuses --save-npz on the model path or on its record, before training', async () => {
  const data = trainset(path.join(tmp, 'collide.npz'));
  const out = path.join(tmp, 'collide', 'm.onnx');
  const args = ['train', '--arch', 'mlp', '--data', data, '--epochs', '1', '--out', out];
  assertUserError(await runCli(...args, '--save-npz', out), 'BULWARK_E_ARG', /--save-npz .* is the same file as --out/);
  assertUserError(await runCli(...args, '--save-npz', `${out}.train.json`), 'BULWARK_E_ARG', /is the same file as --out/);
  assert.equal(fs.existsSync(out), false, 'nothing was trained or written');
});
