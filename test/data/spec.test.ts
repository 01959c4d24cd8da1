import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BulwarkError } from '../../src/core/errors.js';
import { writeNpy, writeNpz } from '../../src/data/npy.js';
import { builtinSplit } from '../../src/data/datasets.js';
import { loadData, parseDataSpec, resolveSlice } from '../../src/data/spec.js';
import { fails } from '../helpers.js';

const FIXTURES = fileURLToPath(new URL('../../../fixtures/npy/', import.meta.url));
const TMP = mkdtempSync(join(tmpdir(), 'bulwark-spec-'));
after(() => rmSync(TMP, { recursive: true, force: true }));


test('parses every accepted form', () => {
  assert.deepEqual(parseDataSpec('mnist:train'), { kind: 'builtin', name: 'mnist', split: 'train' });
  assert.deepEqual(parseDataSpec(' mnist:test[0:1000] '), { kind: 'builtin', name: 'mnist', split: 'test', slice: { start: 0, end: 1000 } });
  assert.deepEqual(parseDataSpec('fashion-mnist:test'), { kind: 'builtin', name: 'fashion-mnist', split: 'test' });
  assert.deepEqual(parseDataSpec('mnist:test[:500]').slice, { end: 500 });
  assert.deepEqual(parseDataSpec('mnist:train[-1000:]').slice, { start: -1000 });
  assert.deepEqual(parseDataSpec('data/file.npz'), { kind: 'npz', path: 'data/file.npz' });
  assert.deepEqual(parseDataSpec('x.npy'), { kind: 'npy', path: 'x.npy' });
  assert.deepEqual(parseDataSpec('a/x.npy,a/y.npy'), { kind: 'npy-pair', xPath: 'a/x.npy', yPath: 'a/y.npy' });
  assert.deepEqual(parseDataSpec('t.csv'), { kind: 'csv', path: 't.csv' });
  assert.deepEqual(parseDataSpec('t.csv#label=species'), { kind: 'csv', path: 't.csv', labelColumn: 'species' });
  assert.deepEqual(parseDataSpec('t.csv#label=0[10:20]'), { kind: 'csv', path: 't.csv', labelColumn: 0, slice: { start: 10, end: 20 } });
});

