/**
 * `bulwark scan` and `bulwark evaluate` end to end on the reference model: the three report files, the JSON model,
 * SARIF structure, the HTML in headless Chromium (no console errors, no requests, figures equal to report.json, a
 * screenshot), gates and exit codes, --demo, and bad input.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { encodeNpz } from '../../src/data/npy.js';
import { ATLAS_TECHNIQUES, OWASP_ML_TOP10, type Report } from '../../src/report/index.js';
import { REFERENCE_MODEL } from '../evasion/reference.js';
import { validateSarif } from './sarif-check.js';

const MAIN = pathToFileURL(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'main.js')).href;
const CHROMIUM = '/usr/bin/chromium';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-scan-'));
// BULWARK_KEEP_TEST_OUTPUT=1 keeps the reports and the screenshot for a look
after(() => {
  if (process.env['BULWARK_KEEP_TEST_OUTPUT']) console.log(`test output kept in ${tmp}`);
  else fs.rmSync(tmp, { recursive: true, force: true });
});

/** Runs the CLI in a child process (one onnxruntime thread: the test runner runs two files at once). */
function cli(args: string[], env: Record<string, string> = {}) {
  const code = `const m = await import(${JSON.stringify(MAIN)}); process.exitCode = await m.main(process.argv.slice(1));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code, ...args], { encoding: 'utf8', cwd: tmp, env: { ...process.env, ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, json: () => JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, unknown> };
}

function assertUserError(r: ReturnType<typeof cli>, code: string, pattern?: RegExp): void {
  assert.equal(r.code, 2, `exit code ${r.code}; stderr: ${r.stderr}`);
  assert.match(r.stderr, new RegExp(`bulwark: ${code}: `));
  assert.match(r.stderr, /\nhint: /);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  if (pattern) assert.match(r.stderr, pattern);
}

const out = path.join(tmp, 'report');
let report: Report;

test('scan writes report.html, report.json and report.sarif; a failing gate exits 1', () => {
  const t0 = performance.now();
  const r = cli(['scan', '--model', REFERENCE_MODEL, '--data', 'mnist:test[0:500]', '--out', out, '--budget', 'quick', '--examples', '24', '--threads', '1',
    '--fail-under', 'robust-accuracy=0.5', '--fail-under', 'clean-accuracy=0.9', '--json']);
  console.log(`scan quick, 24 examples: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  assert.equal(r.code, 1, r.stderr);
  const summary = r.json();
  assert.equal(summary['passed'], false);
  assert.equal(summary['exitCode'], 1);
  assert.deepEqual((summary['gates'] as { passed: boolean }[]).map((g) => g.passed), [false, true]);
  for (const f of ['report.html', 'report.json', 'report.sarif']) assert.ok(fs.statSync(path.join(out, f)).size > 0, f);
  assert.deepEqual(fs.readdirSync(out).filter((f) => f.endsWith('.tmp')), [], 'no temporary files left');
  report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8')) as Report;
  assert.equal(summary['robustAccuracy'], report.sections.find((s) => s.id === 'evasion')!.metrics['robust-accuracy']);
});

