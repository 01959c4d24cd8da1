import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadData, readNpy } from '../../src/data/index.js';
import { loadModel } from '../../src/runtime/model.js';
import { featureSqueezing } from '../../src/evasion/defense/squeeze.js';
import { pgd } from '../../src/evasion/whitebox/pgd.js';
import { sliceRows } from '../../src/core/tensor.js';
import { assertUserError, lastJson, repoRoot, runCli } from '../helpers.js';
import { encodeNpy } from '../../src/data/npy.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { ELEM, emptyGraph, writeModelBytes } from '../../src/onnx/ir.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-detect-'));
const modelPath = path.join(repoRoot, 'fixtures', 'models', 'mnist-cnn-small.onnx');
const otherModel = path.join(repoRoot, 'fixtures', 'torch', 'cnn_norm', 'model.onnx');
const detPath = path.join(tmp, 'det.json');

test('detect fit writes the detector; detect score gives the API\'s scores and decisions', async () => {
  const f = await runCli('detect', 'fit', '--model', modelPath, '--data', 'mnist:test[0:100]', '--fpr', '0.1', '--squeezers', 'bit:1,median:2', '--out', detPath, '--json');
  assert.equal(f.code, 0, f.stderr);
  const file = JSON.parse(fs.readFileSync(detPath, 'utf8'));
  assert.equal(file.format, 'bulwark.detector/1');
  assert.deepEqual(file.squeezers, ['bit:1', 'median:2']);
  assert.equal(file.fpr, 0.1);
  assert.ok(file.fitFpr <= 0.1);
  assert.match(file.model.sha256, /^[0-9a-f]{64}$/);
  assert.equal(lastJson(f.stdout).threshold, file.threshold);
  // the same fit through the API
  const model = await loadModel(modelPath);
  const fitX = (await loadData('mnist:test[0:100]')).x;
  const api = featureSqueezing(model, 'bit:1,median:2');
  assert.equal((await api.fit(fitX, 0.1)).threshold, file.threshold);

  const scoresOut = path.join(tmp, 'scores.npy');
  const s = await runCli('detect', 'score', '--model', modelPath, '--detector', detPath, '--data', 'mnist:test[100:140]', '--out', scoresOut, '--json');
  assert.equal(s.code, 0, s.stderr);
  const res = lastJson(s.stdout);
  const x = (await loadData('mnist:test[100:140]')).x;
  const want = await api.score(x);
  const wantFlags = await api.decide(x);
  assert.deepEqual(res.scores, Array.from(want));
  assert.deepEqual(res.decisions, Array.from(wantFlags));
  assert.equal(res.flagged, wantFlags.reduce((a, b) => a + b, 0));
  const npy = readNpy(scoresOut);
  assert.equal(npy.dtype, 'float64');
  assert.deepEqual(Array.from(npy.data as Float64Array), Array.from(want));
  await model.dispose();
});

test('a detector fitted for another model, a malformed detector file and bad flags are coded errors', async () => {
  assert.ok(fs.existsSync(detPath), 'runs after the fit test');
  const x = path.join(repoRoot, 'fixtures', 'torch', 'cnn_norm', 'x.npy');
  assertUserError(await runCli('detect', 'score', '--model', otherModel, '--detector', detPath, '--input', x), 'BULWARK_E_DETECTOR_MODEL', /fitted for a model with sha256/);
  const broken = path.join(tmp, 'broken.json');
  fs.writeFileSync(broken, '{"format": "bulwark.detector/1", "kind": "feature-squeezing"');
  assertUserError(await runCli('detect', 'score', '--model', modelPath, '--detector', broken, '--input', x), 'BULWARK_E_DETECTOR_FILE', /not valid JSON/);
  const noThreshold = path.join(tmp, 'nothreshold.json');
  const file = JSON.parse(fs.readFileSync(detPath, 'utf8'));
  fs.writeFileSync(noThreshold, JSON.stringify({ ...file, threshold: 'high' }));
  assertUserError(await runCli('detect', 'score', '--model', modelPath, '--detector', noThreshold, '--input', x), 'BULWARK_E_DETECTOR_FILE', /threshold/);
  const badSq = path.join(tmp, 'badsq.json');
  fs.writeFileSync(badSq, JSON.stringify({ ...file, squeezers: ['blur:3'] }));
  assertUserError(await runCli('detect', 'score', '--model', modelPath, '--detector', badSq, '--input', x), 'BULWARK_E_SQUEEZER');
  for (const fpr of ['0', '1', '1.5', '-0.1']) {
    assertUserError(await runCli('detect', 'fit', '--model', modelPath, '--data', 'mnist:test[0:30]', `--fpr=${fpr}`, '--out', path.join(tmp, 'x.json')), 'BULWARK_E_ARG', /--fpr must be in \(0, 1\)/);
  }
  assertUserError(await runCli('detect', 'fit', '--model', modelPath, '--data', 'mnist:test[0:30]', '--squeezers', 'bit:1,blur:3', '--out', path.join(tmp, 'x.json')), 'BULWARK_E_SQUEEZER', /blur:3/);
  assertUserError(await runCli('detect', 'frobnicate', '--model', modelPath), 'BULWARK_E_USAGE');
  // an output path that is a folder, and too little data to evaluate
  assertUserError(await runCli('detect', 'fit', '--model', modelPath, '--data', 'mnist:test[0:30]', '--out', tmp), 'BULWARK_E_FILE_WRITE', /--out: cannot write/);
  assertUserError(await runCli('detect', 'score', '--model', modelPath, '--detector', detPath, '--data', 'mnist:test[0:5]', '--out', tmp), 'BULWARK_E_FILE_WRITE', /--out/);
  assertUserError(await runCli('detect', 'evaluate', '--model', modelPath, '--data', 'mnist:test[0:10]', '--eps', '0.1'), 'BULWARK_E_ARG', /--data mnist:test\[0:10\] has 10 examples/);
  assertUserError(await runCli('detect', 'evaluate', '--model', modelPath, '--data', 'mnist:test[0:30]', '--eps', '0.1', '--fit', '5'), 'BULWARK_E_ARG', /--fit/);
  assert.equal(fs.existsSync(path.join(tmp, 'x.json')), false);
});

