import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  judgeGlobal,
  PICKLE_OPCODES,
  renderSarif,
  SCAN_RULES,
  scanBytes,
  scanFile,
  sniffFormat,
  type ScanFinding,
  type ScanResult,
} from '../../src/supplychain/index.js';
import { repoRoot, runCli, lastJson } from '../helpers.js';

const CORPUS = path.join(repoRoot, 'fixtures', 'scan');
const MAL = path.join(CORPUS, 'malicious');
const BEN = path.join(CORPUS, 'benign');

interface Expect {
  id: string;
  severity: string;
  value?: string;
  innerPath?: string;
  pickleIndex?: number;
}
const manifest = JSON.parse(fs.readFileSync(path.join(CORPUS, 'manifest.json'), 'utf8')) as { malicious: Record<string, Expect[]>; opcodes: Record<string, Record<string, number>> };



function describeFindings(r: ScanResult): string {
  return r.findings.map((f) => `${f.severity} ${f.id} ${String(f.value)} @ ${f.evidence.innerPath ?? ''}:${f.evidence.offset ?? ''}`).join('\n');
}

function matches(f: ScanFinding, e: Expect): boolean {
  if (f.id !== e.id || f.severity !== e.severity) return false;
  if (e.value !== undefined && !String(f.value).includes(e.value)) return false;
  if (e.innerPath !== undefined && f.evidence.innerPath !== e.innerPath) return false;
  if (e.pickleIndex !== undefined && f.evidence.pickleIndex !== e.pickleIndex) return false;
  return true;
}

describe('scanner corpus: malicious files', () => {
  const names = Object.keys(manifest.malicious).sort();

  test('the corpus covers every opcode path and container the issue names', () => {
    assert.ok(names.length >= 35, `only ${names.length} malicious files`);
    for (const n of ['global_reduce.pkl', 'stack_global.pkl', 'inst.pkl', 'obj.pkl', 'newobj.pkl', 'newobj_ex.pkl', 'build_setstate.pkl', 'memo_binget.pkl',
      'memo_long_binget.pkl', 'protocol0.pkl', 'torch_zip_payload.pt', 'torch_legacy_payload.pt', 'torch_legacy_tar_payload.tar', 'object_array.npy',
      'joblib_like.joblib', 'nested.zip', 'onnx_traversal.onnx', 'onnx_absolute.onnx', 'onnx_custom_domain.onnx', 'st_overlap.safetensors',
      'st_gap.safetensors', 'st_out_of_bounds.safetensors', 'st_huge_header.safetensors', 'lambda.keras', 'lambda_legacy.h5']) {
      assert.ok(names.includes(n), `corpus lacks ${n}`);
    }
  });

  for (const name of names) {
    test(`${name} is caught`, async () => {
      const r = await scanFile(path.join(MAL, name));
      for (const e of manifest.malicious[name]!) {
        assert.ok(r.findings.some((f) => matches(f, e)), `${name}: expected ${JSON.stringify(e)}; got:\n${describeFindings(r)}`);
      }
      assert.equal(r.unsafe, true);
      assert.ok(!r.findings.some((f) => f.id === 'scanner-internal-error'), describeFindings(r));
      for (const f of r.findings) {
        assert.deepEqual(f.atlas.slice(0, 2), ['AML.T0010', 'AML.T0011.000']);
        assert.deepEqual(f.owasp, ['ML06']);
        assert.ok(f.evidence.file.endsWith(name));
      }
    });
  }

  test('pickle evidence names the opcode and its byte offset', async () => {
    const r = await scanFile(path.join(MAL, 'global_reduce.pkl'));
    const f = r.findings.find((x) => x.id === 'pickle-dangerous-callable')!;
    assert.equal(f.evidence.offset, 2); // GLOBAL right after PROTO 2
    assert.equal(f.evidence['opcode'], 'GLOBAL');
    assert.equal(f.evidence['calledBy'], 'REDUCE');
    assert.equal(f.metric, 'pickle.callable');
    assert.equal(f.value, 'posix.system');
    assert.equal(f.threshold, 'blocklist');
    const z = await scanFile(path.join(MAL, 'torch_zip_payload.pt'));
    const zf = z.findings.find((x) => x.id === 'pickle-dangerous-callable')!;
    assert.match(zf.evidence.innerPath!, /\/data\.pkl$/);
    assert.equal(zf.evidence.offset, 2);
  });

  test('joblib array bytes are skipped, so a payload after them is found at its true offset', async () => {
    const bytes = fs.readFileSync(path.join(MAL, 'joblib_like.joblib'));
    const r = scanBytes(bytes, 'joblib_like.joblib');
    const f = r.findings.find((x) => x.id === 'pickle-dangerous-callable')!;
    assert.equal(bytes.subarray(f.evidence.offset!, f.evidence.offset! + 14).toString('latin1'), 'cposix\nsystem\n');
    assert.ok(!r.findings.some((x) => x.value === 'joblib.numpy_pickle.NumpyArrayWrapper'));
    assert.ok(!r.findings.some((x) => x.id === 'parse-error'), describeFindings(r));
  });
});