test('report.json: sections, typed and mapped findings, curve, per-example worst case', () => {
  assert.equal(report.format, 'bulwark.report/1');
  assert.deepEqual(report.sections.map((s) => s.id), ['supply-chain', 'evasion', 'hardening', 'privacy', 'gates']);
  // the default hardening and privacy parts need no extra input: the record, the detector, preprocessing, DP
  const hard = report.sections.find((s) => s.id === 'hardening')!;
  assert.deepEqual(Object.keys(hard.metrics).sort(), ['detector-adaptive-evasion', 'detector-auc', 'detector-tpr', 'preprocessing-adaptive-accuracy']);
  assert.equal((hard.details['detector'] as { source: string }).source, 'evasion', 'the detector is scored on the ensemble\'s examples');
  assert.equal((hard.details['smoothing'] as { ran: boolean }).ran, false, 'the reference model is not noise-trained');
  const priv = report.sections.find((s) => s.id === 'privacy')!;
  assert.deepEqual(priv.findings.map((f) => [f.id, f.severity]), [['privacy-no-dp', 'info']]);
  assert.deepEqual(priv.details['parts'], ['dp', 'membership'], 'quick: extraction and inversion only when asked');
  assert.equal(report.data.n, 24);
  assert.equal(report.settings.eps, 0.3);
  const ev = report.sections.find((s) => s.id === 'evasion')!;
  assert.ok(ev.metrics['clean-accuracy']! >= 0.9);
  assert.ok(ev.metrics['robust-accuracy']! < 0.05, `robust ${ev.metrics['robust-accuracy']}`);
  for (const f of report.findings) {
    assert.deepEqual(Object.keys(f).sort(), ['atlas', 'evidence', 'id', 'metric', 'owasp', 'severity', 'threshold', 'title', 'value']);
    for (const a of f.atlas) assert.ok(ATLAS_TECHNIQUES[a], `ATLAS ${a}`);
    for (const o of f.owasp) assert.ok(OWASP_ML_TOP10[o], `OWASP ${o}`);
  }
  const adv = report.findings.find((f) => f.id === 'evasion-adversarial-examples')!;
  assert.equal(adv.severity, 'high');
  assert.ok(adv.atlas.includes('AML.T0043') && adv.owasp.includes('ML01'));
  assert.equal(adv.threshold, 0.5, 'the gate value is the threshold');
  assert.ok(report.findings.some((f) => f.id === 'gate-fail-under'));
  assert.equal(report.summary.reliable, true, 'the reference model raises no masking flag');
  const details = ev.details as { perExample: { index: number; robust: boolean; brokenBy: string | null }[]; curve: { points: { eps: number; worstCaseRobustAccuracy: number }[] } };
  assert.equal(details.perExample.length, 24);
  assert.deepEqual(details.perExample.map((e) => e.index), report.data.indices);
  const robust = details.perExample.filter((e) => e.robust).length / 24;
  assert.equal(robust, ev.metrics['robust-accuracy']);
  const pts = details.curve.points;
  assert.equal(pts[0]!.eps, 0);
  for (let k = 1; k < pts.length; k++) assert.ok(pts[k]!.worstCaseRobustAccuracy <= pts[k - 1]!.worstCaseRobustAccuracy);
});

test('report.sarif is structurally valid SARIF 2.1.0 with one result per finding', () => {
  const sarif = JSON.parse(fs.readFileSync(path.join(out, 'report.sarif'), 'utf8')) as Record<string, unknown>;
  validateSarif(sarif);
  const run = (sarif['runs'] as Record<string, unknown>[])[0]!;
  assert.equal((run['results'] as unknown[]).length, report.findings.length);
  const rules = ((run['tool'] as Record<string, Record<string, unknown>>)['driver']!['rules'] as { id: string; properties: { tags: string[] } }[]);
  const r = rules.find((x) => x.id === 'evasion-adversarial-examples')!;
  assert.ok(r.properties.tags.includes('AML.T0043') && r.properties.tags.includes('ML01'));
});

