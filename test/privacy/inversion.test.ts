/**
 * MI-Face model inversion on the reference MNIST model: the reconstruction of most classes is nearer (cosine) to
 * its own class's mean image than to any other class's; the PNG encoder writes valid files; the CLI writes one PNG
 * per class and a JSON summary.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { inflateSync } from 'node:zlib';
import { BulwarkError } from '../../src/core/errors.js';
import { loadData } from '../../src/data/index.js';
import { loadModel, type OnnxModel } from '../../src/runtime/model.js';
import { classMeans, cosineSimilarity, crc32, encodePng, invertClasses, scoreReconstructions, ssim } from '../../src/privacy/inversion/index.js';
import { hardenOutput } from '../../src/privacy/extraction/index.js';
import { run as invertCli } from '../../src/cli/invert.js';
import { repoRoot } from '../helpers.js';

const REF = path.join(repoRoot, 'fixtures', 'models', 'mnist-cnn-small.onnx');
let model: OnnxModel;

test('setup', async () => {
  model = await loadModel(REF);
});

test('MI-Face: reconstructions are nearest to their own class mean for most MNIST classes', async () => {
  const ds = await loadData('mnist:train[0:5000]');
  const { means, counts } = classMeans(ds, 10);
  assert.equal(counts.reduce((a, b) => a + b, 0), 5000);
  const classes = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const r = await invertClasses(model, classes, { steps: 100, restarts: 6, seed: 0 });
  const { scores, ownNearestRate } = scoreReconstructions(r, means);
  console.log(`# MI-Face (100 steps, 6 restarts): own class mean nearest for ${Math.round(ownNearestRate * 10)}/10 classes; cosine ${scores.map((s) => s.cosine.toFixed(2)).join(',')}; SSIM ${scores.map((s) => s.ssim.toFixed(2)).join(',')}; confidence ${Array.from(r.confidence, (c) => c.toFixed(2)).join(',')} (${r.seconds.toFixed(1)} s)`);
  // Measured: 7/10 with seeds 0 and 1 (the misses are 1, 2 and 9, which land on 8, 3 or 8, and 5).
  assert.ok(ownNearestRate >= 0.6, `own-class rate ${ownNearestRate}`);
  for (let i = 0; i < r.images.data.length; i++) assert.ok(r.images.data[i]! >= 0 && r.images.data[i]! <= 1, 'projected to bounds');
  assert.ok(Array.from(r.confidence).every((c) => c > 0.9), 'the model is confident on its reconstructions');
  assert.equal(r.queries, 100 * 60);
});

test('similarity scores: identical images score 1, SSIM is symmetric and below 1 for different images', () => {
  const a = Float32Array.from({ length: 64 }, (_, i) => (i % 7) / 7);
  const b = Float32Array.from({ length: 64 }, (_, i) => (i % 5) / 5);
  assert.ok(Math.abs(cosineSimilarity(a, a) - 1) < 1e-6);
  assert.ok(Math.abs(ssim(a, a, [1, 8, 8]) - 1) < 1e-6);
  assert.ok(Math.abs(ssim(a, b, [1, 8, 8]) - ssim(b, a, [1, 8, 8])) < 1e-9);
  assert.ok(ssim(a, b, [1, 8, 8]) < 0.9);
});

test('PNG: signature, chunk CRCs and pixels round-trip through zlib', () => {
  const px = Uint8Array.from({ length: 12 }, (_, i) => i * 20);
  const png = encodePng(px, 4, 3, 1);
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  let off = 8;
  const types: string[] = [];
  let idat = Buffer.alloc(0);
  while (off < png.length) {
    const len = png.readUInt32BE(off);
    const type = png.toString('ascii', off + 4, off + 8);
    assert.equal(png.readUInt32BE(off + 8 + len), crc32(png, off + 4, off + 8 + len), `${type} CRC`);
    if (type === 'IDAT') idat = Buffer.concat([idat, png.subarray(off + 8, off + 8 + len)]);
    types.push(type);
    off += 12 + len;
  }
  assert.deepEqual(types, ['IHDR', 'IDAT', 'IEND']);
  const raw = inflateSync(idat);
  for (let y = 0; y < 3; y++) {
    assert.equal(raw[y * 5], 0);
    assert.deepEqual([...raw.subarray(y * 5 + 1, y * 5 + 5)], [...px.subarray(y * 4, y * 4 + 4)]);
  }
  // CRC-32 check value of "123456789".
  assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
});

test('inversion needs gradients; the CLI writes one PNG per class and JSON', async () => {
  await assert.rejects(invertClasses(hardenOutput(model, { kind: 'label-only' }), [0]), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_MODEL');
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-invert-'));
  const lines: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  // Capture only the command's JSON line; the test reporter's own output passes through.
  process.stdout.write = ((s: string | Uint8Array, ...rest: unknown[]) => (typeof s === 'string' && s.startsWith('{') ? (lines.push(s), true) : (write as (...a: unknown[]) => boolean)(s, ...rest))) as typeof process.stdout.write;
  let code: number;
  try {
    code = await invertCli(['--model', REF, '--class', '3', '--data', 'mnist:test[0:500]', '--steps', '20', '--restarts', '2', '--out', out, '--json']);
  } finally {
    process.stdout.write = write;
  }
  assert.equal(code, 0);
  for (const bad of ['0x3', '3.0', '1e0', ' 3', '-1', '10', '99999999999999999999']) {
    await assert.rejects(
      invertCli(['--model', REF, '--class', bad, '--data', 'mnist:test[0:20]', '--steps', '1', '--restarts', '1', '--out', path.join(out, 'bad')]),
      (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_ARG' && /--class must be all or an integer in \[0, 10\)/.test(e.message),
      bad,
    );
  }
  assert.equal(fs.existsSync(path.join(out, 'bad')), false);
  const res = JSON.parse(lines.at(-1)!);
  assert.equal(res.classes.length, 1);
  assert.equal(res.classes[0].class, 3);
  assert.ok(fs.readFileSync(path.join(out, 'class-3.png')).subarray(1, 4).toString() === 'PNG');
  fs.rmSync(out, { recursive: true, force: true });
});
