/**
 * Report building blocks without running attacks: the PNG encoder, gates, the taxonomy tables, the SARIF renderer
 * and HTML escaping, on a synthetic report.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inflateSync } from 'node:zlib';
import { BulwarkError } from '../../src/core/errors.js';
import { SCAN_RULES } from '../../src/supplychain/scan/index.js';
import {
  ATLAS_TECHNIQUES,
  DOMAINS,
  FINDING_RULES,
  OWASP_ML_TOP10,
  crc32,
  encodePng,
  evaluateGates,
  findingRule,
  formatValue,
  gateFindings,
  makeFinding,
  parseGates,
  renderHtml,
  renderReportSarif,
  type Report,
  type ReportSection,
} from '../../src/report/index.js';
import { validateSarif } from './sarif-check.js';

test('PNG: signature, IHDR, CRCs and pixels round-trip through inflate', () => {
  const w = 5;
  const h = 3;
  const px = Uint8Array.from({ length: w * h * 3 }, (_, i) => (i * 37) & 255);
  const png = encodePng(px, w, h, 3);
  assert.deepEqual(Array.from(png.subarray(0, 8)), [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  let off = 8;
  const chunks: { type: string; data: Uint8Array }[] = [];
  while (off < png.length) {
    const len = view.getUint32(off);
    const type = String.fromCharCode(...png.subarray(off + 4, off + 8));
    const data = png.subarray(off + 8, off + 8 + len);
    assert.equal(view.getUint32(off + 8 + len), crc32(png.subarray(off + 4, off + 8 + len)), `CRC of ${type}`);
    chunks.push({ type, data });
    off += 12 + len;
  }
  assert.deepEqual(chunks.map((c) => c.type), ['IHDR', 'IDAT', 'IEND']);
  const ihdr = new DataView(chunks[0]!.data.buffer, chunks[0]!.data.byteOffset);
  assert.equal(ihdr.getUint32(0), w);
  assert.equal(ihdr.getUint32(4), h);
  assert.equal(chunks[0]!.data[8], 8);
  assert.equal(chunks[0]!.data[9], 2);
  const raw = inflateSync(chunks[1]!.data);
  assert.equal(raw.length, h * (w * 3 + 1));
  for (let r = 0; r < h; r++) {
    assert.equal(raw[r * (w * 3 + 1)], 0, 'filter type 0');
    assert.deepEqual(Array.from(raw.subarray(r * (w * 3 + 1) + 1, (r + 1) * (w * 3 + 1))), Array.from(px.subarray(r * w * 3, (r + 1) * w * 3)));
  }
  // CRC-32 check value of the standard test string
  assert.equal(crc32(new TextEncoder().encode('123456789')), 0xcbf43926);
});

test('gates: metric=value or a percentage; malformed, unknown or out-of-range gates are BULWARK_E_GATE', () => {
  const known = ['clean-accuracy', 'robust-accuracy'];
  assert.deepEqual(parseGates(['robust-accuracy=0.5', 'clean-accuracy=90%'], known), [
    { metric: 'robust-accuracy', op: 'fail-under', value: 0.5 },
    { metric: 'clean-accuracy', op: 'fail-under', value: 0.9 },
  ]);
  assert.deepEqual(parseGates(['robust-accuracy=5e-1', 'clean-accuracy=.5%'], known).map((g) => g.value), [0.5, 0.005]);
  for (const bad of ['robust-accuracy', 'robust-accuracy=', 'robust-accuracy=abc', 'robust=0.5', 'robust-accuracy=1.5', 'clean-accuracy=-0.1', '=0.5', 'robust-accuracy=0x0', 'robust-accuracy=Infinity', 'robust-accuracy=%', 'robust-accuracy=1_0%']) {
    assert.throws(() => parseGates([bad], known), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_GATE' && e.exitCode === 2, bad);
  }
  const sections = [{ metrics: { 'robust-accuracy': 0.25, 'clean-accuracy': 0.99 } }] as unknown as ReportSection[];
  const res = evaluateGates(parseGates(['robust-accuracy=0.5', 'clean-accuracy=0.9', 'robust-accuracy=0.25'], known), sections);
  assert.deepEqual(res.map((r) => r.passed), [false, true, true], 'at the value passes');
  const missing = evaluateGates(parseGates(['robust-accuracy=0.1'], known), []);
  assert.equal(missing[0]!.passed, false);
  assert.equal(missing[0]!.actual, null);
  // --fail-over: the metric must be at most the value (equal passes); fractions stay in [0, 1], others >= 0
  const over = parseGates(['mia-tpr-at-1fpr=5%', 'dp-epsilon=8'], ['mia-tpr-at-1fpr', 'dp-epsilon'], 'fail-over');
  assert.deepEqual(over, [{ metric: 'mia-tpr-at-1fpr', op: 'fail-over', value: 0.05 }, { metric: 'dp-epsilon', op: 'fail-over', value: 8 }]);
  const overRes = evaluateGates(over, [{ metrics: { 'mia-tpr-at-1fpr': 0.05, 'dp-epsilon': 8.5 } }] as unknown as ReportSection[]);
  assert.deepEqual(overRes.map((r) => r.passed), [true, false]);
  assert.equal(gateFindings(overRes)[0]!.id, 'gate-fail-over');
  assert.equal(evaluateGates(over, [])[1]!.passed, false, 'no DP record: the dp-epsilon gate fails');
  for (const bad of ['mia-tpr-at-1fpr=1.5', 'dp-epsilon=-1']) assert.throws(() => parseGates([bad], ['mia-tpr-at-1fpr', 'dp-epsilon'], 'fail-over'), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_GATE' && /--fail-over/.test(e.message), bad);
  const f = gateFindings(res);
  assert.equal(f.length, 1);
  assert.equal(f[0]!.id, 'gate-fail-under');
  assert.equal(f[0]!.value, 0.25);
  assert.equal(f[0]!.threshold, 0.5);
});

test('taxonomy: every rule maps to known ATLAS and OWASP ids; scanner rules resolve; evasion is AML.T0043 / ML01', () => {
  for (const r of Object.values(FINDING_RULES)) {
    assert.ok(DOMAINS[r.domain], `${r.id}: domain ${r.domain}`);
    for (const a of r.atlas) assert.ok(ATLAS_TECHNIQUES[a], `${r.id}: ATLAS ${a}`);
    for (const o of r.owasp) assert.ok(OWASP_ML_TOP10[o], `${r.id}: OWASP ${o}`);
    assert.ok(r.help.length > 40, `${r.id} has help`);
  }
  for (const d of Object.values(DOMAINS)) {
    for (const a of d.atlas) assert.ok(ATLAS_TECHNIQUES[a], `${d.id}: ATLAS ${a}`);
    for (const o of d.owasp) assert.ok(OWASP_ML_TOP10[o], `${d.id}: OWASP ${o}`);
  }
  for (const id of Object.keys(SCAN_RULES)) assert.equal(findingRule(id)?.domain, 'supply-chain');
  assert.equal(Object.keys(OWASP_ML_TOP10).length, 10);
  const f = makeFinding('evasion-adversarial-examples', { metric: 'robust-accuracy', value: 0.1, evidence: {} });
  assert.ok(f.atlas.includes('AML.T0043') && f.owasp.includes('ML01'));
  assert.deepEqual(Object.keys(f).sort(), ['atlas', 'evidence', 'id', 'metric', 'owasp', 'severity', 'threshold', 'title', 'value']);
  assert.throws(() => makeFinding('no-such-rule', { metric: 'm', value: 1, evidence: {} }), /no finding rule/);
  assert.deepEqual(DOMAINS['poisoning']!.atlas, ['AML.T0020']);
  assert.deepEqual(DOMAINS['membership']!.owasp, ['ML04']);
});

/** A small report with hostile strings where user input lands. */
function syntheticReport(): Report {
  const finding = makeFinding('evasion-adversarial-examples', { title: 'robust <b>0%</b> & "x"', severity: 'high', metric: 'robust-accuracy', value: 0, threshold: 0.5, evidence: { examples: [1, 2] } });
  const scan = { ...makeFinding('pickle-dangerous-callable', { metric: 'pickle.callable', value: 'os.system', evidence: {} }), evidence: { file: 'models/evil.pkl', offset: 12 } };
  const section: ReportSection = {
    id: 'evasion', title: 'Evasion', domain: 'evasion', status: 'fail', summary: 'summary <script>alert(1)</script>', metrics: { 'robust-accuracy': 0, 'clean-accuracy': 0.98 },
    findings: [finding, scan],
    blocks: [
      { kind: 'table', id: 'per-attack', caption: 'c', columns: [{ key: 'attack', label: 'attack', format: 'text' }, { key: 'robust', label: 'robust', format: 'percent' }], rows: [{ attack: '<img src=x onerror=alert(1)>', robust: 0.125 }] },
      { kind: 'chart', id: 'curve', caption: 'c', xLabel: 'eps', yLabel: 'acc', yRange: [0, 1], yFormat: 'percent', series: [{ name: 'a"b', points: [{ x: 0, y: 1 }, { x: 0.3, y: 0.1 }] }] },
    ],
    details: {}, seconds: 1,
  };
  const gates = evaluateGates(parseGates(['robust-accuracy=0.5'], ['robust-accuracy']), [section]);
  return {
    format: 'bulwark.report/1', tool: { name: 'bulwark', version: '0.1.0' }, createdAt: '2026-01-01T00:00:00.000Z',
    subject: { model: 'dir/<m>.onnx', sha256: 'ab'.repeat(32), bytes: 10, inputShape: [-1, 1, 28, 28], numClasses: 10, outputKind: 'logits', bounds: [0, 1] },
    data: { spec: 'mnist:test[0:10]', total: 10, n: 10, indices: [] }, settings: { budget: 'quick', eps: 0.3, norm: 'inf', seed: 0, demo: false },
    sections: [section], gates, findings: [finding, scan, ...gateFindings(gates)],
    summary: { counts: { critical: 1, high: 2, medium: 0, low: 0, info: 0 }, maxSeverity: 'critical', gatesPassed: false, reliable: true },
    timings: { totalSeconds: 1, sections: { evasion: 1 } },
  };
}

