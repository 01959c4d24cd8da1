import { test } from 'node:test';
import assert from 'node:assert/strict';
import { builtinSplit, FASHION_MNIST_CLASSES } from '../../src/data/datasets.js';
import { loadData } from '../../src/data/spec.js';

function classCounts(y: Int32Array, k: number): number[] {
  const c = new Array<number>(k).fill(0);
  for (const v of y) c[v]!++;
  return c;
}

function mean(a: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]!;
  return s / a.length;
}

test('MNIST train: 60000 images [N,1,28,28] in [0,1], first label 5, pixel mean 0.1307', () => {
  const ds = builtinSplit('mnist', 'train');
  assert.equal(ds.name, 'mnist:train');
  assert.deepEqual(ds.x.shape, [60000, 1, 28, 28]);
  assert.equal(ds.x.dtype, 'float32');
  assert.equal(ds.y!.length, 60000);
  assert.equal(ds.y![0], 5);
  assert.deepEqual(Array.from(ds.y!.subarray(0, 10)), [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
  assert.ok(Math.abs(mean(ds.x.data) - 0.1307) < 1e-3, `mean ${mean(ds.x.data)}`);
  assert.equal(Math.min(...ds.x.data.subarray(0, 784 * 100)), 0);
  assert.equal(Math.max(...ds.x.data.subarray(0, 784 * 100)), 1);
  assert.equal(ds.numClasses, 10);
  assert.deepEqual(classCounts(ds.y!, 10), [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
});

test('MNIST test: 10000 images, first label 7', () => {
  const ds = builtinSplit('mnist', 'test');
  assert.deepEqual(ds.x.shape, [10000, 1, 28, 28]);
  assert.equal(ds.y![0], 7);
  assert.equal(classCounts(ds.y!, 10).reduce((a, b) => a + b), 10000);
});

test('the cache serves the same parse; loadData hands out copies that cannot alter it', async () => {
  assert.equal(builtinSplit('mnist', 'test'), builtinSplit('mnist', 'test'));
  const a = await loadData('mnist:test');
  assert.notEqual(a.x.data.buffer, builtinSplit('mnist', 'test').x.data.buffer);
  a.x.data.fill(-1);
  a.y![0] = 3;
  const b = await loadData('mnist:test');
  assert.equal(b.y![0], 7);
  assert.ok(b.x.data[0]! >= 0);
});

test('Fashion-MNIST: 60000 train / 10000 test, 6000 / 1000 per class, every prefix class-balanced', () => {
  const train = builtinSplit('fashion-mnist', 'train');
  const test_ = builtinSplit('fashion-mnist', 'test');
  assert.deepEqual(train.x.shape, [60000, 1, 28, 28]);
  assert.deepEqual(test_.x.shape, [10000, 1, 28, 28]);
  assert.deepEqual(classCounts(train.y!, 10), new Array(10).fill(6000));
  assert.deepEqual(classCounts(test_.y!, 10), new Array(10).fill(1000));
  for (const n of [10, 100, 1000, 2500]) assert.deepEqual(classCounts(test_.y!.subarray(0, n), 10), new Array(10).fill(n / 10), `prefix ${n}`);
  const c = classCounts(train.y!.subarray(0, 57), 10);
  assert.ok(Math.max(...c) - Math.min(...c) <= 1, 'an uneven prefix differs by at most one per class');
  assert.equal(train.numClasses, 10);
  assert.deepEqual(train.classNames, FASHION_MNIST_CLASSES);
  assert.equal(train.classNames![9], 'Ankle boot');
  assert.ok(train.x.data.every((v) => v >= 0 && v <= 1));
  const m = mean(train.x.data);
  assert.ok(m > 0.25 && m < 0.33, `pixel mean ${m} (Fashion-MNIST is about 0.286)`);
});

test('Fashion-MNIST split is deterministic and train/test images differ', () => {
  const train = builtinSplit('fashion-mnist', 'train');
  const test_ = builtinSplit('fashion-mnist', 'test');
  // Example 0 of each split is class 0 (T-shirt): not blank, and not the same image.
  const a = train.x.data.subarray(0, 784);
  const b = test_.x.data.subarray(0, 784);
  assert.ok(mean(a) > 0.05 && mean(b) > 0.05);
  assert.notDeepEqual(Array.from(a), Array.from(b));
  // Trousers (class 1) are darker than pullovers (class 2) on average: labels line up with images.
  const classMean = (k: number): number => {
    let s = 0;
    for (let i = k; i < 6000; i += 10) s += mean(train.x.data.subarray(i * 784, (i + 1) * 784));
    return s / 600;
  };
  assert.ok(classMean(1) < classMean(2), `trouser ${classMean(1)} vs pullover ${classMean(2)}`);
});
