import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { repoRoot, assertUserError } from '../helpers.js';
import { checkParallelism, numberFlag, parallelismLimit, parseDecimal, parseFlags } from '../../src/cli/args.js';
import { BulwarkError } from '../../src/core/errors.js';

const bin = path.join(repoRoot, 'bin', 'bulwark.js');
const fx = path.join(repoRoot, 'fixtures', 'torch', 'cnn_norm');
const good = { x: path.join(fx, 'x.npy'), y: path.join(fx, 'y.npy'), m: path.join(fx, 'model.onnx') };
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-flags-'));

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    if (e instanceof BulwarkError) return `${e.code}: ${e.message}`;
    throw e;
  }
  return undefined;
}

test('a flag that takes one value given twice is a usage error naming the flag', () => {
  const train = ['train', '--arch', 'flatten,dense:10', '--data', 'mnist:train[0:10]'];
  assertUserError(cli(...train, '--out', path.join(tmp, 'a.onnx'), '--out', path.join(tmp, 'b.onnx')), 'BULWARK_E_USAGE', /--out is given 2 times/);
  assertUserError(cli(...train, '--out', path.join(tmp, 'a.onnx'), '--epochs', '1', '--epochs', '2'), 'BULWARK_E_USAGE', /--epochs is given 2 times \("1", "2"\)/);
  assertUserError(cli('attack', 'fgsm', '--model', good.m, '--input', good.x, '--labels', good.y, '--eps', '0.1', '--eps=0.3'), 'BULWARK_E_USAGE', /--eps is given 2 times/);
  // short and long spellings of one flag count as one flag
  assertUserError(cli(...train, '-o', path.join(tmp, 'a.onnx'), '--out', path.join(tmp, 'b.onnx')), 'BULWARK_E_USAGE', /--out is given 2 times/);
  assert.ok(!fs.existsSync(path.join(tmp, 'a.onnx')) && !fs.existsSync(path.join(tmp, 'b.onnx')));
});

test('flags meant to repeat still take every value', () => {
  const opts = { allow: { type: 'string', multiple: true }, json: { type: 'boolean' } } as const;
  const p = parseFlags(['--allow', 'a.b', '--allow', 'c.d', '--json', '--json'], opts, 'help');
  assert.deepEqual(p!.values['allow'], ['a.b', 'c.d']);
  const r = cli('scan-file', good.x, '--allow', 'numpy.core', '--allow', 'collections.OrderedDict', '--json');
  assert.equal(r.code, 0, r.stderr);
});

test('numeric flags take plain decimal or scientific notation only', () => {
  assert.equal(parseDecimal('1e-3'), 1e-3);
  assert.equal(parseDecimal('-.5'), -0.5);
  assert.equal(parseDecimal('3.'), 3);
  for (const bad of ['0x10', '0b1', '0o7', '1_000', 'Infinity', '', ' 1', '1 ', '1e', '.', '+-1']) assert.ok(Number.isNaN(parseDecimal(bad)), bad);
  assert.match(codeOf(() => numberFlag({ lr: '0x10' }, 'lr', 0))!, /BULWARK_E_ARG: --lr must be a decimal number, got "0x10"/);
  assert.equal(numberFlag({ lr: '2.5e-2' }, 'lr', 0), 0.025);
  assertUserError(cli('train', '--arch', 'flatten,dense:10', '--data', 'mnist:train[0:10]', '--out', path.join(tmp, 'h.onnx'), '--lr', '0x10'), 'BULWARK_E_ARG', /--lr must be a decimal number, got "0x10"/);
  assertUserError(cli('attack', 'fgsm', '--model', good.m, '--input', good.x, '--labels', good.y, '--eps', '0x1'), 'BULWARK_E_ARG', /--eps/);
  assertUserError(cli('evaluate', '--model', good.m, '--data', 'mnist:test[0:4]', '--eps', '0x1'), 'BULWARK_E_ARG', /--eps/);
  assertUserError(cli('certify', '--model', good.m, '--data', 'mnist:test[0:4]', '--sigma', '0x1'), 'BULWARK_E_SMOOTHING', /--sigma/);
  assert.ok(!fs.existsSync(path.join(tmp, 'h.onnx')));
});