test('HTML escapes every user string, carries exact values, and has no script or external asset', () => {
  const html = renderHtml(syntheticReport());
  assert.doesNotMatch(html, /<script/i);
  assert.doesNotMatch(html, /<img src=x/);
  assert.doesNotMatch(html, /<link\b/i);
  assert.doesNotMatch(html, /\s(src|href)="(?!data:|https:\/\/(atlas\.mitre\.org|owasp\.org)\/)/, 'only data: sources and taxonomy links');
  assert.match(html, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
  assert.match(html, /data-key="robust" data-value="0.125">12.5%</);
  assert.match(html, /data-x="0.3" data-y="0.1"/);
  assert.match(html, /Content-Security-Policy/);
  assert.equal(formatValue(0.125, 'percent'), '12.5%');
  assert.equal(formatValue(1234, 'count'), '1,234');
  assert.equal(formatValue(0.25, 'seconds'), '250 ms');
});

test('SARIF: 2.1.0 structure, one rule per finding kind, every result located and levelled', () => {
  const r = syntheticReport();
  const sarif = renderReportSarif(r) as Record<string, unknown>;
  validateSarif(sarif);
  const run = (sarif['runs'] as Record<string, unknown>[])[0]!;
  const results = run['results'] as Record<string, unknown>[];
  assert.equal(results.length, r.findings.length);
  assert.deepEqual(results.map((x) => x['level']), ['error', 'error', 'error']);
  const scan = results.find((x) => x['ruleId'] === 'pickle-dangerous-callable')!;
  const loc = (scan['locations'] as Record<string, Record<string, Record<string, unknown>>>[])[0]!;
  assert.equal(loc['physicalLocation']!['artifactLocation']!['uri'], 'models/evil.pkl');
  assert.deepEqual(loc['physicalLocation']!['region'], { byteOffset: 12, byteLength: 1 });
  const ev = results.find((x) => x['ruleId'] === 'evasion-adversarial-examples')!;
  assert.equal((ev['locations'] as Record<string, Record<string, Record<string, unknown>>>[])[0]!['physicalLocation']!['artifactLocation']!['uri'], 'dir/%3Cm%3E.onnx');
});
