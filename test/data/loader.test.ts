import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BulwarkError } from '../../src/core/errors.js';
import { batches, numBatches } from '../../src/data/loader.js';
import type { Dataset } from '../../src/data/spec.js';

/** 10 examples of 3 features; example i holds [i, i + 0.25, i + 0.5] and label i % 4. */
function toy(n = 10): Dataset {
  const x = new Float32Array(n * 3);
  for (let i = 0; i < n; i++) x.set([i, i + 0.25, i + 0.5], i * 3);
  return { name: 'toy', x: { data: x, shape: [n, 3], dtype: 'float32' }, y: Int32Array.from({ length: n }, (_, i) => i % 4), numClasses: 4 };
}

test('in order: batch sizes, contents, dropLast, views into the dataset', () => {
  const ds = toy();
  const all = [...batches(ds, { batchSize: 4 })];
  assert.deepEqual(all.map((b) => b.x.shape), [[4, 3], [4, 3], [2, 3]]);
  assert.deepEqual(Array.from(all[2]!.indices), [8, 9]);
  assert.deepEqual(Array.from(all[2]!.x.data), [8, 8.25, 8.5, 9, 9.25, 9.5]);
  assert.deepEqual(Array.from(all[1]!.y!), [0, 1, 2, 3]);
  assert.equal(all[0]!.x.data.buffer, ds.x.data.buffer, 'unshuffled batches are views');
  assert.equal([...batches(ds, { batchSize: 4, dropLast: true })].length, 2);
  assert.equal(numBatches(10, 4), 3);
  assert.equal(numBatches(10, 4, true), 2);
  assert.equal([...batches(ds, { batchSize: 100 })][0]!.x.shape[0], 10);
});

test('shuffled: a permutation, reproducible from the seed, rows and labels kept together', () => {
  const ds = toy(50);
  const order = (seed: number): number[] => [...batches(ds, { batchSize: 8, shuffle: true, seed })].flatMap((b) => Array.from(b.indices));
  const a = order(7);
  assert.deepEqual(order(7), a);
  assert.notDeepEqual(order(8), a);
  assert.notDeepEqual(a, Array.from({ length: 50 }, (_, i) => i));
  assert.deepEqual([...a].sort((p, q) => p - q), Array.from({ length: 50 }, (_, i) => i));
  for (const b of batches(ds, { batchSize: 8, shuffle: true, seed: 7 })) {
    b.indices.forEach((idx, k) => {
      assert.equal(b.x.data[k * 3], idx);
      assert.equal(b.y![k], idx % 4);
    });
    assert.notEqual(b.x.data.buffer, ds.x.data.buffer, 'shuffled batches are copies');
  }
});

test('unlabelled datasets yield y undefined; bad batch sizes are refused', () => {
  const ds = { ...toy(), y: undefined, numClasses: undefined };
  for (const b of batches(ds, { batchSize: 3, shuffle: true })) assert.equal(b.y, undefined);
  for (const bad of [0, -1, 2.5, NaN]) {
    assert.throws(() => batches(ds, { batchSize: bad }).next(), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_ARG');
  }
});