describe('scanner corpus: benign checkpoints', () => {
  test('real checkpoints raise nothing above info', async () => {
    const r = await scanFile(BEN);
    const above = r.findings.filter((f) => f.severity !== 'info');
    assert.deepEqual(above, [], describeFindings(r));
    assert.equal(r.unsafe, false);
    const formats = new Set(r.scanned.filter((s) => s.innerPath === undefined).map((s) => s.format));
    for (const f of ['torch-zip', 'torch-legacy', 'npy', 'npz', 'safetensors', 'onnx', 'keras']) assert.ok(formats.has(f), `no ${f} in the benign corpus`);
  });

  test('the training checkpoint imports only allowlisted globals', async () => {
    const r = await scanFile(path.join(BEN, 'training_checkpoint.pt'));
    const pkl = r.scanned.find((s) => s.innerPath?.endsWith('data.pkl'))!;
    assert.ok(pkl.globals!.includes('torch._utils._rebuild_tensor_v2'));
    assert.ok(pkl.globals!.includes('numpy.core.multiarray._reconstruct'));
    assert.ok(pkl.globals!.includes('collections.OrderedDict'));
    for (const g of pkl.globals!) assert.equal(judgeGlobal(...(split(g))).kind, 'allowed', g);
  });

  test('a full nn.Module save is reported as an unknown class, low severity, and nothing more', async () => {
    const r = await scanFile(path.join(CORPUS, 'review', 'full_module.pt'));
    assert.equal(r.maxSeverity, 'low', describeFindings(r));
    const f = r.findings.find((x) => x.id === 'pickle-unknown-callable')!;
    assert.equal(f.value, '__main__.Net');
    assert.equal(f.evidence['calledBy'], 'NEWOBJ');
    assert.equal(r.unsafe, true);
    assert.equal((await scanFile(path.join(CORPUS, 'review', 'full_module.pt'), { failOn: 'medium' })).unsafe, false);
    assert.equal((await scanFile(path.join(CORPUS, 'review', 'full_module.pt'), { allow: ['__main__.Net'] })).findings.length, 0);
  });
});

function split(full: string): [string, string] {
  const i = full.lastIndexOf('.');
  return [full.slice(0, i), full.slice(i + 1)];
}

