/**
 * The hardening section on the reference model, given a training record that claims PGD training with noise
 * (sigma 0.25) and a robust accuracy the model does not have: the certified accuracy equals a direct smoothCertify
 * on the same examples and seed, the detector's threshold and TPR equal a direct featureSqueezing fit and score,
 * the record's claim is contradicted by the scan's own PGD, and the figures in report.json, report.html and
 * report.sarif agree. Seeded throughout; one onnxruntime thread.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gatherRows } from '../../src/core/tensor.js';
import { loadData } from '../../src/data/spec.js';
import { certifiedAccuracy, featureSqueezing, smoothCertify } from '../../src/evasion/defense/index.js';
import { pgd } from '../../src/evasion/whitebox/pgd.js';
import { loadModel } from '../../src/runtime/model.js';
import { HARDENING_SIZES, SMOOTHING_ALPHA, runAssessment, writeReport, type Report } from '../../src/report/index.js';
import { readTrainRecord } from '../../src/report/sections/record.js';
import { REFERENCE_MODEL } from '../evasion/reference.js';
import { validateSarif } from './sarif-check.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-hardening-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const DATA = 'mnist:test[0:300]';
const SIGMA = 0.25;
const CLAIM = 0.9;

/** A copy of the reference model with a record claiming PGD-AT at eps 0.3 plus noise, and 90% robust accuracy. */
function modelWithRecord(): string {
  const file = path.join(tmp, 'claimed.onnx');
  fs.copyFileSync(REFERENCE_MODEL, file);
  const sha = createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  const record = {
    format: 'bulwark.train-record/1',
    modelSha256: sha,
    arch: 'cnn-small',
    data: { spec: 'mnist:train', n: 60000 },
    validation: { spec: 'mnist:test', n: 10000 },
    hyperparameters: { epochs: 2, batchSize: 64, lr: 0.003, optimizer: 'adam' },
    history: [
      { epoch: 1, loss: 0.9, trainAccuracy: 0.7, valAccuracy: 0.95, robustValAccuracy: 0.8 },
      { epoch: 2, loss: 0.5, trainAccuracy: 0.85, valAccuracy: 0.97, robustValAccuracy: CLAIM },
    ],
    hardening: { adv: 'pgd', eps: 0.3, epsRamp: 0, advSteps: 10, advStepSize: 0.075, cleanRatio: 0, noiseSigma: SIGMA, keptEpoch: 2, stopped: null },
  };
  fs.writeFileSync(`${file}.train.json`, JSON.stringify(record));
  return file;
}

let report: Report;
let modelPath: string;