test('a negative number after a flag is that flag\'s value, range-checked like --flag=-1', () => {
  const train = ['train', '--arch', 'flatten,dense:10', '--data', 'mnist:train[0:10]', '--out', path.join(tmp, 'n.onnx')];
  const spaced = cli(...train, '--epochs', '-1');
  const joined = cli(...train, '--epochs=-1');
  assertUserError(spaced, 'BULWARK_E_ARG', /epochs/);
  assert.doesNotMatch(spaced.stderr, /ambiguous|Usage:/);
  assert.equal(spaced.stderr, joined.stderr);
  const attack = ['attack', 'fgsm', '--model', good.m, '--input', good.x, '--labels', good.y];
  assertUserError(cli(...attack, '--eps', '-0.1'), 'BULWARK_E_ARG', /--eps must be a finite radius > 0, got -0\.1/);
  assertUserError(cli(...attack, '--eps', '-.5'), 'BULWARK_E_ARG', /--eps must be a finite radius > 0, got -0.5/);
  // a flag after a flag that wants a value is still a usage error, and a negative value of a boolean flag is not swallowed
  assertUserError(cli(...attack, '--eps', '--json'), 'BULWARK_E_USAGE');
  assertUserError(cli(...attack, '--json', '-1'), 'BULWARK_E_USAGE');
  const p = parseFlags(['--seed', '-3', '--', '--seed', '-4'], { seed: { type: 'string' } }, 'help', true);
  assert.equal(p!.values['seed'], '-3');
  assert.deepEqual(p!.positionals, ['--seed', '-4']);
});

test('--threads and --workers are bounded by the machine\'s cores, and so is their product', () => {
  const limit = parallelismLimit();
  assert.equal(limit, Math.max(2, os.availableParallelism()));
  const predict = ['predict', '--model', good.m, '--input', good.x, '--out', path.join(tmp, 'p.npy')];
  assertUserError(cli(...predict, '--threads', '1000'), 'BULWARK_E_ARG', new RegExp(`--threads must be in \\[0, ${limit}\\], got 1000`));
  assertUserError(cli(...predict, '--threads', String(limit + 1)), 'BULWARK_E_ARG', /--threads must be in/);
  assertUserError(cli(...predict, '--workers', String(limit + 1)), 'BULWARK_E_ARG', new RegExp(`--workers must be in \\[1, ${limit}\\]`));
  assertUserError(cli('train', '--arch', 'flatten,dense:10', '--data', 'mnist:train[0:10]', '--out', path.join(tmp, 't.onnx'), '--workers', '1024'), 'BULWARK_E_ARG', /--workers must be in/);
  assertUserError(cli('eval', '--model', good.m, '--data', 'mnist:test[0:4]', '--threads', '1024'), 'BULWARK_E_ARG', /--threads must be in/);
  assert.ok(!fs.existsSync(path.join(tmp, 'p.npy')));
  const ok = cli(...predict, '--threads', String(limit), '--workers', '1');
  assert.equal(ok.code, 0, ok.stderr);
  // the product: at most twice the cores
  assert.doesNotThrow(() => checkParallelism(limit, 2));
  assert.doesNotThrow(() => checkParallelism(0, limit));
  assert.match(codeOf(() => checkParallelism(limit, limit + 1))!, /BULWARK_E_ARG: --threads \d+ with --workers \d+ runs \d+ threads; --threads × --workers must be at most/);
  assert.equal(codeOf(() => checkParallelism(undefined, limit)), undefined);
});

test('an unknown command is BULWARK_E_USAGE with the list of commands', () => {
  const r = cli('bogus', '--model', 'x');
  assertUserError(r, 'BULWARK_E_USAGE', /unknown command "bogus"/);
  assert.match(r.stderr, /hint: Commands are info, predict, grad, .*audit; run `bulwark --help`/);
  assertUserError(cli('--bogus'), 'BULWARK_E_USAGE', /unknown command "--bogus"/);
});