test('report.html opens in headless Chromium without errors or requests; its figures equal report.json', { skip: !fs.existsSync(CHROMIUM) && `no ${CHROMIUM}` }, async () => {
  const html = fs.readFileSync(path.join(out, 'report.html'), 'utf8');
  assert.doesNotMatch(html, /<script/i, 'no scripts');
  assert.doesNotMatch(html, /<link\b|@import|url\(/i, 'no external stylesheets or fonts');
  assert.doesNotMatch(html, /\ssrc="(?!data:)/, 'every image is a data: URI');
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    const errors: string[] = [];
    const requests: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('request', (r) => requests.push(r.url()));
    const url = pathToFileURL(path.join(out, 'report.html')).href;
    await page.goto(url, { waitUntil: 'load' });
    const shot = path.join(tmp, 'report.png');
    await page.screenshot({ path: shot, fullPage: true });
    assert.deepEqual(errors, [], 'console errors');
    assert.deepEqual(requests.filter((u) => u !== url && !u.startsWith('data:')), [], 'requests besides the page');
    assert.deepEqual(Array.from(fs.readFileSync(shot).subarray(0, 4)), [0x89, 0x50, 0x4e, 0x47]);
    assert.ok(fs.statSync(shot).size > 20000, 'the screenshot has content');

    const ev = report.sections.find((s) => s.id === 'evasion')!;
    const members = (ev.details as { members: Record<string, number | string>[] }).members;
    // the per-attack table, cell by cell: exact values and their printed form
    const table = await page.$$eval('[data-block="per-attack"] tbody tr', (trs) => trs.map((tr) => Object.fromEntries(Array.from(tr.querySelectorAll('td')).map((td) => [td.dataset['key'], { value: td.dataset['value'], text: td.textContent }]))));
    assert.equal(table.length, members.length);
    table.forEach((row, k) => {
      const m = members[k]!;
      assert.equal(row['attack']!.value, m['name']);
      for (const key of ['attacked', 'broken', 'queries', 'robustAccuracyAfter', 'seconds']) assert.equal(Number(row[key]!.value), m[key], `${m['name']}.${key}`);
      assert.equal(row['robustAccuracyAfter']!.text, `${(100 * (m['robustAccuracyAfter'] as number)).toFixed(1)}%`);
      assert.equal(row['broken']!.text, String(m['broken']));
    });
    // the curve: every point of every series, its data and where it is drawn
    const chart = ev.blocks.find((b) => b.kind === 'chart')!;
    assert.ok(chart.kind === 'chart');
    const drawn = await page.$$eval('[data-block="robustness-curve"] g[data-series]', (gs) => gs.map((g) => ({
      name: g.getAttribute('data-series'),
      points: Array.from(g.querySelectorAll('circle')).map((c) => ({ x: Number(c.dataset['x']), y: Number(c.dataset['y']), cy: Number(c.getAttribute('cy')) })),
    })));
    assert.deepEqual(drawn.map((s) => s.name), chart.series.map((s) => s.name));
    const curve = (ev.details as { curve: { points: { eps: number; robustAccuracy: number; worstCaseRobustAccuracy: number }[] } }).curve.points;
    assert.deepEqual(drawn[0]!.points.map((p) => [p.x, p.y]), curve.map((p) => [p.eps, p.worstCaseRobustAccuracy]));
    assert.deepEqual(drawn[1]!.points.map((p) => [p.x, p.y]), curve.map((p) => [p.eps, p.robustAccuracy]));
    assert.deepEqual(drawn[2]!.points.map((p) => [p.x, p.y]), [[report.settings.eps, ev.metrics['robust-accuracy']]]);
    for (const s of drawn) for (const p of s.points) assert.ok(Math.abs(p.cy - (16 + (1 - p.y) * 276)) < 0.01, `point (${p.x}, ${p.y}) drawn at y ${p.cy}`);
    // headline figures and images
    const headline = await page.$$eval('[data-block="headline"] [data-metric]', (ds) => ds.map((d) => [d.getAttribute('data-metric'), Number(d.getAttribute('data-value'))]));
    assert.deepEqual(Object.fromEntries(headline), Object.fromEntries(report.sections.flatMap((s) => Object.entries(s.metrics))));
    // the hardening section's detector ROC, point by point
    const det = (report.sections.find((s) => s.id === 'hardening')!.details['detector'] as { roc: { x: number; y: number }[] }).roc;
    const roc = await page.$$eval('[data-block="detector-roc"] g[data-series="ROC"] circle', (cs) => cs.map((c) => ({ x: Number((c as SVGElement).dataset['x']), y: Number((c as SVGElement).dataset['y']) })));
    assert.deepEqual(roc, [...det].sort((a, b) => a.x - b.x));
    const images = await page.$$eval('[data-block="adversarial-examples"] img', (imgs) => imgs.map((i) => (i as HTMLImageElement).naturalWidth));
    assert.ok(images.length >= 3 && images.every((w) => w === 28), `images decoded: ${images.join(',')}`);
  } finally {
    await browser.close();
  }
});

test('scan --demo works with no other input; passing gates exit 0', () => {
  const demoOut = path.join(tmp, 'bulwark-report');
  const r = cli(['scan', '--demo', '--examples', '12', '--threads', '1', '--fail-under', 'clean-accuracy=0.5', '--json'], { BULWARK_CACHE: path.join(tmp, 'cache') });
  assert.equal(r.code, 0, r.stderr);
  const s = r.json();
  assert.equal(s['passed'], true);
  assert.deepEqual(s['files'], { json: path.join('bulwark-report', 'report.json'), html: path.join('bulwark-report', 'report.html'), sarif: path.join('bulwark-report', 'report.sarif') });
  const rep = JSON.parse(fs.readFileSync(path.join(demoOut, 'report.json'), 'utf8')) as Report;
  assert.equal(rep.settings.demo, true);
  assert.equal(rep.settings.budget, 'quick');
  assert.equal(rep.data.spec, 'mnist:test');
  assert.equal(fs.realpathSync(rep.subject.model), fs.realpathSync(REFERENCE_MODEL), 'the committed fixture is used');
  assert.ok(!fs.existsSync(path.join(tmp, 'cache')), 'nothing trained or cached');
});

test('evaluate --json: the last stdout line is one JSON object with clean and robust accuracy, per attack, flags', () => {
  const r = cli(['evaluate', '--model', REFERENCE_MODEL, '--data', 'mnist:test[0:12]', '--eps', '0.3', '--suite', 'quick', '--threads', '1', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const s = r.json();
  assert.equal(s['n'], 12);
  assert.ok((s['cleanAccuracy'] as number) >= 0.9);
  assert.ok((s['robustAccuracy'] as number) <= 0.1);
  assert.deepEqual((s['perAttack'] as { attack: string }[]).map((a) => a.attack), ['apgd-ce', 'apgd-t', 'fab-t', 'square']);
  assert.deepEqual(s['flags'], []);
  assert.equal(s['reliable'], true);
});

test('bad input exits 2 with a coded error and a hint', () => {
  const base = ['--model', REFERENCE_MODEL, '--data', 'mnist:test[0:8]', '--out', path.join(tmp, 'bad')];
  assertUserError(cli(['scan', ...base, '--eps=-0.3']), 'BULWARK_E_ARG', /--eps/);
  assertUserError(cli(['scan', ...base, '--eps', '0']), 'BULWARK_E_ARG');
  assertUserError(cli(['scan', ...base, '--eps', 'abc']), 'BULWARK_E_ARG');
  assertUserError(cli(['scan', ...base, '--eps', '76.5']), 'BULWARK_E_ARG', /diameter/);
  assertUserError(cli(['scan', ...base, '--eps', '40', '--norm', '2']), 'BULWARK_E_ARG', /diameter/);
  assertUserError(cli(['scan', ...base, '--norm', '3']), 'BULWARK_E_ARG');
  assertUserError(cli(['scan', ...base, '--budget', 'fast']), 'BULWARK_E_ARG');
  assertUserError(cli(['scan', ...base, '--fail-under', 'robust=0.5']), 'BULWARK_E_GATE', /unknown metric/);
  assertUserError(cli(['scan', ...base, '--fail-under', 'robust-accuracy=50']), 'BULWARK_E_GATE');
  assertUserError(cli(['scan', '--model', REFERENCE_MODEL, '--data', 'mnist:test[0:8]']), 'BULWARK_E_USAGE', /--out/);
  assertUserError(cli(['scan', '--demo', '--model', REFERENCE_MODEL]), 'BULWARK_E_USAGE');
  // data that does not fit the model: 27x27 images for a [N,1,28,28] model (flat 784-vectors would be reshaped)
  const npz = path.join(tmp, 'small.npz');
  fs.writeFileSync(npz, encodeNpz({ x: { data: new Float32Array(6 * 729).fill(0.5), shape: [6, 1, 27, 27], dtype: 'float32' }, y: { data: new BigInt64Array(6), shape: [6], dtype: 'int64' } }));
  assertUserError(cli(['scan', '--model', REFERENCE_MODEL, '--data', npz, '--out', path.join(tmp, 'bad')]), 'BULWARK_E_SHAPE', /\[N,1,28,28\]/);
  assertUserError(cli(['evaluate', '--model', REFERENCE_MODEL, '--data', npz, '--eps', '0.3']), 'BULWARK_E_SHAPE');
  assertUserError(cli(['evaluate', '--model', REFERENCE_MODEL, '--data', 'mnist:test[0:8]', '--eps', '1.5']), 'BULWARK_E_ARG', /diameter/);
  assertUserError(cli(['scan', '--model', path.join(tmp, 'none.onnx'), '--data', 'mnist:test[0:8]', '--out', path.join(tmp, 'bad')]), 'BULWARK_E_FILE_NOT_FOUND');
  assert.ok(!fs.existsSync(path.join(tmp, 'bad')), 'nothing written on bad input');
});
