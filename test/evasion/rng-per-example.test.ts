/**
 * Random streams keyed by example (src/evasion/streams.ts): every attack draws example i's random numbers from a
 * stream keyed by (seed, attack, round, global index i, restart), so attacking mnist:test[0:100] in one call, in
 * batches of 7, or only the subset {3, 50, 77} gives bit-identical adversarial inputs (and per-example query counts)
 * at those indices, and a different seed gives different ones.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Float32Tensor } from '../../src/core/tensor.js';
import type { OnnxModel } from '../../src/runtime/model.js';
import { runAttack } from '../../src/evasion/runner.js';
import { streamSeed } from '../../src/evasion/streams.js';
import { takeRows } from '../../src/evasion/geometry.js';
import type { AttackDefinition, AttackResult } from '../../src/evasion/types.js';
import { pgdDefinition } from '../../src/evasion/whitebox/pgd.js';
import { apgdCeDefinition, apgdDlrDefinition } from '../../src/evasion/whitebox/apgd.js';
import { fabDefinition } from '../../src/evasion/whitebox/fab.js';
import { squareDefinition } from '../../src/evasion/blackbox/square.js';
import { hsjDefinition } from '../../src/evasion/blackbox/hsj.js';
import { nesDefinition } from '../../src/evasion/blackbox/nes.js';
import { runEnsemble } from '../../src/evasion/evaluate/ensemble.js';
import { mnistTest, referenceModel } from './reference.js';

const N = 100;
const SUBSET = [3, 50, 77];
const D = 784;

let model: OnnxModel;
let x: Float32Tensor;
let y: Int32Array;
let pool: { x: Float32Tensor; y: Int32Array };

test('setup: the reference model and mnist:test[0:100]', async () => {
  model = await referenceModel();
  ({ x, y } = await mnistTest(0, N));
  const p = await mnistTest(100, 300);
  pool = { x: p.x, y: p.y };
});

function rowBytes(t: Float32Tensor, i: number): Buffer {
  return Buffer.from(t.data.buffer, t.data.byteOffset + i * D * 4, D * 4);
}

/** The rows of `sub` (attacked at global indices `idx`) equal rows `idx` of `full`, bit for bit. */
function assertSameRows(full: AttackResult, sub: AttackResult, idx: number[], what: string): void {
  idx.forEach((g, r) => {
    assert.ok(rowBytes(full.adversarial, g).equals(rowBytes(sub.adversarial, r)), `${what}: example ${g} differs`);
    assert.equal(sub.success[r], full.success[g], `${what}: success of example ${g}`);
  });
  const fq = full.extras['queriesPerExample'] as Int32Array | undefined;
  const sq = sub.extras['queriesPerExample'] as Int32Array | undefined;
  if (fq && sq) {
    const fi = full.extras['queriesIndex'] as Int32Array;
    const si = sub.extras['queriesIndex'] as Int32Array;
    const at = (q: Int32Array, index: Int32Array, row: number): number | undefined => {
      const k = Array.from(index).indexOf(row);
      return k < 0 ? undefined : q[k];
    };
    idx.forEach((g, r) => assert.equal(at(sq, si, r), at(fq, fi, g), `${what}: queries of example ${g}`));
  }
}

/** Runs the attack on x in consecutive batches of `size`, each with its global indices, and stitches the results. */
async function inBatches(def: AttackDefinition<never>, options: Record<string, unknown>, size: number, perExample?: (rows: number[]) => Record<string, unknown>): Promise<{ adversarial: Float32Tensor; success: Uint8Array; queries: Map<number, number> }> {
  const adversarial: Float32Tensor = { data: new Float32Array(x.data.length), shape: [...x.shape], dtype: 'float32' };
  const success = new Uint8Array(N);
  const queries = new Map<number, number>();
  for (let s = 0; s < N; s += size) {
    const rows = Array.from({ length: Math.min(size, N - s) }, (_, k) => s + k);
    const r = await runAttack(def, model, takeRows(x, rows), y.subarray(s, s + rows.length), { ...options, ...(perExample?.(rows) ?? {}) }, { indices: rows });
    adversarial.data.set(r.adversarial.data, s * D);
    success.set(r.success, s);
    const q = r.extras['queriesPerExample'] as Int32Array | undefined;
    if (q) (r.extras['queriesIndex'] as Int32Array).forEach((row, k) => queries.set(s + row, q[k]!));
  }
  return { adversarial, success, queries };
}

