#!/usr/bin/env node
// Cross-check fixtures/torch/* (written by tools/make_torch_fixtures.py) against onnxruntime-node:
//  1. ORT's output on x.npy matches out.npy (PyTorch), with graphOptimizationLevel 'all';
//  2. the dynamic batch axis works (batch of 1);
//  3. the stored input gradients agree with per-coordinate central differences of the losses computed from
//     ORT's float32 outputs (h = 1e-3, then 3e-4 and 1e-4 where a kink interferes) on the largest and some random gradient coordinates.
// The losses are recomputed here from the ONNX output: logits directly, or log(p) for a 'probs' model
// (CE, margin and DLR are invariant to the per-example shift log p = z - logsumexp(z)).
// Usage: node tools/check_torch_fixtures.mjs [fixtures/torch] [name ...]   exit code 1 on any failure.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ort from 'onnxruntime-node';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = process.argv[2] ?? path.join(here, '..', 'fixtures', 'torch');
const only = new Set(process.argv.slice(3));

function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.toString('latin1', 0, 6) !== '\x93NUMPY') throw new Error(`${file}: not an npy file`);
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const hstart = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', hstart, hstart + hlen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  if (/'fortran_order':\s*True/.test(header)) throw new Error(`${file}: fortran order`);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const body = buf.subarray(hstart + hlen);
  const ab = body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength);
  const types = { '<f4': Float32Array, '<f8': Float64Array, '<i8': BigInt64Array, '<i4': Int32Array };
  if (!types[descr]) throw new Error(`${file}: dtype ${descr}`);
  return { data: new types[descr](ab), shape };
}

function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// per-example losses from one row of scores (logits, or log-probabilities)
function losses(row, y) {
  const C = row.length;
  let m = -Infinity;
  for (const v of row) m = Math.max(m, v);
  let se = 0;
  for (const v of row) se += Math.exp(v - m);
  const ce = m + Math.log(se) - row[y];
  let other = -Infinity;
  for (let j = 0; j < C; j++) if (j !== y) other = Math.max(other, row[j]);
  const sorted = Array.from(row).sort((a, b) => b - a);
  const margin = other - row[y];
  const dlr = -(row[y] - other) / (sorted[0] - sorted[2] + 1e-12);
  return { ce, margin, dlr };
}

function exampleLoss(out, i, C, y, kind) {
  const row = Array.from(out.subarray(i * C, (i + 1) * C), (v) => (kind === 'probs' ? Math.log(v) : v));
  return losses(row, y);
}

let failures = 0;
const fail = (msg) => {
  failures++;
  console.log(`   FAIL ${msg}`);
};

const names = fs.readdirSync(root).filter((n) => fs.existsSync(path.join(root, n, 'meta.json'))).sort();
for (const name of names) {
  if (only.size && !only.has(name)) continue;
  const dir = path.join(root, name);
  const meta = JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8'));
  const x = readNpy(path.join(dir, 'x.npy'));
  const ys = Array.from(readNpy(path.join(dir, 'y.npy')).data, Number);
  const ref = readNpy(path.join(dir, 'out.npy'));
  const sess = await ort.InferenceSession.create(path.join(dir, 'model.onnx'), {
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
    intraOpNumThreads: 1,
  });
  const run = async (data, shape) => (await sess.run({ input: new ort.Tensor('float32', data, shape) })).output.data;
  const [N, C] = ref.shape;
  const out = await run(x.data, x.shape);
  let maxAbs = 0;
  let maxRef = 0;
  for (let i = 0; i < out.length; i++) {
    maxAbs = Math.max(maxAbs, Math.abs(out[i] - ref.data[i]));
    maxRef = Math.max(maxRef, Math.abs(ref.data[i]));
  }
  console.log(`== ${name}: ORT vs torch out max|diff| ${maxAbs.toExponential(2)} (max|out| ${maxRef.toFixed(3)})`);
  if (!(maxAbs <= 1e-5 * Math.max(1, maxRef))) fail(`${name}: output differs from torch`);

  const per = x.data.length / N;
  const one = await run(x.data.slice(0, per), [1, ...x.shape.slice(1)]);
  let d1 = 0;
  for (let j = 0; j < C; j++) d1 = Math.max(d1, Math.abs(one[j] - ref.data[j]));
  if (!(d1 <= 1e-5 * Math.max(1, maxRef))) fail(`${name}: batch-1 run differs (${d1})`);

  // Per-coordinate central differences (one input element at a time, so few ReLU/MaxPool kinks are crossed;
  // a dense random direction crosses many and float32 cannot resolve a step small enough to avoid them).
  // Coordinates: the 6 largest |g| and 6 seeded random ones, per loss.
  const r = rng(12345);
  const xp = Float32Array.from(x.data);
  for (const loss of ['ce', 'margin', 'dlr']) {
    const g = readNpy(path.join(dir, `grad_${loss}.npy`)).data;
    let gmax = 0;
    for (const v of g) gmax = Math.max(gmax, Math.abs(v));
    const order = Array.from(g.keys()).sort((a, b) => Math.abs(g[b]) - Math.abs(g[a]));
    const coords = new Set(order.slice(0, 6));
    while (coords.size < 12) coords.add(Math.floor(r() * g.length));
    let worst = 0;
    let bad = 0;
    let kinks = 0;
    for (const c of coords) {
      const ex = Math.floor(c / per);
      // A kink (ReLU, MaxPool/amax switch, Clip, Abs, Where) inside [x - h, x + h] spoils the difference;
      // retry with smaller steps before calling it a disagreement (float32 noise grows as h shrinks).
      let ok = false;
      let last = '';
      for (const h of [1e-3, 3e-4, 1e-4]) {
        xp[c] = x.data[c] + h;
        const up = xp[c];
        const lp = exampleLoss(await run(xp, x.shape), ex, C, ys[ex], meta.outputKind)[loss];
        xp[c] = x.data[c] - h;
        const down = xp[c];
        const lm = exampleLoss(await run(xp, x.shape), ex, C, ys[ex], meta.outputKind)[loss];
        xp[c] = x.data[c];
        const fd = (lp - lm) / (up - down);
        const err = Math.abs(fd - g[c]);
        const tol = 3e-2 * Math.abs(g[c]) + 3e-3 * gmax;
        last = `g ${g[c].toExponential(3)} vs central difference ${fd.toExponential(3)} (h ${h})`;
        if (err <= tol) {
          worst = Math.max(worst, err / tol);
          ok = true;
          if (h !== 1e-3) kinks++;
          break;
        }
      }
      if (!ok) {
        bad++;
        console.log(`   ${loss} coord ${c}: ${last}`);
      }
    }
    console.log(`   ${loss.padEnd(6)} ${coords.size - bad}/${coords.size} coordinates agree (worst err/tol ${worst.toFixed(2)}${kinks ? `, ${kinks} needed a smaller step` : ''})`);
    if (bad) fail(`${name} ${loss}: ${bad} coordinate(s) disagree`);
  }
}
console.log(failures ? `${failures} failure(s)` : 'all fixtures agree with onnxruntime-node');
process.exit(failures ? 1 : 0);
