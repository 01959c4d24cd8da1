/**
 * The privacy section on tiny models trained here: a deliberately overfit MLP (membership inference is easy, the
 * section's AUC equals a direct audit, LiRA runs with two shadows, extraction and inversion produce a curve and
 * images), a DP-SGD-trained MLP whose record's epsilon the section shows, and --fail-over gates on
 * mia-tpr-at-1fpr and dp-epsilon that end `bulwark scan` with exit 1. Seeded throughout; one onnxruntime thread.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { writeTrainingOutputs } from '../../src/cli/train-record.js';
import { loadData } from '../../src/data/spec.js';
import { buildArch } from '../../src/nn/zoo.js';
import { train } from '../../src/nn/train.js';
import { trainDpSgd } from '../../src/privacy/dpsgd.js';
import { auditMembership } from '../../src/privacy/membership/index.js';
import { loadModel } from '../../src/runtime/model.js';
import { dpSeverity, membershipSeverity, runAssessment, writeReport, type Report } from '../../src/report/index.js';
import { validateSarif } from './sarif-check.js';

const MAIN = pathToFileURL(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'main.js')).href;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-privacy-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const MEMBERS = 'mnist:train[0:200]';
const HOLDOUT = 'mnist:test[0:200]';
const overfit = path.join(tmp, 'overfit.onnx');
const dpModel = path.join(tmp, 'dp.onnx');

function cli(args: string[]) {
  const code = `const m = await import(${JSON.stringify(MAIN)}); process.exitCode = await m.main(process.argv.slice(1));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code, ...args], { encoding: 'utf8', cwd: tmp });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, json: () => JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, unknown> };
}

before(async () => {
  const data = await loadData(MEMBERS);
  const t0 = performance.now();
  // an MLP that memorizes its 200 examples (40 epochs of Adam)
  const arch = 'flatten,dense:128,relu,dense:10';
  const net = buildArch(arch, { inputShape: [1, 28, 28], numClasses: 10, seed: 1 });
  const r = await train(net, data, { epochs: 40, batchSize: 32, lr: 3e-3, optimizer: 'adam', seed: 1, threads: 1, progress: false });
  writeTrainingOutputs({ out: overfit, net, arch, dataSpec: MEMBERS, data, valSpec: undefined, validation: undefined, hyperparameters: { epochs: 4, batchSize: 32, lr: 3e-3, optimizer: 'adam' }, seed: 1, threads: 1, history: r.history, seconds: r.seconds, steps: r.steps, loadSeconds: 0, t0 });
  assert.ok(r.history.at(-1)!.trainAccuracy > 0.99, 'memorized');
  // DP-SGD, seeded noise (so the record says not private)
  const dpArch = 'flatten,dense:32,tanh,dense:10';
  const dnet = buildArch(dpArch, { inputShape: [1, 28, 28], numClasses: 10, seed: 2 });
  const d = await trainDpSgd(dnet, data, { epochs: 2, batchSize: 50, noiseMultiplier: 1.1, maxGradNorm: 1, delta: 1e-3, lr: 0.5, noise: { seed: 2 }, seed: 2, threads: 1, progress: false });
  writeTrainingOutputs({ out: dpModel, net: dnet, arch: dpArch, dataSpec: MEMBERS, data, valSpec: undefined, validation: undefined, hyperparameters: { epochs: 2, batchSize: 50 }, seed: 2, threads: 1, history: d.history, seconds: d.seconds, steps: d.steps, loadSeconds: 0, t0, extra: { privacy: d.privacy }, finalExtra: { epsilon: d.privacy.epsilon } });
});

let report: Report;

test('privacy section: membership inference on an overfit model, LiRA, extraction and inversion', async () => {
  report = await runAssessment({ model: overfit, data: HOLDOUT, budget: 'quick', seed: 0, threads: 1, only: ['privacy'], trainData: MEMBERS, shadows: 2 });
  assert.deepEqual(report.sections.map((s) => s.id), ['privacy']);
  const p = report.sections[0]!;
  assert.ok(p.findings.some((f) => f.id === 'privacy-no-dp' && f.severity === 'info'), 'no DP on record');
  assert.equal(p.metrics['dp-epsilon'], undefined);

  // the loss attack equals a direct audit on the same 200 + 200 examples
  const m = p.details['membership'] as { ran: boolean; attacks: { attack: string; auc: number; tprAtFpr: { fpr: number; tpr: number }[] }[]; members: { n: number } };
  assert.equal(m.ran, true);
  assert.equal(m.members.n, 200);
  assert.deepEqual(m.attacks.map((a) => a.attack), ['loss', 'lira-offline']);
  const model = await loadModel(overfit, { threads: 1 });
  let direct;
  try {
    direct = await auditMembership(model, await loadData(MEMBERS), await loadData(HOLDOUT), { attack: 'loss' });
  } finally {
    await model.dispose();
  }
  assert.equal(m.attacks[0]!.auc, direct.auc);
  assert.deepEqual(m.attacks[0]!.tprAtFpr, direct.tprAtFpr);
  assert.ok(direct.auc > 0.6, `membership AUC on a memorizing model: ${direct.auc}`);
  const tpr1 = (a: { tprAtFpr: { fpr: number; tpr: number }[] }) => a.tprAtFpr.find((t) => t.fpr === 0.01)!.tpr;
  assert.equal(p.metrics['mia-auc'], Math.max(...m.attacks.map((a) => a.auc)));
  assert.equal(p.metrics['mia-tpr-at-1fpr'], Math.max(...m.attacks.map(tpr1)));
  for (const a of m.attacks) assert.ok(a.auc >= 0 && a.auc <= 1);
  const f = p.findings.find((x) => x.id === 'privacy-membership-inference')!;
  assert.equal(f.value, p.metrics['mia-tpr-at-1fpr']);
  assert.equal(f.severity, membershipSeverity(p.metrics['mia-tpr-at-1fpr']!));
  assert.deepEqual(f.atlas, ['AML.T0024.000']);
  assert.deepEqual(f.owasp, ['ML04']);
  console.log(`loss AUC ${direct.auc.toFixed(3)}, TPR@1%FPR ${tpr1(m.attacks[0]!)}; LiRA (2 shadows) AUC ${m.attacks[1]!.auc.toFixed(3)}, TPR@1%FPR ${tpr1(m.attacks[1]!)}`);

  // extraction: 100 assessed examples of 200, so the query pool is the other 100
  const ex = p.details['extraction'] as { ran: boolean; queries: number; evalN: number; curve: { queries: number; fidelity: number }[] };
  assert.equal(ex.ran, true);
  assert.equal(ex.queries, 100);
  assert.deepEqual(ex.curve.map((c) => c.queries), [100]);
  assert.equal(p.metrics['extraction-fidelity'], ex.curve.at(-1)!.fidelity);
  assert.ok(ex.curve[0]!.fidelity > 0.3 && ex.curve[0]!.fidelity <= 1, `fidelity ${ex.curve[0]!.fidelity}`);

  // inversion: ten class images beside the class means, rate = own-nearest share
  const inv = p.details['inversion'] as { ran: boolean; classes: number[]; ownNearestRate: number; scores: { class: number; nearestMean: number }[] };
  assert.equal(inv.ran, true);
  assert.equal(inv.classes.length, 10);
  assert.equal(inv.ownNearestRate, p.metrics['inversion-own-class-rate']);
  const block = p.blocks.find((b) => b.kind === 'images' && b.id === 'inversion-images');
  assert.ok(block && block.kind === 'images');
  assert.equal(block.rows.length, 10);
  for (const row of block.rows) {
    for (const im of row.images) {
      const png = Buffer.from(im.png.replace(/^data:image\/png;base64,/, ''), 'base64');
      assert.deepEqual(Array.from(png.subarray(1, 4)), [0x50, 0x4e, 0x47]);
      assert.equal(png.readUInt32BE(16), 28);
    }
  }
});

test('privacy section: report.json, report.html and report.sarif agree', () => {
  const out = path.join(tmp, 'report');
  writeReport(report, out);
  const json = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8')) as Report;
  const p = json.sections.find((s) => s.id === 'privacy')!;
  assert.deepEqual(p.metrics, report.sections[0]!.metrics);
  const html = fs.readFileSync(path.join(out, 'report.html'), 'utf8');
  const table = html.slice(html.indexOf('data-block="membership-attacks"'));
  const m = p.details['membership'] as { attacks: { auc: number }[] };
  for (const a of m.attacks) assert.ok(table.includes(`data-key="auc" data-value="${a.auc}"`), `AUC ${a.auc} in the table`);
  for (const id of ['membership-roc', 'membership-metrics', 'extraction-curve', 'inversion-images', 'inversion-scores']) assert.match(html, new RegExp(`data-block="${id}"`), id);
  assert.doesNotMatch(html, /\ssrc="(?!data:)/);
  const sarif = JSON.parse(fs.readFileSync(path.join(out, 'report.sarif'), 'utf8')) as Record<string, unknown>;
  validateSarif(sarif);
  const rules = (((sarif['runs'] as Record<string, unknown>[])[0]!['tool'] as Record<string, Record<string, unknown>>)['driver']!['rules'] as { id: string; properties: { tags: string[] } }[]);
  assert.ok(rules.find((r) => r.id === 'privacy-membership-inference')!.properties.tags.includes('AML.T0024.000'));
  assert.ok(rules.find((r) => r.id === 'privacy-model-extraction')!.properties.tags.includes('ML05'));
});

test('the DP epsilon shown is the record\'s; --fail-over gates on dp-epsilon and mia-tpr-at-1fpr exit 1', () => {
  const rec = JSON.parse(fs.readFileSync(`${dpModel}.train.json`, 'utf8')) as { privacy: { epsilon: number; delta: number; private: boolean }; data: { n: number } };
  const eps = rec.privacy.epsilon;
  assert.ok(eps > 0 && Number.isFinite(eps));
  const out = path.join(tmp, 'dp-report');
  const r = cli(['scan', '--model', dpModel, '--data', HOLDOUT, '--out', out, '--budget', 'quick', '--threads', '1', '--sections', 'privacy.dp', '--fail-over', `dp-epsilon=${eps / 2}`, '--json']);
  assert.equal(r.code, 1, r.stderr);
  const s = r.json();
  assert.equal((s['metrics'] as Record<string, number>)['dp-epsilon'], eps);
  const rep = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8')) as Report;
  const f = rep.findings.find((x) => x.id === 'privacy-dp-epsilon')!;
  assert.equal(f.value, eps);
  assert.equal(f.severity, dpSeverity(eps, rec.privacy.delta, rec.data.n, rec.privacy.private));
  assert.equal(f.severity, 'medium', 'seeded noise is not private');
  assert.ok(rep.findings.some((x) => x.id === 'gate-fail-over' && x.metric === 'dp-epsilon'));
  assert.deepEqual(rep.gates.map((g) => [g.op, g.passed]), [['fail-over', false]]);
  const html = fs.readFileSync(path.join(out, 'report.html'), 'utf8');
  assert.match(html, new RegExp(`data-metric="dp-epsilon" data-value="${eps}"`));

  // mia-tpr-at-1fpr: above the gate exits 1, at the gate exits 0
  const tpr = report.sections[0]!.metrics['mia-tpr-at-1fpr']!;
  assert.ok(tpr > 0, `TPR at 1% FPR ${tpr}`);
  const base = ['scan', '--model', overfit, '--data', HOLDOUT, '--out', path.join(tmp, 'mia'), '--budget', 'quick', '--threads', '1', '--sections', 'privacy.membership', '--train-data', MEMBERS, '--json'];
  const failed = cli([...base, '--fail-over', `mia-tpr-at-1fpr=${tpr / 2}`]);
  assert.equal(failed.code, 1, failed.stderr);
  const loss = (report.sections[0]!.details['membership'] as { attacks: { tprAtFpr: { fpr: number; tpr: number }[] }[] }).attacks[0]!.tprAtFpr.find((t) => t.fpr === 0.01)!.tpr;
  assert.equal((failed.json()['metrics'] as Record<string, number>)['mia-tpr-at-1fpr'], loss, 'without --shadows the loss attack is the strongest');
  const passed = cli([...base, '--fail-over', `mia-tpr-at-1fpr=${loss}`]);
  assert.equal(passed.code, 0, passed.stderr);
});

test('bad privacy and hardening flags exit 2 with a coded error and a hint', () => {
  const base = ['scan', '--model', overfit, '--data', HOLDOUT, '--out', path.join(tmp, 'bad')];
  const check = (args: string[], code: string, pattern: RegExp) => {
    const r = cli([...base, ...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}; ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`bulwark: ${code}: `));
    assert.match(r.stderr, /\nhint: /);
    assert.match(r.stderr, pattern);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  };
  check(['--sections', 'privacy.nope'], 'BULWARK_E_ARG', /--sections/);
  check(['--sections', 'evasion', '--train-data', MEMBERS], 'BULWARK_E_USAGE', /--train-data/);
  check(['--shadows', '3', '--train-data', MEMBERS], 'BULWARK_E_ARG', /--shadows/);
  check(['--shadows', '2'], 'BULWARK_E_USAGE', /--train-data/);
  check(['--sigma', '0'], 'BULWARK_E_SMOOTHING', /--sigma/);
  check(['--fail-over', 'mia-tpr-at-1fpr=2'], 'BULWARK_E_GATE', /fraction/);
  check(['--fail-over', 'nope=1'], 'BULWARK_E_GATE', /unknown metric/);
  check(['--train-data', 'mnist:nope'], 'BULWARK_E_DATA_SPEC', /nope/);
  check(['--train-data', HOLDOUT], 'BULWARK_E_ARG', /holdout/);
  assert.ok(!fs.existsSync(path.join(tmp, 'bad')), 'nothing written');
});