test('--data with --input or --labels, and --n-targets without --targeted, are refused instead of ignored', () => {
  const out = path.join(tmp, 'g.npy');
  const data = 'mnist:test[0:4]';
  assertUserError(cli('grad', '--model', good.m, '--data', data, '--labels', good.y, '--out', out), 'BULWARK_E_USAGE', /--labels goes with --input; --data brings its own labels/);
  assertUserError(cli('grad', '--model', good.m, '--data', data, '--input', good.x, '--labels', good.y, '--out', out), 'BULWARK_E_USAGE', /either --input or --data/);
  assertUserError(cli('grad', '--model', good.m, '--input', good.x, '--labels', good.y, '--kappa', '1', '--out', out), 'BULWARK_E_USAGE', /--kappa applies to --loss margin/);
  assertUserError(cli('predict', '--model', good.m, '--data', data, '--input', good.x, '--out', out), 'BULWARK_E_USAGE', /either --input or --data/);
  assertUserError(cli('attack', 'fgsm', '--model', good.m, '--data', data, '--labels', good.y, '--eps', '0.1'), 'BULWARK_E_USAGE', /--labels goes with --input/);
  assertUserError(cli('attack', 'pgd', '--model', good.m, '--labels', good.y, '--eps', '0.1'), 'BULWARK_E_USAGE', /--labels needs --input/);
  // evaluate takes --data only: the others are unknown flags
  assertUserError(cli('evaluate', '--model', good.m, '--data', data, '--labels', good.y, '--eps', '0.1'), 'BULWARK_E_USAGE', /labels/);
  assertUserError(cli('attack', 'apgd-ce', '--model', good.m, '--data', data, '--eps', '0.1', '--n-targets', '3'), 'BULWARK_E_USAGE', /--n-targets applies to apgd-ce --targeted/);
  assert.ok(!fs.existsSync(out));
  // the lawful spellings still run
  const r = cli('grad', '--model', good.m, '--data', `${good.x},${good.y}`, '--out', out, '--json');
  assert.equal(r.code, 0, r.stderr);
  const t = cli('attack', 'apgd-ce', '--model', good.m, '--input', good.x, '--labels', good.y, '--eps', '0.1', '--steps', '2', '--targeted', '--n-targets', '2', '--workers', '1', '--json');
  assert.equal(t.code, 0, t.stderr);
  assert.equal(JSON.parse(t.stdout.trim().split('\n').pop()!).targeted, true);
});

test('a URL where a local ONNX file is needed is refused as a URL, not as a missing file', () => {
  const remote = 'http://127.0.0.1:9/v2/models/x';
  assertUserError(cli('evaluate', '--model', remote, '--data', 'mnist:test[0:4]', '--eps', '0.1'), 'BULWARK_E_USAGE', /--model http:\/\/127\.0\.0\.1:9\/v2\/models\/x: this command runs a local ONNX file/);
  const scan = cli('scan', '--model', 'https://h/v2/models/x', '--data', 'mnist:test[0:4]', '--out', path.join(tmp, 'scan'));
  assertUserError(scan, 'BULWARK_E_USAGE', /local ONNX file/);
  assert.match(scan.stderr, /hint: .*black-box attacks/);
  for (const url of ['ftp://h/m.onnx', 'file:///etc/passwd']) {
    assertUserError(cli('attack', 'square', '--model', url, '--data', 'mnist:test[0:4]', '--eps', '0.1'), 'BULWARK_E_REMOTE_URL', /--model .*: (ftp|file): URLs are not supported/);
    assertUserError(cli('evaluate', '--model', url, '--data', 'mnist:test[0:4]', '--eps', '0.1'), 'BULWARK_E_REMOTE_URL');
  }
  assertUserError(cli('eval', '--model', 'ftp://h/m.onnx', '--data', 'mnist:test[0:4]'), 'BULWARK_E_REMOTE_URL');
  assertUserError(cli('certify', '--model', 'http://h/v2/models/m', '--data', 'mnist:test[0:4]', '--sigma', '0.25'), 'BULWARK_E_USAGE', /local ONNX file/);
  assertUserError(cli('detect', 'fit', '--model', 'http://h/v2/models/m', '--data', 'mnist:test[0:4]', '--out', path.join(tmp, 'd.json')), 'BULWARK_E_USAGE', /local ONNX file/);
  assert.ok(!fs.existsSync(path.join(tmp, 'scan')));
});