test('hardening section: record, claim check, smoothing, detector and preprocessing figures', async () => {
  modelPath = modelWithRecord();
  report = await runAssessment({ model: modelPath, data: DATA, budget: 'quick', examples: 10, seed: 3, threads: 1, only: ['hardening'], gates: ['certified-accuracy=0.99'] });
  assert.deepEqual(report.sections.map((s) => s.id), ['hardening', 'gates']);
  const h = report.sections[0]!;
  const size = HARDENING_SIZES[0];
  const ds = await loadData(DATA);
  const model = await loadModel(REFERENCE_MODEL, { threads: 1 });
  try {
    const x = gatherRows(ds.x, report.data.indices);
    const y = Int32Array.from(report.data.indices, (i) => ds.y![i]!);

    // randomized smoothing: the same examples, sizes and seed give the same certificates
    const sm = h.details['smoothing'] as { ran: boolean; sigma: number; examples: number; indices: number[]; radius: number; certifiedAccuracy: number; curve: { radius: number; accuracy: number }[]; settings: { n: number; n0: number; alpha: number; seed: number } };
    assert.equal(sm.ran, true);
    assert.equal(sm.sigma, SIGMA, 'sigma from the record');
    assert.equal(sm.examples, 10);
    assert.deepEqual(sm.indices, report.data.indices);
    assert.deepEqual([sm.settings.n, sm.settings.n0, sm.settings.alpha, sm.settings.seed], [size.n, size.n0, SMOOTHING_ALPHA, 3]);
    const direct = await smoothCertify(model, x, { sigma: SIGMA, n: size.n, n0: size.n0, alpha: SMOOTHING_ALPHA, seed: 3 });
    const at = certifiedAccuracy(direct, y, [SIGMA])[0]!.accuracy;
    assert.equal(sm.radius, SIGMA, 'an L∞ scan reads the certificate at one sigma');
    assert.equal(h.metrics['certified-accuracy'], at);
    assert.equal(sm.certifiedAccuracy, at);
    assert.deepEqual(sm.curve, certifiedAccuracy(direct, y, sm.curve.map((p) => p.radius)));
    assert.ok(sm.curve[0]!.accuracy >= sm.curve.at(-1)!.accuracy, 'the curve falls with the radius');
    console.log(`certified accuracy at ${SIGMA}: ${at} (${direct.abstentions} abstentions of 10)`);

    // the record's 90% claim at eps 0.3 against the scan's PGD (the evasion section did not run)
    const claim = h.details['claim'] as { claim: number; measured: number; measuredN: number; margin: number; contradicted: boolean };
    const p = await pgd(model, x, y, { eps: 0.3, norm: 'inf', steps: size.steps, seed: 3 });
    assert.equal(claim.claim, CLAIM);
    assert.equal(claim.measured, p.summary.robustAccuracy);
    assert.equal(claim.measuredN, 10);
    assert.equal(claim.contradicted, true);
    const cf = h.findings.find((f) => f.id === 'hardening-robustness-claim-contradicted')!;
    assert.equal(cf.severity, 'high');
    assert.equal(cf.value, p.summary.robustAccuracy);
    assert.ok(cf.atlas.includes('AML.T0043') && cf.owasp.includes('ML01'));

    // the detector: a direct fit on the same clean rows gives the same threshold; its TPR on the PGD examples
    const det = h.details['detector'] as { threshold: number; fitRows: number[]; testRows: number[]; heldOutFpr: number; tpr: number; positives: number; auc: number; attacks: { attack: string; evasionRate: number; evaded: number }[] };
    assert.equal(det.fitRows.length, 100);
    assert.equal(new Set([...det.fitRows, ...det.testRows, ...report.data.indices]).size, 210, 'fit, test and assessed rows are disjoint');
    const d = featureSqueezing(model);
    const fit = await d.fit(gatherRows(ds.x, det.fitRows), 0.05);
    assert.equal(det.threshold, fit.threshold);
    const held = await d.score(gatherRows(ds.x, det.testRows));
    assert.equal(det.heldOutFpr, held.filter((v) => v > fit.threshold).length / held.length);
    const pos = Array.from(p.success).map((s, i) => (s ? i : -1)).filter((i) => i >= 0);
    assert.equal(det.positives, pos.length);
    const ps = await d.score(gatherRows(p.adversarial, pos));
    assert.equal(det.tpr, ps.filter((v) => v > fit.threshold).length / pos.length);
    assert.equal(h.metrics['detector-tpr'], det.tpr);
    assert.ok(det.auc > 0.5 && det.auc <= 1, `AUC ${det.auc}`);
    assert.equal(h.metrics['detector-adaptive-evasion'], det.attacks.at(-1)!.evasionRate);
    assert.match(det.attacks.at(-1)!.attack, /best of the/);
    assert.ok(det.attacks.at(-1)!.evasionRate >= Math.max(...det.attacks.slice(0, -1).map((a) => a.evasionRate)), 'the attacker keeps the best input');
    assert.ok(det.attacks.at(-1)!.evaded <= det.attacks.slice(0, -1).reduce((t, a) => t + a.evaded, 0));

    // preprocessing: the undefended row equals the model's accuracy on the PGD examples
    const pre = h.details['preprocessing'] as { defenses: { defense: string; clean: number; transferred: number; adaptive: number }[] };
    assert.deepEqual(pre.defenses.map((r) => r.defense), ['none', 'median 3×3', 'JPEG-like q 0.1', 'bit depth 1']);
    assert.equal(pre.defenses[0]!.transferred, p.summary.robustAccuracy);
    for (const r of pre.defenses) for (const k of ['clean', 'transferred', 'adaptive'] as const) assert.ok(r[k] >= 0 && r[k] <= 1);
    assert.equal(h.metrics['preprocessing-adaptive-accuracy'], Math.max(...pre.defenses.slice(1).map((r) => r.adaptive)));
    // median 3×3 is undone by BPDA (docs/HARDENING.md: 1% under BPDA PGD-20)
    assert.ok(pre.defenses[1]!.adaptive <= 0.2, `median 3×3 under BPDA: ${pre.defenses[1]!.adaptive}`);
    const best = pre.defenses.slice(1).find((r) => r.adaptive === h.metrics['preprocessing-adaptive-accuracy'])!;
    assert.ok(h.summary.includes(`The best preprocessing defense, ${best.defense}, keeps ${(100 * best.adaptive).toFixed(1)}% under BPDA.`), h.summary);
    // the bypass finding speaks of the defense with the largest gap, its title and its figure alike
    const gaps = pre.defenses.slice(1).map((r) => r.transferred - r.adaptive);
    const bypass = h.findings.find((f) => f.id === 'hardening-preprocessing-bypassed');
    assert.equal(bypass !== undefined, Math.max(...gaps) >= 0.1, `gaps ${gaps}`);
    if (bypass) {
      const worst = pre.defenses[1 + gaps.indexOf(Math.max(...gaps))]!;
      assert.equal(bypass.metric, 'preprocessing-overstated-by');
      assert.equal(bypass.value, Math.max(...gaps));
      assert.ok(bypass.title.includes(`${worst.defense} keeps ${(100 * worst.transferred).toFixed(1)}%`), bypass.title);
      assert.ok(bypass.title.includes(`${(100 * worst.adaptive).toFixed(1)}% under BPDA`), bypass.title);
    }
  } finally {
    await model.dispose();
  }
  // the gate on certified accuracy
  assert.equal(report.gates[0]!.metric, 'certified-accuracy');
  assert.equal(report.gates[0]!.actual, h.metrics['certified-accuracy']);
  assert.equal(report.gates[0]!.passed, h.metrics['certified-accuracy']! >= 0.99);
});