test('bad specs name the problem and list the accepted forms', () => {
  const cases: [string, RegExp][] = [
    ['', /empty data spec/],
    ['mnist', /name a split/],
    ['mnist:validation', /unknown split "validation"/],
    ['cifar10:train', /unknown dataset "cifar10"/],
    ['mnist:test[1:2:3]', /a slice must read \[start:end\]/],
    ['mnist:test[a:b]', /a slice must read/],
    ['data.txt', /neither a built-in dataset nor a \.npz, \.npy or \.csv path/],
    ['t.csv#header=no', /only CSV option is #label/],
  ];
  for (const [spec, re] of cases) {
    assert.throws(() => parseDataSpec(spec), (e: unknown) => {
      fails('BULWARK_E_DATA_SPEC', re)(e);
      assert.match((e as BulwarkError).hint, /mnist:test\[0:1000\].*\.npz.*\.csv/);
      return true;
    }, spec);
  }
});

test('slices resolve like Python but out-of-range bounds are errors naming the size', () => {
  assert.deepEqual(resolveSlice(10, {}, 'd'), [0, 10]);
  assert.deepEqual(resolveSlice(10, { start: -3 }, 'd'), [7, 10]);
  assert.deepEqual(resolveSlice(10, { start: 2, end: -2 }, 'd'), [2, 8]);
  assert.throws(() => resolveSlice(10, { end: 11 }, 'd'), fails('BULWARK_E_DATA_SPEC', /out of range for d, which has 10 examples/));
  assert.throws(() => resolveSlice(10, { start: -11 }, 'd'), fails('BULWARK_E_DATA_SPEC', /10 examples/));
  assert.throws(() => resolveSlice(10, { start: 5, end: 5 }, 'd'), fails('BULWARK_E_DATA_SPEC', /selects no examples/));
});

test('loads built-in slices with the right rows', async () => {
  const full = builtinSplit('mnist', 'test');
  const head = await loadData('mnist:test[0:1000]');
  assert.equal(head.name, 'mnist:test[0:1000]');
  assert.deepEqual(head.x.shape, [1000, 1, 28, 28]);
  assert.equal(head.y![0], 7);
  assert.equal(head.numClasses, 10);
  assert.deepEqual(head.classNames, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
  assert.equal((await loadData('mnist:test[:500]')).y!.length, 500);
  const tail = await loadData('mnist:train[-1000:]');
  const train = builtinSplit('mnist', 'train');
  assert.deepEqual(tail.x.shape, [1000, 1, 28, 28]);
  assert.deepEqual(tail.y, train.y!.slice(59000));
  assert.deepEqual(tail.x.data.subarray(0, 784), train.x.data.subarray(59000 * 784, 59001 * 784));
  const mid = await loadData('mnist:test[100:-9800]');
  assert.deepEqual(mid.y, full.y!.slice(100, 200));
  await assert.rejects(loadData('mnist:test[0:10001]'), fails('BULWARK_E_DATA_SPEC', /mnist:test, which has 10000 examples/));
  const fashion = await loadData('fashion-mnist:test[:20]');
  assert.deepEqual(Array.from(fashion.y!), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
});

test('loads .npz files: x/y by name, else first float and first integer array', async () => {
  for (const f of ['xy.npz', 'xy_compressed.npz', 'positional.npz']) {
    const ds = await loadData(join(FIXTURES, f));
    assert.deepEqual(ds.x.shape, [6, 1, 2, 2], f);
    assert.equal(ds.x.dtype, 'float32');
    assert.ok(Math.abs(ds.x.data[23]! - 23 / 24) < 1e-6, f);
    assert.deepEqual(Array.from(ds.y!), [0, 1, 2, 0, 1, 2], f);
    assert.equal(ds.numClasses, 3);
  }
  const sliced = await loadData(`${join(FIXTURES, 'xy.npz')}[1:3]`);
  assert.deepEqual(Array.from(sliced.y!), [1, 2]);
  assert.deepEqual(sliced.x.shape, [2, 1, 2, 2]);
});

test('loads .npy inputs alone, x.npy,y.npy pairs and one-hot labels', async () => {
  const x = join(TMP, 'x.npy');
  const y = join(TMP, 'y.npy');
  const oneHot = join(TMP, 'onehot.npy');
  writeNpy(x, { data: new Float64Array([1, 2, 3, 4, 5, 6]), shape: [3, 2], dtype: 'float64' });
  writeNpy(y, { data: new Uint8Array([2, 0, 1]), shape: [3], dtype: 'uint8' });
  writeNpy(oneHot, { data: new Float32Array([0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 1, 0]), shape: [3, 4], dtype: 'float32' });
  const only = await loadData(x);
  assert.deepEqual(Array.from(only.x.data), [1, 2, 3, 4, 5, 6]);
  assert.equal(only.y, undefined);
  assert.equal(only.numClasses, undefined);
  const pair = await loadData(`${x},${y}`);
  assert.deepEqual(Array.from(pair.y!), [2, 0, 1]);
  assert.equal(pair.numClasses, 3);
  const hot = await loadData(`${x},${oneHot}`);
  assert.deepEqual(Array.from(hot.y!), [2, 1, 2]);
  assert.equal(hot.numClasses, 4);
  const short = join(TMP, 'short.npy');
  writeNpy(short, { data: new Int32Array([1, 2]), shape: [2], dtype: 'int32' });
  await assert.rejects(loadData(`${x},${short}`), fails('BULWARK_E_SHAPE', /3 inputs but 2 labels/));
  const frac = join(TMP, 'frac.npy');
  writeNpy(frac, { data: new Float32Array([0.5, 1, 2]), shape: [3], dtype: 'float32' });
  await assert.rejects(loadData(`${x},${frac}`), fails('BULWARK_E_LABELS', /label 0 is 0.5/));
  await assert.rejects(loadData(join(TMP, 'absent.npz')), fails('BULWARK_E_FILE_NOT_FOUND'));
  const nan = join(TMP, 'nan.npy');
  writeNpy(nan, { data: new Float32Array([1, NaN]), shape: [2, 1], dtype: 'float32' });
  await assert.rejects(loadData(nan), fails('BULWARK_E_NONFINITE', /nan\.npy/));
});

test('an .npz without a usable input array lists what it holds', async () => {
  const f = join(TMP, 'ints.npz');
  writeNpz(f, { labels: { data: new Int32Array([1, 2]), shape: [2], dtype: 'int32' } });
  await assert.rejects(loadData(f), fails('BULWARK_E_DATA_SPEC', /no array named x.*labels \(int32 \[2\]\)/));
});

test('loads CSV tables, last column or #label=<column>', async () => {
  const f = join(TMP, 'table.csv');
  writeFileSync(f, 'kind,a,b\ncat,1,2\ndog,3,4\ncat,5,6\n');
  const ds = await loadData(`${f}#label=kind`);
  assert.deepEqual(ds.x.shape, [3, 2]);
  assert.deepEqual(Array.from(ds.y!), [0, 1, 0]);
  assert.deepEqual(ds.classNames, ['cat', 'dog']);
  assert.equal(ds.numClasses, 2);
  const last = await loadData(`${f}#label=kind[1:]`);
  assert.deepEqual(Array.from(last.y!), [1, 0]);
  const g = join(TMP, 'nums.csv');
  writeFileSync(g, '0.5,1.5,1\n2.5,3.5,0\n');
  const n = await loadData(g);
  assert.deepEqual(Array.from(n.y!), [1, 0]);
  assert.equal(n.numClasses, 2);
});
