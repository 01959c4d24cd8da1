import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Rng } from '../../src/core/rng.js';
import { scanBytes, type ScanResult } from '../../src/supplychain/index.js';
import { repoRoot } from '../helpers.js';

const CORPUS = path.join(repoRoot, 'fixtures', 'scan');
const SEED = 20240611;
const ROUNDS = 20000;
/** Small budgets: every mutated scan must end within them (a scan past its step budget ends with a finding, never a hang). */
const OPTS = { maxSteps: 200_000, maxMemo: 20_000, maxStack: 20_000, maxTotalBytes: 64 << 20, maxEntryBytes: 32 << 20 };

function corpusFiles(): { name: string; bytes: Buffer }[] {
  const out: { name: string; bytes: Buffer }[] = [];
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && e.name !== 'manifest.json') out.push({ name: path.relative(CORPUS, p), bytes: fs.readFileSync(p) });
    }
  };
  walk(CORPUS);
  return out;
}

const INTERESTING = [0, 1, 0x7f, 0x80, 0xff, 0x7fffffff, 0x80000000, 0xffffffff];

/** One seeded mutation (a round stacks one to three): byte flips, truncation, insertion, duplication, or a length-like field overwritten. */
function mutate(src: Buffer, rng: Rng): { bytes: Buffer; how: string } {
  const b = Buffer.from(src);
  const kind = rng.int(6);
  const at = rng.int(Math.max(1, b.length));
  switch (kind) {
    case 0: {
      const n = 1 + rng.int(8);
      for (let i = 0; i < n; i++) b[rng.int(b.length)] = rng.int(256);
      return { bytes: b, how: `flip ${n} bytes` };
    }
    case 1:
      return { bytes: b.subarray(0, at), how: `truncate at ${at}` };
    case 2: {
      const ins = Buffer.alloc(1 + rng.int(16));
      for (let i = 0; i < ins.length; i++) ins[i] = rng.int(256);
      return { bytes: Buffer.concat([b.subarray(0, at), ins, b.subarray(at)]), how: `insert ${ins.length} at ${at}` };
    }
    case 3: {
      const len = Math.min(b.length - at, 1 + rng.int(64));
      return { bytes: Buffer.concat([b.subarray(0, at), b.subarray(at, at + len), b.subarray(at)]), how: `duplicate ${len} at ${at}` };
    }
    case 4: {
      if (b.length < at + 4) return { bytes: b, how: 'noop' };
      const v = INTERESTING[rng.int(INTERESTING.length)]!;
      b.writeUInt32LE(v >>> 0, at);
      return { bytes: b, how: `u32 ${v} at ${at}` };
    }
    default: {
      if (b.length < at + 8) return { bytes: b, how: 'noop' };
      const big = [0n, 1n << 32n, 1n << 40n, (1n << 63n) - 1n, (1n << 64n) - 1n][rng.int(5)]!;
      b.writeBigUInt64LE(big, at);
      return { bytes: b, how: `u64 ${big} at ${at}` };
    }
  }
}

test(`fuzz: ${ROUNDS} seeded mutations of the corpus never throw, hang or fail inside the scanner`, () => {
  const files = corpusFiles();
  assert.ok(files.length > 40);
  const rng = new Rng(SEED);
  const t0 = Date.now();
  let slowest = 0;
  let parseErrors = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const f = files[round % files.length]!;
    let bytes = f.bytes;
    const hows: string[] = [];
    for (let k = 1 + rng.int(3); k > 0; k--) {
      const m = mutate(bytes, rng);
      bytes = m.bytes;
      hows.push(m.how);
    }
    const how = hows.join(', ');
    const start = Date.now();
    let r: ScanResult;
    try {
      // every fourth scan runs with the default limits, the rest with small ones
      r = scanBytes(bytes, f.name, round % 4 === 0 ? {} : OPTS);
    } catch (e) {
      assert.fail(`seed ${SEED} round ${round}: ${f.name} (${how}) threw ${(e as Error).stack}`);
    }
    // timing is reported, never asserted (it depends on the machine's load)
    slowest = Math.max(slowest, Date.now() - start);
    const internal = r.findings.find((x) => x.id === 'scanner-internal-error');
    assert.equal(internal, undefined, `seed ${SEED} round ${round}: ${f.name} (${how}): ${JSON.stringify(internal?.evidence)}`);
    for (const x of r.findings) {
      assert.ok(['critical', 'high', 'medium', 'low', 'info'].includes(x.severity));
      assert.equal(typeof x.id, 'string');
    }
    if (r.findings.some((x) => x.id === 'parse-error')) parseErrors++;
  }
  const total = Date.now() - t0;
  assert.ok(parseErrors > ROUNDS / 20, `only ${parseErrors} mutations gave a parse error; the mutator is too gentle`);
  process.stdout.write(`# fuzz: ${ROUNDS} scans in ${total} ms (slowest ${slowest} ms), ${parseErrors} with parse errors\n`);
});