test('hardening section: report.json, report.html and report.sarif carry the same figures', () => {
  const out = path.join(tmp, 'report');
  writeReport(report, out);
  const json = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8')) as Report;
  const h = json.sections.find((s) => s.id === 'hardening')!;
  assert.deepEqual(h.metrics, report.sections[0]!.metrics);
  const html = fs.readFileSync(path.join(out, 'report.html'), 'utf8');
  for (const id of ['hardening-record', 'training-curve', 'certified-accuracy', 'certified-points', 'detector-roc', 'detector-attacks', 'preprocessing-defenses']) assert.match(html, new RegExp(`data-block="${id}"`), id);
  assert.doesNotMatch(html, /<script/i);
  // every certified-accuracy point is drawn with its exact value
  const sm = h.details['smoothing'] as { curve: { radius: number; accuracy: number }[] };
  const chart = html.slice(html.indexOf('data-block="certified-accuracy"'));
  for (const p of sm.curve) assert.ok(chart.includes(`data-x="${p.radius}" data-y="${p.accuracy}"`), `point ${p.radius}`);
  // the headline carries the metric as a percentage
  const v = h.metrics['certified-accuracy']!;
  assert.match(html, new RegExp(`data-metric="certified-accuracy" data-value="${v}"><div class="v">${(100 * v).toFixed(1)}%`));
  const sarif = JSON.parse(fs.readFileSync(path.join(out, 'report.sarif'), 'utf8')) as Record<string, unknown>;
  validateSarif(sarif);
  const results = ((sarif['runs'] as Record<string, unknown>[])[0]!['results'] as { ruleId: string; level: string }[]);
  assert.equal(results.length, json.findings.length);
  assert.equal(results.find((r) => r.ruleId === 'hardening-robustness-claim-contradicted')!.level, 'error');
});

test('a record for another model is not used; --sigma overrides the record; an L2 scan reads the certificate at eps', async () => {
  const other = path.join(tmp, 'other.onnx');
  fs.copyFileSync(REFERENCE_MODEL, other);
  fs.writeFileSync(`${other}.train.json`, JSON.stringify({ modelSha256: '0'.repeat(64), hardening: { adv: 'pgd', eps: 0.3, noiseSigma: SIGMA }, history: [{ epoch: 1, robustValAccuracy: 0.9 }] }));
  const r = await runAssessment({ model: other, data: DATA, budget: 'quick', examples: 4, seed: 0, threads: 1, only: ['hardening.record', 'hardening.smoothing'], sigma: 0.5, norm: 2, eps: 0.25 });
  const h = r.sections[0]!;
  const rec = h.details['record'] as { found: boolean; problem: string };
  assert.equal(rec.found, false);
  assert.match(rec.problem, /another model/);
  assert.equal(h.findings.some((f) => f.id === 'hardening-robustness-claim-contradicted'), false);
  const sm = h.details['smoothing'] as { sigma: number; sigmaFrom: string; examples: number; radius: number; curve: { radius: number; accuracy: number }[] };
  assert.equal(sm.sigma, 0.5);
  assert.equal(sm.radius, 0.25, 'L2 scan: the radius is eps');
  assert.equal(h.metrics['certified-accuracy'], sm.curve.find((p) => p.radius === 0.125 * 2)!.accuracy);
  assert.equal(sm.sigmaFrom, '--sigma');
  assert.equal(sm.examples, 4);
  assert.equal(h.details['detector'], undefined, 'parts not asked for do not run');
});

test('a malformed training record is reported as a problem, not a crash', () => {
  const m = path.join(tmp, 'malformed.onnx');
  fs.copyFileSync(REFERENCE_MODEL, m);
  for (const [rec, why] of [['{"history":[null]}', /history must be a list of epoch objects/], ['{"history":5}', /history/], ['{"hardening":[1]}', /hardening must be an object/], ['[1]', /not a JSON object/], ['{"hist', /cannot be read/]] as const) {
    fs.writeFileSync(`${m}.train.json`, rec);
    const r = readTrainRecord(m);
    assert.equal(r.record, undefined, rec);
    assert.match(r.problem!, why);
  }
  fs.writeFileSync(`${m}.train.json`, '{"history":[{"epoch":1,"trainAccuracy":0.5}],"hardening":{"adv":"pgd","eps":0.3}}');
  assert.equal(readTrainRecord(m).record?.history?.[0]?.trainAccuracy, 0.5);
});
