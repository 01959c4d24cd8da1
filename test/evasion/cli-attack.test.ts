import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { encodeNpy, readNpy } from '../../src/data/npy.js';
import { repoRoot, hardmaxModel, assertUserError } from '../helpers.js';
import { REFERENCE_MODEL } from './reference.js';

const bin = path.join(repoRoot, 'bin', 'bulwark.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-attack-'));

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, 'attack', ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function npy(name: string, data: Float32Array | BigInt64Array, shape: number[]): string {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, encodeNpy({ data, shape, dtype: data instanceof Float32Array ? 'float32' : 'int64' }));
  return file;
}



const data = 'mnist:test[0:20]';

test('attack pgd --json prints the summary as the last stdout line and writes the adversarial inputs', () => {
  const out = path.join(tmp, 'adv.npy');
  const r = cli('pgd', '--model', REFERENCE_MODEL, '--data', data, '--eps', '0.3', '--norm', 'inf', '--steps', '20', '--step-size', '0.02', '--no-random-start', '--seed', '3', '--threads', '1', '--out', out, '--json');
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout.trim().split('\n').pop()!);
  for (const k of ['attack', 'n', 'cleanAccuracy', 'robustAccuracy', 'successRate', 'meanPerturbation', 'queries', 'seconds']) assert.ok(k in j, `missing ${k}`);
  assert.equal(j.attack, 'pgd');
  assert.equal(j.n, 20);
  assert.ok(j.cleanAccuracy >= 0.95 && j.robustAccuracy <= 0.05, JSON.stringify(j));
  assert.ok(j.meanPerturbation.linf <= 0.3 + 1e-6 && j.meanPerturbation.l2 > 0);
  assert.ok(j.queries > 0 && j.seconds > 0);
  assert.equal(j.options.randomStart, false);
  const adv = readNpy(out);
  assert.deepEqual(adv.shape, [20, 1, 28, 28]);
});

test('attack fgsm takes --input/--labels and --targeted; human output without --json', () => {
  const x = npy('x.npy', new Float32Array(4 * 784).fill(0.2), [4, 1, 28, 28]);
  const y = npy('y.npy', new BigInt64Array([0n, 1n, 2n, 3n]), [4]);
  const r = cli('fgsm', '--model', REFERENCE_MODEL, '--input', x, '--labels', y, '--eps', '0.1', '--targeted', '--target-class', '7', '--threads', '1');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /fgsm: 4 examples, norm L∞, eps 0.1, targeted/);
  assert.match(r.stdout, /robust accuracy/);
});

test('bad input ends in a coded error and exit 2', () => {
  const m = REFERENCE_MODEL;
  assertUserError(cli('pgd', '--model', m, '--data', data, '--eps', '3'), 'BULWARK_E_ARG', /exceeds the diameter/);
  assertUserError(cli('pgd', '--model', m, '--data', data, '--eps=-0.1'), 'BULWARK_E_ARG', /--eps must be a finite radius > 0/);
  assertUserError(cli('pgd', '--model', m, '--data', data, '--eps', '40', '--norm', '2'), 'BULWARK_E_ARG', /exceeds the diameter/);
  assertUserError(cli('pgd', '--model', m, '--data', data), 'BULWARK_E_USAGE', /needs --eps/);
  assertUserError(cli('pgd', '--model', m, '--data', data, '--eps', '0.1', '--norm', '7'), 'BULWARK_E_ARG', /--norm/);
  assertUserError(cli('fgsm', '--model', m, '--data', data, '--eps', '0.1', '--restarts', '2'), 'BULWARK_E_USAGE', /does not take --restarts/);
  assertUserError(cli('deepfool', '--model', m, '--data', data, '--targeted'), 'BULWARK_E_ARG', /untargeted/);
  assertUserError(cli('cw', '--model', m, '--data', data, '--norm', 'inf'), 'BULWARK_E_ARG', /--norm inf: cw supports --norm 2/);
  assertUserError(cli('lbfgs', '--model', m, '--data', data, '--eps', '0.1'), 'BULWARK_E_USAGE', /unknown attack/);
  const wrong = npy('x32.npy', new Float32Array(2 * 32 * 32), [2, 1, 32, 32]);
  const y2 = npy('y2.npy', new BigInt64Array([1n, 2n]), [2]);
  assertUserError(cli('fgsm', '--model', m, '--input', wrong, '--labels', y2, '--eps', '0.1'), 'BULWARK_E_SHAPE', /expects \[N,1,28,28\]/);
  const big = npy('x255.npy', new Float32Array(2 * 784).fill(255), [2, 1, 28, 28]);
  assertUserError(cli('fgsm', '--model', m, '--input', big, '--labels', y2, '--eps', '0.1'), 'BULWARK_E_ARG', /outside the model bounds/);
});

test('a white-box attack on a model without gradients names the black-box attacks', () => {
  const x = npy('x4.npy', new Float32Array(8).fill(0.5), [2, 4]);
  const y = npy('y4.npy', new BigInt64Array([0n, 1n]), [2]);
  const r = cli('pgd', '--model', hardmaxModel(tmp), '--input', x, '--labels', y, '--eps', '0.1');
  assertUserError(r, 'BULWARK_E_UNSUPPORTED_OP', /Hardmax/);
  assert.match(r.stderr, /square/);
  assert.match(r.stderr, /hsj/);
});