interface Case {
  name: string;
  def: AttackDefinition<never>;
  options: Record<string, unknown>;
  /** Options that depend on the examples (per-example targets). */
  perExample?: (rows: number[]) => Record<string, unknown>;
  /** The seed visibly changes the subset's result (false for FAB: its restarts rarely beat the deterministic first run). */
  seedVisible?: boolean;
}

const targetsOf = (rows: number[]) => Int32Array.from(rows, (i) => (y[i]! + 1) % 10);

const CASES: Case[] = [
  { name: 'PGD L∞, random start, 2 restarts', def: pgdDefinition as AttackDefinition<never>, options: { eps: 0.1, steps: 10, stepSize: 0.02, restarts: 2 } },
  { name: 'PGD L2, random start', def: pgdDefinition as AttackDefinition<never>, options: { eps: 1.5, norm: 2, steps: 10 } },
  { name: 'APGD-CE, 2 restarts', def: apgdCeDefinition as AttackDefinition<never>, options: { eps: 0.1, steps: 10, restarts: 2 } },
  { name: 'APGD-T (targeted DLR, top 3)', def: apgdDlrDefinition as AttackDefinition<never>, options: { eps: 0.1, steps: 10, criterion: { kind: 'targeted-topk', k: 3 } } },
  { name: 'FAB L∞, 2 restarts', def: fabDefinition as AttackDefinition<never>, options: { steps: 3, restarts: 2 }, seedVisible: false },
  { name: 'Square L∞', def: squareDefinition as AttackDefinition<never>, options: { eps: 0.1, maxQueries: 150 } },
  { name: 'Square L2', def: squareDefinition as AttackDefinition<never>, options: { eps: 1.5, norm: 2, maxQueries: 150 } },
  { name: 'HopSkipJump L2', def: hsjDefinition as AttackDefinition<never>, options: { steps: 2, initEvals: 20, maxQueries: 400 } },
  { name: 'HopSkipJump L∞', def: hsjDefinition as AttackDefinition<never>, options: { norm: 'inf', steps: 2, initEvals: 20, maxQueries: 400 } },
  {
    name: 'HopSkipJump L2, targeted',
    def: hsjDefinition as AttackDefinition<never>,
    options: { steps: 5, initEvals: 20, maxQueries: 500, initTries: 20 },
    perExample: (rows) => ({ criterion: { kind: 'targeted', targets: targetsOf(rows) }, targetPool: pool }),
  },
  { name: 'NES L∞', def: nesDefinition as AttackDefinition<never>, options: { eps: 0.1, samples: 10, steps: 5, maxQueries: 100 } },
  { name: 'SPSA L2, targeted', def: nesDefinition as AttackDefinition<never>, options: { eps: 1.5, norm: 2, estimator: 'spsa', sigma: 0.01, samples: 10, steps: 5, maxQueries: 100 }, perExample: (rows) => ({ criterion: { kind: 'targeted', targets: targetsOf(rows) } }) },
];