test('a gate on a known metric of a section --sections leaves out fails (exit 1, not measured); an unknown metric stays exit 2', () => {
  const out = path.join(tmp, 'gate');
  const base = ['scan', '--model', good.m, '--data', 'mnist:test[0:8]', '--out', out, '--sections', 'supply-chain'];
  const r = cli(...base, '--fail-under', 'certified-accuracy=0.5');
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr + r.stdout, /certified-accuracy was not measured/);
  const j = cli(...base, '--fail-under', 'certified-accuracy=0.5', '--fail-over', 'mia-tpr-at-1fpr=0.05', '--json');
  assert.equal(j.code, 1, j.stderr);
  const gates = JSON.parse(j.stdout.trim().split('\n').pop()!).gates as { metric: string; actual: number | null; passed: boolean }[];
  assert.deepEqual(gates.map((g) => [g.metric, g.actual, g.passed]), [['certified-accuracy', null, false], ['mia-tpr-at-1fpr', null, false]]);
  assertUserError(cli(...base, '--fail-under', 'certified-acc=0.5'), 'BULWARK_E_GATE', /unknown metric "certified-acc"/);
  assertUserError(cli(...base, '--fail-under', 'certified-accuracy=0x1'), 'BULWARK_E_GATE', /"0x1" is not a number/);
  const help = cli('scan', '--help').stdout;
  assert.match(help, /--sections leaves out, fails its gate: exit 1/);
});

test('train --arch must end in dense:<K>: flatten,relu is BULWARK_E_ARCH and writes nothing', () => {
  const out = path.join(tmp, 'arch.onnx');
  assertUserError(cli('train', '--arch', 'flatten,relu', '--data', 'mnist:train[0:10]', '--out', out, '--epochs', '1'), 'BULWARK_E_ARCH', /the last layer must be dense:<K>/);
  assertUserError(cli('train', '--arch', 'flatten,dense:1', '--data', 'mnist:train[0:10]', '--out', out, '--epochs', '1'), 'BULWARK_E_ARCH', /K >= 2/);
  assert.ok(!fs.existsSync(out));
  assert.match(cli('train', '--help').stdout, /The last layer must be dense:<K>/);
});

test('attack option errors name the CLI flag with one range, never the library option name', () => {
  const base = ['--model', good.m, '--data', 'mnist:test[0:4]', '--workers', '1'];
  const cases: [string[], string, RegExp][] = [
    [['pgd', '--eps', '0.1', '--step-size', '0'], 'BULWARK_E_ARG', /--step-size must be > 0, got 0/],
    [['pgd', '--eps', '0.1', '--step-size', '-1'], 'BULWARK_E_ARG', /--step-size must be > 0, got -1/],
    [['square', '--eps', '0.1', '--p-init', '0'], 'BULWARK_E_ARG', /--p-init must be > 0 and <= 1, got 0/],
    [['cw', '--c', '0'], 'BULWARK_E_ARG', /--c must be > 0, got 0/],
    [['nes', '--eps', '0.1', '--sigma', '0'], 'BULWARK_E_ARG', /--sigma must be > 0, got 0/],
    [['patch', '--norm', '2'], 'BULWARK_E_USAGE', /patch takes no --norm/],
    [['fgsm', '--eps', '0.1', '--norm', '1'], 'BULWARK_E_ARG', /--norm 1: fgsm supports --norm inf or 2/],
    // checks only the attack's schema makes come back with the flag's name
    [['deepfool', '--overshoot', '11'], 'BULWARK_E_ARG', /deepfool: --overshoot must be <= 10, got 11/],
    [['nes', '--eps', '0.1', '--samples', '3', '--steps', '1'], 'BULWARK_E_ARG', /nes: --samples must be even/],
    // eps 0 is refused by attack as by evaluate, with the same words
    [['fgsm', '--eps', '0'], 'BULWARK_E_ARG', /--eps must be a finite radius > 0, got 0/],
  ];
  for (const [args, code, re] of cases) {
    const r = cli('attack', ...args.slice(0, 1), ...base, ...args.slice(1));
    assertUserError(r, code, re);
    assert.doesNotMatch(r.stderr, /option [a-z]+[A-Z]|option (norm|sigma|samples|overshoot)\b/, r.stderr);
  }
  assertUserError(cli('evaluate', '--model', good.m, '--data', 'mnist:test[0:4]', '--eps', '0'), 'BULWARK_E_ARG', /--eps must be a finite radius > 0, got 0/);
  assert.match(cli('attack', '--help').stdout, /eps 0 is refused as by evaluate and scan/);
});