describe('pickle policy and reader', () => {
  test('the opcode table is pickletools.opcodes (68 opcodes, protocols 0 to 5)', () => {
    assert.equal(PICKLE_OPCODES.size, 68);
    for (const [code, name] of [[0x95, 'FRAME'], [0x94, 'MEMOIZE'], [0x51, 'BINPERSID'], [0x50, 'PERSID'], [0x84, 'EXT4'], [0x8d, 'BINUNICODE8'], [0x96, 'BYTEARRAY8'], [0x93, 'STACK_GLOBAL'], [0x92, 'NEWOBJ_EX']] as const) {
      assert.equal(PICKLE_OPCODES.get(code)?.name, name);
    }
    assert.equal(Math.max(...[...PICKLE_OPCODES.values()].map((o) => o.proto)), 5);
  });

  test('a stream using all 68 opcodes (validated by pickletools) parses; offsets agree with pickletools', async () => {
    const r = await scanFile(path.join(CORPUS, 'opcodes', 'all_opcodes.pkl'));
    assert.deepEqual(r.findings.map((f) => `${f.id}:${f.severity}`).sort(), Array(3).fill('pickle-extension-code:medium'), describeFindings(r));
    const want = manifest.opcodes['all_opcodes.pkl']!;
    const got = Object.fromEntries(r.findings.map((f) => [String(f.evidence['opcode']), f.evidence.offset]));
    assert.deepEqual(got, { EXT1: want['EXT1'], EXT2: want['EXT2'], EXT4: want['EXT4'] });
    // the same stream with a blocked global in place of the allowed one, found at the STACK_GLOBAL offset
    const bytes = fs.readFileSync(path.join(CORPUS, 'opcodes', 'all_opcodes.pkl'));
    const evil = Buffer.from(bytes);
    const at = evil.indexOf(Buffer.from('\x8c\x0bcollections\x8c\x0bOrderedDict', 'latin1'));
    Buffer.from('\x8c\x0asubprocess\x8c\x0ccheck_output', 'latin1').copy(evil, at); // same 26 bytes
    const e = scanBytes(evil, 'evil.pkl');
    const f = e.findings.find((x) => x.id === 'pickle-dangerous-callable')!;
    assert.equal(f.value, 'subprocess.check_output');
    assert.equal(f.severity, 'critical');
    assert.equal(f.evidence.offset, want['STACK_GLOBAL']);
  });

  test('verdicts: allowlist, blocklist severities, Python 2 names, traversal, unknown', () => {
    assert.equal(judgeGlobal('torch._utils', '_rebuild_tensor_v2').kind, 'allowed');
    assert.equal(judgeGlobal('torch', 'FloatStorage').kind, 'allowed');
    assert.equal(judgeGlobal('numpy.core.multiarray', '_reconstruct').kind, 'allowed');
    assert.equal(judgeGlobal('collections', 'OrderedDict').kind, 'allowed');
    assert.equal(judgeGlobal('torch', 'Size').kind, 'allowed');
    const sev = (m: string, n: string): string => {
      const v = judgeGlobal(m, n);
      return v.kind === 'allowed' ? 'allowed' : `${v.kind}:${v.severity}`;
    };
    assert.equal(sev('os', 'system'), 'blocked:critical');
    assert.equal(sev('posix', 'system'), 'blocked:critical');
    assert.equal(sev('__builtin__', 'eval'), 'blocked:critical');
    assert.equal(sev('builtins', 'exec'), 'blocked:critical');
    assert.equal(sev('builtins', 'getattr'), 'blocked:high');
    assert.equal(sev('builtins', 'open'), 'blocked:high');
    assert.equal(sev('commands', 'getoutput'), 'blocked:critical'); // Python 2 name fixed up to subprocess
    assert.equal(sev('torch', 'load'), 'blocked:critical');
    assert.equal(sev('torch.hub', 'load'), 'blocked:critical');
    assert.equal(sev('types', 'CodeType'), 'blocked:critical');
    assert.equal(sev('operator', 'attrgetter'), 'blocked:high');
    assert.equal(sev('operator', 'methodcaller'), 'blocked:high');
    assert.equal(sev('_pickle', 'loads'), 'blocked:critical');
    assert.equal(sev('marshal', 'loads'), 'blocked:critical');
    assert.equal(sev('webbrowser', 'open'), 'blocked:high');
    assert.equal(sev('torch', 'os.system'), 'blocked:critical'); // dotted traversal through an allowed root
    assert.equal(sev('torch', '__builtins__.eval').startsWith('blocked'), true);
    assert.equal(sev('mypkg.models', 'Net'), 'unknown:low');
    assert.equal(sev('numpy.testing._private.utils', 'runstring'), 'blocked:critical');
    assert.equal(sev('somepkg', 'system'), 'unknown:high');
    assert.equal(sev('os\nx', 'system').startsWith('unknown'), true);
  });

  test('a truncated or garbled pickle is a parse-error finding with the offset, not an exception', () => {
    const r = scanBytes(Buffer.from([0x80, 0x02, 0x63, 0x6f, 0x73]), 'x.pkl');
    const f = r.findings.find((x) => x.id === 'parse-error')!;
    assert.equal(f.severity, 'medium');
    assert.equal(f.evidence.format, 'pickle');
    assert.equal(f.evidence.offset, 2);
    const bad = scanBytes(Buffer.from([0x80, 0x04, 0xff, 0x2e]), 'x.pkl');
    assert.match(String(bad.findings[0]!.value), /unknown opcode 0xff/);
  });

  test('findings made before a parse error are kept (pickle runs what precedes the error)', () => {
    const good = fs.readFileSync(path.join(MAL, 'global_reduce.pkl'));
    const r = scanBytes(good.subarray(0, good.length - 1), 'cut.pkl');
    assert.ok(r.findings.some((f) => f.id === 'pickle-dangerous-callable' && f.severity === 'critical'));
    assert.ok(r.findings.some((f) => f.id === 'parse-error'));
  });

  test('memo and stack bounds stop a hostile stream with a limit finding', () => {
    const parts: Buffer[] = [Buffer.from([0x80, 0x04])];
    for (let i = 0; i < 300; i++) parts.push(Buffer.from([0x4e, 0x94])); // NONE MEMOIZE
    parts.push(Buffer.from('.'));
    const r = scanBytes(Buffer.concat(parts), 'memo.pkl', { maxMemo: 100 });
    assert.ok(r.findings.some((f) => f.id === 'scan-limit-exceeded'), describeFindings(r));
    const marks = scanBytes(Buffer.concat([Buffer.from([0x80, 0x04]), Buffer.alloc(5000, 0x28)]), 'marks.pkl', { maxStack: 1000 });
    assert.ok(marks.findings.some((f) => f.id === 'scan-limit-exceeded'));
  });

  test('the step budget bounds a long stream', () => {
    const body = Buffer.alloc(200001, 0x4e); // NONE x 200001 -> stack limit or step limit
    const r = scanBytes(Buffer.concat([Buffer.from([0x80, 0x02]), body, Buffer.from('.')]), 'long.pkl', { maxSteps: 10000 });
    assert.ok(r.findings.some((f) => f.id === 'scan-limit-exceeded' && f.metric === 'scan.step'), describeFindings(r));
  });

  test('archive depth is limited; an undecodable .onnx is a parse error', () => {
    const nested = fs.readFileSync(path.join(MAL, 'nested.zip'));
    const shallow = scanBytes(nested, 'nested.zip', { maxDepth: 1 });
    assert.ok(shallow.findings.some((f) => f.id === 'archive-nesting-limit' && f.evidence.innerPath === 'inner.zip'), describeFindings(shallow));
    assert.ok(!shallow.findings.some((f) => f.id === 'pickle-dangerous-callable'));
    const onnx = scanBytes(Buffer.from('definitely not protobuf \xff\xff'), 'model.onnx');
    const f = onnx.findings.find((x) => x.id === 'parse-error')!;
    assert.equal(f.evidence.format, 'onnx');
    assert.equal(f.evidence['code'], 'BULWARK_E_ONNX_PARSE');
  });

  test('format detection', () => {
    assert.equal(sniffFormat(fs.readFileSync(path.join(BEN, 'state_dict.pt')), 'x'), 'zip');
    assert.equal(sniffFormat(fs.readFileSync(path.join(BEN, 'state_dict_legacy.pt')), 'x'), 'pickle');
    assert.equal(sniffFormat(fs.readFileSync(path.join(BEN, 'array.npy')), 'x'), 'npy');
    assert.equal(sniffFormat(fs.readFileSync(path.join(BEN, 'model.safetensors')), 'weights'), 'safetensors');
    assert.equal(sniffFormat(fs.readFileSync(path.join(MAL, 'protocol0.pkl')), 'noext'), 'pickle');
    assert.equal(sniffFormat(Buffer.from('hello world\n'), 'README.md'), 'unknown');
  });
});

