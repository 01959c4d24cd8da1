/**
 * Targeted HopSkipJump (Chen, Jordan, Wainwright 2020, arXiv:1904.02144) on the reference MNIST model: starts from
 * an image of the target class (a pool the caller passes, nearest first), walks the targeted decision boundary
 * toward the original, and counts every query exactly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import type { Float32Tensor } from '../../src/core/tensor.js';
import type { OnnxModel } from '../../src/runtime/model.js';
import { hopSkipJump, queryStats } from '../../src/evasion/blackbox/index.js';
import { lastJson, repoRoot } from '../helpers.js';
import { REFERENCE_MODEL, mnistTest, referenceModel, counting } from './reference.js';

let model: OnnxModel;
let x: Float32Tensor;
let y: Int32Array;
let targets: Int32Array;
let pool: { x: Float32Tensor; y: Int32Array };

test('setup', async () => {
  model = await referenceModel();
  ({ x, y } = await mnistTest(0, 20));
  targets = Int32Array.from(y, (l) => (l + 1) % 10);
  const p = await mnistTest(1000, 1200);
  pool = { x: p.x, y: p.y };
});

test('targeted HSJ L2 (10 steps, 5000 queries): reaches the target on most examples, close to the original, queries exact', async () => {
  // Measured (seed 0): 19 of 19 attacked examples reach their target; median L2 2.90 after 10 steps, from 4.67 at
  // the pool image after the first binary search (steps: 0); about 2419 queries per example.
  const bb = counting(model);
  const r = await hopSkipJump(bb, x, y, { norm: 2, steps: 10, maxQueries: 5000, seed: 0, criterion: { kind: 'targeted', targets }, targetPool: pool });
  const attacked = r.attacked.reduce((a, v) => a + v, 0);
  const ok = r.success.reduce((a, v) => a + v, 0);
  assert.ok(attacked >= 18, `attacked ${attacked}`);
  assert.ok(ok >= 0.85 * attacked, `reached the target on ${ok} of ${attacked}`);
  for (let i = 0; i < 20; i++) if (r.success[i]) assert.equal(r.predictions[i], targets[i], `example ${i} is classified as its target`);
  const l2 = Array.from(r.norms.l2).filter((_, i) => r.success[i]);
  const med = queryStats(l2).median;
  assert.ok(med < 3.5, `median L2 ${med}`);
  // exact accounting: per-example counts sum to the model's counter growth; the runner adds a clean and a check pass
  const per = r.extras['queriesPerExample'] as Int32Array;
  assert.ok(Math.max(...per) <= 5000);
  assert.equal(queryStats(per).total, r.queries);
  assert.equal(bb.seen, r.queries + 2 * 20);
  assert.equal(bb.queries, bb.seen);
  assert.equal(r.summary.outOfThreat, 0);
  assert.deepEqual(r.options['targetPool'], { images: 200 });

  // the boundary walk improves on the starting image of the target class
  const start = await hopSkipJump(model, x, y, { norm: 2, steps: 0, seed: 0, criterion: { kind: 'targeted', targets }, targetPool: pool });
  const startMed = queryStats(Array.from(start.norms.l2).filter((_, i) => start.success[i])).median;
  assert.ok(med < 0.8 * startMed, `median L2 ${med} after 10 steps, ${startMed} at the start`);
});

test('targeted HSJ without a pool searches uniform noise; examples without a start stay clean and spend only their tries', async () => {
  const xs = { data: x.data.subarray(0, 5 * 784), shape: [5, 1, 28, 28], dtype: 'float32' as const };
  const bb = counting(model);
  const r = await hopSkipJump(bb, xs, y.subarray(0, 5), { norm: 2, steps: 1, initEvals: 10, maxQueries: 300, initTries: 8, seed: 1, criterion: { kind: 'targeted', targets: targets.subarray(0, 5) } });
  const per = r.extras['queriesPerExample'] as Int32Array;
  assert.equal(queryStats(per).total, r.queries);
  assert.equal(bb.seen, r.queries + 2 * 5);
  const dist = r.extras['hsjDistance'] as Float32Array;
  let found = 0;
  let missed = 0;
  for (let k = 0; k < per.length; k++) {
    const i = (r.extras['queriesIndex'] as Int32Array)[k]!;
    if (!Number.isFinite(dist[k]!)) {
      missed++;
      assert.equal(per[k], 8, `example ${i} spent its 8 noise draws`);
      assert.equal(r.success[i], 0);
      assert.equal(r.norms.l2[i], 0);
    } else {
      found++;
      assert.equal(r.success[i], 1, `example ${i} started in its target class and stays there`);
    }
  }
  // seed 1: noise reached the target of 4 of the 5 examples (not class 1, the target of example 3)
  assert.ok(found >= 1 && missed >= 1, `${found} started, ${missed} did not`);
});

test('targetPool is validated', async () => {
  await assert.rejects(hopSkipJump(model, x, y, { criterion: { kind: 'targeted', targets }, targetPool: { x: pool.x, y: pool.y.subarray(0, 3) } } as never), /one label per image/);
  const wrong = { data: new Float32Array(4 * 100), shape: [4, 1, 10, 10], dtype: 'float32' as const };
  await assert.rejects(hopSkipJump(model, x, y, { steps: 0, criterion: { kind: 'targeted', targets }, targetPool: { x: wrong, y: new Int32Array(4).fill(1) } }), /BULWARK_E_SHAPE|targetPool images/);
});

test('bulwark attack hsj --targeted --target-class starts from the data and reports the pool size', () => {
  const bin = path.join(repoRoot, 'bin', 'bulwark.js');
  const r = spawnSync(process.execPath, [bin, 'attack', 'hsj', '--model', REFERENCE_MODEL, '--data', 'mnist:test[0:40]', '--targeted', '--target-class', '3', '--steps', '2', '--queries', '400', '--threads', '1', '--json'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const j = lastJson(r.stdout);
  assert.equal(j['attack'], 'hsj');
  assert.equal(j['targeted'], true);
  assert.deepEqual(j['options']['targetPool'], { images: 40 });
  // mnist:test[0:40] holds images of class 3, so every attacked example starts from one and reaches class 3
  assert.ok(j['successRate'] >= 0.9, JSON.stringify(j));
  assert.ok(j['queryStats']['max'] <= 400);
});