test('train flags are range-checked by the CLI, naming the flag', () => {
  const train = ['train', '--arch', 'flatten,dense:10', '--data', 'mnist:train[0:10]', '--out', path.join(tmp, 'tr.onnx')];
  assertUserError(cli(...train, '--epochs', '0'), 'BULWARK_E_ARG', /--epochs must be in \[1, 1000000\], got 0/);
  assertUserError(cli(...train, '--batch-size', '2.5'), 'BULWARK_E_ARG', /--batch-size must be an integer/);
  assertUserError(cli(...train, '--lr', '0'), 'BULWARK_E_ARG', /--lr must be > 0/);
  assertUserError(cli(...train, '--label-smoothing', '1'), 'BULWARK_E_ARG', /--label-smoothing must be in \[0, 1\)/);
  assertUserError(cli(...train, '--optimizer', 'lion'), 'BULWARK_E_ARG', /--optimizer must be sgd, adam or adamw/);
});

test('file and array errors name the flag they came from: --out, --model, --input, --labels', async () => {
  const { encodeNpy } = await import('../../src/data/npy.js');
  const npy = (name: string, data: Float32Array | BigInt64Array, shape: number[]) => {
    const file = path.join(tmp, name);
    fs.writeFileSync(file, encodeNpy({ data, shape, dtype: data instanceof Float32Array ? 'float32' : 'int64' }));
    return file;
  };
  const folder = fs.mkdtempSync(path.join(tmp, 'od-'));
  assertUserError(cli('predict', '--model', good.m, '--input', good.x, '--out', folder), 'BULWARK_E_FILE_WRITE', /--out: cannot write .*od-\w+: it is a folder/);
  assertUserError(cli('grad', '--model', good.m, '--input', good.x, '--labels', good.y, '--out', folder), 'BULWARK_E_FILE_WRITE', /--out: cannot write/);
  assertUserError(cli('attack', 'fgsm', '--model', good.m, '--input', good.x, '--labels', good.y, '--eps', '0.1', '--workers', '1', '--out', folder), 'BULWARK_E_FILE_WRITE', /--out: cannot write/);
  assertUserError(cli('eval', '--model', path.join(tmp, 'none.onnx'), '--data', 'mnist:test[0:4]'), 'BULWARK_E_FILE_NOT_FOUND', /--model: model file not found/);
  assertUserError(cli('predict', '--model', path.join(tmp, 'none.onnx'), '--input', good.x, '--out', path.join(tmp, 'p10.npy')), 'BULWARK_E_FILE_NOT_FOUND', /--model: /);
  const x3 = npy('x3d.npy', new Float32Array(3 * 784), [3, 28, 28]);
  assertUserError(cli('predict', '--model', good.m, '--input', x3, '--out', path.join(tmp, 'p10.npy')), 'BULWARK_E_SHAPE', /--input: input has shape \[3,28,28\]/);
  const nan = new Float32Array(2 * 784);
  nan[5] = NaN;
  assertUserError(cli('predict', '--model', good.m, '--input', npy('nan.npy', nan, [2, 1, 28, 28]), '--out', path.join(tmp, 'p10.npy')), 'BULWARK_E_NONFINITE', /--input: input holds a non-finite value/);
  const y3 = npy('y3.npy', new BigInt64Array([1n, 2n, 3n]), [3]);
  assertUserError(cli('grad', '--model', good.m, '--input', good.x, '--labels', y3, '--out', path.join(tmp, 'g10.npy')), 'BULWARK_E_LABELS', /--labels: labels has 3 entries for 6 inputs/);
  assertUserError(cli('attack', 'fgsm', '--model', good.m, '--input', good.x, '--labels', y3, '--eps', '0.1'), 'BULWARK_E_LABELS', /--labels: labels has 3 entries/);
  assert.ok(!fs.existsSync(path.join(tmp, 'p10.npy')) && !fs.existsSync(path.join(tmp, 'g10.npy')));
});