describe('ONNX external data in a real folder', () => {
  let tmp: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-scan-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test('a link that leads out of the model folder is reported; a file inside is fine; a missing one is low', async () => {
    const model = fs.readFileSync(path.join(BEN, 'onnx_external', 'model.onnx'));
    const inside = path.join(tmp, 'inside');
    fs.mkdirSync(inside);
    fs.writeFileSync(path.join(inside, 'model.onnx'), model);
    fs.writeFileSync(path.join(inside, 'weights.bin'), Buffer.alloc(12));
    assert.deepEqual((await scanFile(path.join(inside, 'model.onnx'))).findings, []);

    const outside = path.join(tmp, 'secret.bin');
    fs.writeFileSync(outside, Buffer.alloc(64));
    const linked = path.join(tmp, 'linked');
    fs.mkdirSync(linked);
    fs.writeFileSync(path.join(linked, 'model.onnx'), model);
    fs.symlinkSync(outside, path.join(linked, 'weights.bin'));
    const r = await scanFile(path.join(linked, 'model.onnx'));
    assert.ok(r.findings.some((f) => f.id === 'onnx-external-data-symlink' && f.severity === 'high'), describeFindings(r));

    const missing = path.join(tmp, 'missing');
    fs.mkdirSync(missing);
    fs.writeFileSync(path.join(missing, 'model.onnx'), model);
    const m = await scanFile(path.join(missing, 'model.onnx'));
    assert.ok(m.findings.some((f) => f.id === 'onnx-external-data-missing' && f.severity === 'low'), describeFindings(m));
  });

  test('a folder scan does not follow a link out of the folder', async () => {
    const dir = path.join(tmp, 'models');
    fs.mkdirSync(path.join(dir, 'sub'), { recursive: true });
    fs.copyFileSync(path.join(MAL, 'global_reduce.pkl'), path.join(dir, 'sub', 'evil.pkl'));
    fs.copyFileSync(path.join(BEN, 'array.npy'), path.join(dir, 'a.npy'));
    fs.symlinkSync(path.join(MAL, 'inst.pkl'), path.join(dir, 'outside.pkl'));
    const r = await scanFile(dir);
    assert.ok(r.findings.some((f) => f.id === 'symlink-escape' && f.evidence.file.endsWith('outside.pkl')));
    assert.ok(r.findings.some((f) => f.id === 'pickle-dangerous-callable' && f.evidence.file.endsWith(path.join('sub', 'evil.pkl'))));
    assert.ok(!r.findings.some((f) => f.value === 'os.system'), 'the linked file was followed');
  });
});

