/**
 * SISA unlearning on an MNIST subset: forgetting retrains only the affected shard from the right checkpoint, the
 * retrained model's recorded training ids exclude the forgotten examples, their loss rises to non-member levels,
 * and the folder survives a reopen.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BulwarkError } from '../../src/core/errors.js';
import { gatherRows } from '../../src/core/tensor.js';
import { loadData, type Dataset } from '../../src/data/index.js';
import { SisaEnsemble } from '../../src/privacy/unlearning/index.js';
import { run as unlearnCli } from '../../src/cli/unlearn.js';

const mean = (a: ArrayLike<number>) => Array.from(a).reduce((s, v) => s + v, 0) / a.length;

let data: Dataset;
let dir: string;
let ens: SisaEnsemble;

test('setup: SISA ensemble of 4 shards x 4 slices on mnist:train[0:2000]', async () => {
  data = await loadData('mnist:train[0:2000]');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-sisa-'));
  ens = await SisaEnsemble.train(data, dir, { shards: 4, slices: 4, arch: 'mlp', epochsPerSlice: 4, seed: 1, dataSpec: 'mnist:train[0:2000]' });
  const m = ens.manifest;
  const all = m.shards.flatMap((s) => s.slices.flat()).sort((a, b) => a - b);
  assert.deepEqual(all, Array.from({ length: 2000 }, (_, i) => i), 'shards partition the data');
  for (const sh of m.shards) assert.equal(sh.checkpoints.length, 4);
  const test = await loadData('mnist:test[0:500]');
  const votes = await ens.predict(test.x);
  const k = 10;
  let correct = 0;
  for (let i = 0; i < 500; i++) {
    let b = 0;
    for (let j = 1; j < k; j++) if (votes.data[i * k + j]! > votes.data[i * k + b]!) b = j;
    if (b === test.y![i]) correct++;
  }
  console.log(`# SISA ensemble accuracy on mnist:test[0:500]: ${(correct / 5).toFixed(1)}%, trained in ${m.trainSeconds.toFixed(1)} s`);
  assert.ok(correct / 500 > 0.8, `ensemble accuracy ${correct / 500}`);
});

test('forget: only the affected shard retrains, from the earliest affected slice; it never saw the forgotten ids', async () => {
  const m = ens.manifest;
  // 100 examples of shard 2, all in its slice 1, so the checkpoint after slice 0 is reused.
  const victims = m.shards[2]!.slices[1]!.slice(0, 100);
  const x = gatherRows(data.x, victims);
  const y = Int32Array.from(victims, (i) => data.y![i]!);
  const before = await ens.shardLoss(2, x, y);
  // Non-members from the same distribution: training examples of another shard, which shard 2 never saw.
  const others = m.shards[0]!.slices.flat().slice(0, 300);
  const nonMemberLoss = mean(await ens.shardLoss(2, gatherRows(data.x, others), Int32Array.from(others, (i) => data.y![i]!)));
  const testSet = await loadData('mnist:test[0:300]');
  const testLoss = mean(await ens.shardLoss(2, testSet.x, testSet.y!));
  const ckptBefore = [...m.shards[2]!.checkpoints];
  const otherBefore = m.shards.map((s) => [...s.checkpoints]);
  const rec = await ens.forget([...victims, 1_000_000], data);
  assert.deepEqual(rec.retrained, [{ shard: 2, fromSlice: 1 }]);
  assert.deepEqual(rec.ignored, [1_000_000]);
  assert.equal(m.shards[2]!.checkpoints[0], ckptBefore[0], 'the checkpoint before the earliest affected slice is reused');
  for (const s of [0, 1, 3]) assert.deepEqual(m.shards[s]!.checkpoints, otherBefore[s], `shard ${s} untouched`);
  const forgotten = new Set(victims);
  for (let r = 1; r < 4; r++) assert.ok(m.shards[2]!.trainedOn[r]!.every((id) => !forgotten.has(id)), `slice ${r} checkpoint trained on a forgotten id`);
  assert.ok(ens.trainedIds(2).every((id) => !forgotten.has(id)));
  assert.ok(!fs.existsSync(path.join(dir, ckptBefore[3]!)), 'superseded checkpoints are removed');
  const after = await ens.shardLoss(2, x, y);
  const fullTrain = m.trainSeconds;
  console.log(`# forgotten examples' loss (shard 2 model): before ${mean(before).toFixed(3)}, after ${mean(after).toFixed(3)}, non-members (other shards) ${nonMemberLoss.toFixed(3)}, test images ${testLoss.toFixed(3)}`);
  console.log(`# forget wall time ${rec.seconds.toFixed(2)} s vs full ensemble training ${fullTrain.toFixed(2)} s (${((100 * rec.seconds) / fullTrain).toFixed(0)}%)`);
  assert.ok(mean(after) > 3 * mean(before), 'loss of forgotten examples rises');
  assert.ok(mean(after) > 0.5 * nonMemberLoss, 'to non-member levels');
});

test('reopen: the folder holds the state; the CLI forgets by id file and refuses a used folder', async () => {
  const again = SisaEnsemble.open(dir);
  assert.deepEqual(again.manifest.forgotten, ens.manifest.forgotten);
  const ids = path.join(dir, 'ids.json');
  const id = again.manifest.shards[0]!.slices[3]![0]!;
  fs.writeFileSync(ids, JSON.stringify([id]));
  const lines: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  // Capture only the command's JSON line; the test reporter's own output passes through.
  process.stdout.write = ((s: string | Uint8Array, ...rest: unknown[]) => (typeof s === 'string' && s.startsWith('{') ? (lines.push(s), true) : (write as (...a: unknown[]) => boolean)(s, ...rest))) as typeof process.stdout.write;
  let code: number;
  try {
    code = await unlearnCli(['--sisa', dir, '--forget', ids, '--json']);
  } finally {
    process.stdout.write = write;
  }
  assert.equal(code, 0);
  const out = JSON.parse(lines.at(-1)!);
  assert.deepEqual(out.retrained, [{ shard: 0, fromSlice: 3 }]);
  assert.ok(!SisaEnsemble.open(dir).trainedIds(0).includes(id));
  await assert.rejects(SisaEnsemble.train(data, dir, { shards: 2, slices: 2 }), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_SISA_STATE');
  fs.rmSync(dir, { recursive: true, force: true });
});