for (const c of CASES) {
  test(`${c.name}: one batch, batches of 7 and the subset {${SUBSET.join(', ')}} agree bit for bit; another seed differs`, async () => {
    const all = Array.from({ length: N }, (_, i) => i);
    const full = await runAttack(c.def, model, x, y, { ...c.options, seed: 5, ...(c.perExample?.(all) ?? {}) });
    assert.equal(full.summary.outOfThreat, 0);
    // the attack did something on the subset (else the comparison is vacuous)
    assert.ok(SUBSET.some((i) => !rowBytes(full.adversarial, i).equals(Buffer.from(x.data.buffer, x.data.byteOffset + i * D * 4, D * 4))), 'the subset was left unperturbed');

    const sub = await runAttack(c.def, model, takeRows(x, SUBSET), Int32Array.from(SUBSET, (i) => y[i]!), { ...c.options, seed: 5, ...(c.perExample?.(SUBSET) ?? {}) }, { indices: SUBSET });
    assertSameRows(full, sub, SUBSET, 'subset');

    const b = await inBatches(c.def, { ...c.options, seed: 5 }, 7, c.perExample);
    for (let i = 0; i < N; i++) {
      assert.ok(rowBytes(full.adversarial, i).equals(rowBytes(b.adversarial, i)), `batches of 7: example ${i} differs`);
      assert.equal(b.success[i], full.success[i], `batches of 7: success of example ${i}`);
    }
    const fq = full.extras['queriesPerExample'] as Int32Array | undefined;
    if (fq) (full.extras['queriesIndex'] as Int32Array).forEach((row, k) => assert.equal(b.queries.get(row), fq[k], `batches of 7: queries of example ${row}`));

    if (c.seedVisible === false) return;
    const other = await runAttack(c.def, model, takeRows(x, SUBSET), Int32Array.from(SUBSET, (i) => y[i]!), { ...c.options, seed: 6, ...(c.perExample?.(SUBSET) ?? {}) }, { indices: SUBSET });
    assert.ok(SUBSET.some((g, r) => !rowBytes(full.adversarial, g).equals(rowBytes(other.adversarial, r))), 'seed 6 gave the same adversarial inputs as seed 5');
  });
}

test('the ensemble (quick suite, L∞ 0.1) on a subset with its indices equals the full run at those indices', async () => {
  const n = 40;
  const xs = takeRows(x, Array.from({ length: n }, (_, i) => i));
  const full = await runEnsemble(model, xs, y.subarray(0, n), { eps: 0.1, norm: 'inf', suite: 'quick', seed: 3 });
  // the later members ran (APGD-CE alone does not break everything at 0.1), so survivors were subsets
  assert.ok(full.members.filter((m) => m.status === 'ran').length >= 3, JSON.stringify(full.members.map((m) => [m.name, m.status])));
  const idx = [3, 12, 27, 33, 39];
  const sub = await runEnsemble(model, takeRows(x, idx), Int32Array.from(idx, (i) => y[i]!), { eps: 0.1, norm: 'inf', suite: 'quick', seed: 3, indices: idx });
  idx.forEach((g, r) => {
    assert.ok(rowBytes(full.adversarial, g).equals(rowBytes(sub.adversarial, r)), `example ${g} differs`);
    assert.equal(sub.brokenBy[r], full.brokenBy[g]);
    assert.equal(sub.robust[r], full.robust[g]);
  });
});

test('stream seeds depend on every part of the key', () => {
  const base = { seed: 0, attack: 'pgd', round: 0, index: 3, restart: 0 };
  const seeds = new Set([
    streamSeed(base),
    streamSeed({ ...base, seed: 1 }),
    streamSeed({ ...base, attack: 'apgd-ce' }),
    streamSeed({ ...base, round: 1 }),
    streamSeed({ ...base, index: 4 }),
    streamSeed({ ...base, restart: 1 }),
    streamSeed({ ...base, stream: 1 }),
    streamSeed({ ...base, seed: 2 ** 32 }),
  ]);
  assert.equal(seeds.size, 8);
  assert.equal(streamSeed(base), streamSeed({ ...base }));
  // distinct seeds over many examples (no collisions among 100000 indices)
  const many = new Set(Array.from({ length: 100000 }, (_, i) => streamSeed({ ...base, index: i })));
  assert.ok(many.size >= 99998, `${many.size}`);
});

test('indices are validated', async () => {
  await assert.rejects(runAttack(pgdDefinition as AttackDefinition<never>, model, takeRows(x, [0, 1]), y.subarray(0, 2), { eps: 0.1, steps: 1 }, { indices: [0] }), /BULWARK_E_ARG|example indices/);
  await assert.rejects(runAttack(pgdDefinition as AttackDefinition<never>, model, takeRows(x, [0, 1]), y.subarray(0, 2), { eps: 0.1, steps: 1 }, { indices: [0, -1] }), /example index/);
});