test('docs/SCANNER.md documents every rule', () => {
  const doc = fs.readFileSync(path.join(repoRoot, 'docs', 'SCANNER.md'), 'utf8');
  for (const id of Object.keys(SCAN_RULES)) assert.ok(doc.includes(`| \`${id}\` |`), `docs/SCANNER.md lacks ${id}`);
});

describe('bulwark scan-file', () => {
  test('exit 0 for clean files, 1 for findings; human text names file and finding', async () => {
    const clean = await runCli('scan-file', path.join(BEN, 'state_dict.pt'));
    assert.equal(clean.code, 0, clean.stderr);
    assert.match(clean.stdout, /state_dict\.pt \[torch-zip\]: clean/);
    const bad = await runCli('scan-file', path.join(MAL, 'global_reduce.pkl'));
    assert.equal(bad.code, 1);
    assert.match(bad.stdout, /CRITICAL +pickle-dangerous-callable/);
    assert.match(bad.stdout, /posix\.system/);
  });

  test('--json prints one object with findings and counts', async () => {
    const r = await runCli('scan-file', path.join(MAL, 'nested.zip'), path.join(BEN, 'array.npy'), '--json');
    assert.equal(r.code, 1);
    const j = lastJson(r.stdout);
    assert.equal(j['unsafe'], true);
    assert.equal(j['counts'].critical, 1);
    const f = j['findings'][0];
    for (const k of ['id', 'title', 'severity', 'metric', 'value', 'threshold', 'atlas', 'owasp', 'evidence']) assert.ok(k in f, k);
    assert.equal(f.evidence.innerPath, 'inner.zip/payload.pkl');
  });

  test('--sarif prints SARIF 2.1.0 with rules, locations and levels', async () => {
    const r = await runCli('scan-file', path.join(MAL, 'build_setstate.pkl'), path.join(MAL, 'torch_zip_payload.pt'), '--sarif');
    assert.equal(r.code, 1);
    const s = lastJson(r.stdout);
    assert.equal(s['version'], '2.1.0');
    const run = s['runs'][0];
    const ruleIds = run.tool.driver.rules.map((x: { id: string }) => x.id);
    assert.deepEqual(ruleIds, Object.keys(SCAN_RULES));
    const levels = new Set(run.results.map((x: { level: string }) => x.level));
    assert.ok(levels.has('error'));
    for (const res of run.results) {
      assert.equal(ruleIds[res.ruleIndex], res.ruleId);
      assert.ok(res.locations[0].physicalLocation.artifactLocation.uri.length > 0);
    }
    const inner = run.results.find((x: { locations: { logicalLocations?: unknown[] }[] }) => x.locations[0]!.logicalLocations);
    assert.match(inner.locations[0].logicalLocations[0].fullyQualifiedName, /torch_zip_payload\.pt!\/.*data\.pkl/);
    const plain = run.results.find((x: { locations: { physicalLocation: { region?: { byteOffset: number } } }[] }) => x.locations[0]!.physicalLocation.region);
    assert.equal(typeof plain.locations[0].physicalLocation.region.byteOffset, 'number');
    assert.equal(renderSarif({ scanned: [], findings: [], counts: { critical: 0, high: 0, medium: 0, low: 0, info: 0 }, maxSeverity: null, failOn: 'low', unsafe: false, droppedFindings: 0 })['version'], '2.1.0');
  });

  test('a missing file is exit 2 with a clear error, before anything is scanned', async () => {
    const r = await runCli('scan-file', path.join(BEN, 'array.npy'), path.join(BEN, 'nope.pt'));
    assert.equal(r.code, 2);
    assert.match(r.stderr, /BULWARK_E_FILE_NOT_FOUND: no such file or folder: .*nope\.pt/);
    assert.equal(r.stdout, '');
  });

  test('usage errors are exit 2', async () => {
    assert.equal((await runCli('scan-file')).code, 2);
    assert.equal((await runCli('scan-file', BEN, '--json', '--sarif')).code, 2);
    assert.equal((await runCli('scan-file', BEN, '--fail-on', 'severe')).code, 2);
  });

  test('a folder is scanned recursively; --fail-on raises the bar', async () => {
    const r = await runCli('scan-file', CORPUS, '--json');
    assert.equal(r.code, 1);
    const j = lastJson(r.stdout);
    const files = new Set((j['scanned'] as { file: string }[]).map((s) => path.relative(CORPUS, s.file)));
    assert.ok(files.has(path.join('benign', 'onnx_external', 'model.onnx')));
    assert.ok(files.has(path.join('review', 'full_module.pt')));
    const review = await runCli('scan-file', path.join(CORPUS, 'review'), '--fail-on', 'medium');
    assert.equal(review.code, 0);
  });
});