test('detect evaluate reports FPR, detection of PGD and C&W, and the adaptive attack', async () => {
  const r = await runCli('detect', 'evaluate', '--model', modelPath, '--data', 'mnist:test[0:60]', '--fit', '40', '--eps', '0.3', '--steps', '5', '--cw-steps', '10', '--lambda-steps', '1', '--l2-eps', '1.5', '--adaptive', '--seed', '1', '--json');
  assert.equal(r.code, 0, r.stderr);
  const o = lastJson(r.stdout);
  assert.equal(o.fitExamples, 40);
  assert.equal(o.evalExamples, 20);
  for (const v of [o.heldOutFpr, o.pgd.detectionRate, o.cw.detectionRate, o.adaptive.evasionRate]) assert.ok(v >= 0 && v <= 1);
  // the threshold is fitted on the first 40 rows, the FPR and PGD's detection measured on the other 20
  const data = await loadData('mnist:test[0:60]');
  const model = await loadModel(modelPath);
  try {
    const api = featureSqueezing(model, 'bit:1,median:2');
    assert.equal(o.threshold, (await api.fit(sliceRows(data.x, 0, 40), 0.05)).threshold);
    const evX = sliceRows(data.x, 40, 60);
    const clean = await api.decide(evX);
    assert.equal(o.heldOutFpr, clean.reduce((a, b) => a + b, 0) / 20);
    const p = await pgd(model, evX, data.y!.slice(40), { eps: 0.3, norm: 'inf', steps: 5, seed: 1 });
    const flags = await api.decide(p.adversarial);
    const succ = Array.from(p.success).map((s, i) => (s ? i : -1)).filter((i) => i >= 0);
    assert.equal(o.pgd.successful, succ.length);
    assert.equal(o.pgd.detected, succ.filter((i) => flags[i]).length);
  } finally {
    await model.dispose();
  }
  assert.ok(o.pgd.successful > 0);
  assert.ok(o.adaptive.attacked > 0 && o.adaptive.attacked <= 20, `attacked ${o.adaptive.attacked}`);
  assert.equal(o.cw.l2Budget, 1.5);
  assert.equal(o.adaptiveL2.eps, 1.5);
  assert.ok(o.adaptiveL2.evasionRate >= 0 && o.adaptiveL2.evasionRate <= 1);
});

test('detect evaluate prints n/a, not NaN, for the median L2 when C&W finds no example', async () => {
  // a constant model (zero weights, a bias favouring class 0) on data all labelled 0: no attack can succeed
  const g = emptyGraph({ name: 'const', producer: 'test', inputs: [{ name: 'input', elemType: ELEM.FLOAT, shape: ['N', 1, 4, 4] }] });
  const b = new GraphBuilder(g);
  const w = b.floats('w', new Array(16 * 3).fill(0), [16, 3]);
  const bias = b.floats('bias', [5, 0, 0], [3]);
  const out = b.node('Add', [b.node('MatMul', [b.node('Flatten', ['input'], { axis: 1 }), w]), bias], {}, 'logits', 'output');
  g.outputs.push({ name: out, elemType: ELEM.FLOAT, shape: ['N', 3] });
  const m = path.join(tmp, 'const.onnx');
  fs.writeFileSync(m, writeModelBytes(g));
  const x = Float32Array.from({ length: 30 * 16 }, (_, i) => ((i * 7) % 11) / 10);
  fs.writeFileSync(path.join(tmp, 'cx.npy'), encodeNpy({ data: x, shape: [30, 1, 4, 4], dtype: 'float32' }));
  fs.writeFileSync(path.join(tmp, 'cy.npy'), encodeNpy({ data: new BigInt64Array(30), shape: [30], dtype: 'int64' }));
  const args = ['detect', 'evaluate', '--model', m, '--data', `${path.join(tmp, 'cx.npy')},${path.join(tmp, 'cy.npy')}`, '--eps', '0.1', '--squeezers', 'bit:1', '--steps', '2', '--cw-steps', '2'];
  const j = await runCli(...args, '--json');
  assert.equal(j.code, 0, j.stderr);
  const o = lastJson(j.stdout);
  assert.equal(o.cw.successful, 0);
  assert.equal(o.cw.medianL2, null);
  const r = await runCli(...args);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /median L2 n\/a/);
  assert.doesNotMatch(r.stdout, /NaN/);
});
