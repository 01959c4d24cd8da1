import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildMlBom, type CycloneDxBom } from '../../src/supplychain/bom/cyclonedx.js';
import type { VersionInfo } from '../../src/supplychain/registry/registry.js';

// The CycloneDX 1.6 JSON schema is not available offline, so these tests assert the structure Bulwark relies on:
// required fields, enums and patterns, and (where the schema says additionalProperties: false) that no other key
// appears. The allowed-key lists are taken from the 1.6 schema's definitions.
const ALLOWED = {
  bom: ['$schema', 'bomFormat', 'specVersion', 'serialNumber', 'version', 'metadata', 'components', 'services', 'externalReferences', 'dependencies', 'compositions', 'vulnerabilities', 'annotations', 'formulation', 'declarations', 'definitions', 'properties', 'signature'],
  metadata: ['timestamp', 'lifecycles', 'tools', 'authors', 'component', 'manufacture', 'manufacturer', 'supplier', 'licenses', 'properties'],
  component: ['type', 'mime-type', 'bom-ref', 'supplier', 'manufacturer', 'authors', 'author', 'publisher', 'group', 'name', 'version', 'description', 'scope', 'hashes', 'licenses', 'copyright', 'cpe', 'purl', 'omniborId', 'swhid', 'swid', 'modified', 'pedigree', 'externalReferences', 'properties', 'components', 'evidence', 'releaseNotes', 'modelCard', 'data', 'cryptoProperties', 'tags', 'signature'],
  modelCard: ['bom-ref', 'modelParameters', 'quantitativeAnalysis', 'considerations', 'properties'],
  modelParameters: ['approach', 'task', 'architectureFamily', 'modelArchitecture', 'datasets', 'inputs', 'outputs'],
  performanceMetric: ['type', 'value', 'slice', 'confidenceInterval'],
  considerations: ['users', 'useCases', 'technicalLimitations', 'performanceTradeoffs', 'ethicalConsiderations', 'environmentalConsiderations', 'fairnessAssessments'],
  componentData: ['bom-ref', 'type', 'name', 'contents', 'classification', 'sensitiveData', 'graphics', 'description', 'governance'],
  dependency: ['ref', 'dependsOn', 'provides'],
  property: ['name', 'value'],
  hash: ['alg', 'content'],
};
const COMPONENT_TYPES = ['application', 'framework', 'library', 'container', 'platform', 'operating-system', 'device', 'device-driver', 'firmware', 'file', 'machine-learning-model', 'data', 'cryptographic-asset'];
const HASH_ALGS = ['MD5', 'SHA-1', 'SHA-256', 'SHA-384', 'SHA-512', 'SHA3-256', 'SHA3-384', 'SHA3-512', 'BLAKE2b-256', 'BLAKE2b-384', 'BLAKE2b-512', 'BLAKE3'];
const APPROACHES = ['supervised', 'unsupervised', 'reinforcement-learning', 'semi-supervised', 'self-supervised'];
const DATA_TYPES = ['source-code', 'configuration', 'dataset', 'definition', 'other'];

function onlyKeys(o: object, allowed: string[], where: string): void {
  for (const k of Object.keys(o)) assert.ok(allowed.includes(k), `${where}: key ${k} is not in the CycloneDX 1.6 schema`);
}

/** Structural check of the parts of a CycloneDX 1.6 BOM Bulwark writes; returns every bom-ref seen. */
function checkBom(bom: CycloneDxBom): Set<string> {
  const refs = new Set<string>();
  const addRef = (r: unknown, where: string): void => {
    assert.equal(typeof r, 'string', `${where}: bom-ref must be a string`);
    assert.ok(!refs.has(r as string), `${where}: bom-ref ${String(r)} is not unique`);
    refs.add(r as string);
  };
  onlyKeys(bom, ALLOWED.bom, 'bom');
  assert.equal(bom.bomFormat, 'CycloneDX');
  assert.equal(bom.specVersion, '1.6');
  assert.match(bom.serialNumber, /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  assert.ok(Number.isInteger(bom.version) && bom.version >= 1);
  onlyKeys(bom.metadata, ALLOWED.metadata, 'metadata');
  assert.ok(!Number.isNaN(Date.parse(bom.metadata.timestamp)));
  for (const t of bom.metadata.tools.components) {
    assert.equal(t.type, 'application');
    assert.equal(typeof t.name, 'string');
  }
  const checkComponent = (c: Record<string, any>, where: string): void => {
    onlyKeys(c, ALLOWED.component, where);
    assert.ok(COMPONENT_TYPES.includes(c['type']), `${where}: type ${c['type']}`);
    assert.equal(typeof c['name'], 'string', `${where}: name is required`);
    if (c['bom-ref'] !== undefined) addRef(c['bom-ref'], where);
    for (const h of c['hashes'] ?? []) {
      onlyKeys(h, ALLOWED.hash, `${where}.hashes`);
      assert.ok(HASH_ALGS.includes(h.alg));
      assert.match(h.content, /^([a-fA-F0-9]{32}|[a-fA-F0-9]{40}|[a-fA-F0-9]{64}|[a-fA-F0-9]{96}|[a-fA-F0-9]{128})$/);
    }
    for (const p of c['properties'] ?? []) {
      onlyKeys(p, ALLOWED.property, `${where}.properties`);
      assert.equal(typeof p.name, 'string');
      assert.equal(typeof p.value, 'string');
    }
    if (c['modelCard'] !== undefined) assert.equal(c['type'], 'machine-learning-model', 'a modelCard belongs only to machine-learning-model components');
    if (c['data'] !== undefined) {
      assert.equal(c['type'], 'data');
      for (const d of c['data']) {
        onlyKeys(d, ALLOWED.componentData, `${where}.data`);
        assert.ok(DATA_TYPES.includes(d.type));
      }
    }
    for (const a of c['pedigree']?.ancestors ?? []) checkComponent(a, `${where}.pedigree`);
  };
  checkComponent(bom.metadata.component as unknown as Record<string, any>, 'metadata.component');
  bom.components.forEach((c, i) => checkComponent(c as unknown as Record<string, any>, `components[${i}]`));

  const card = bom.metadata.component.modelCard!;
  onlyKeys(card, ALLOWED.modelCard, 'modelCard');
  addRef(card['bom-ref'], 'modelCard');
  onlyKeys(card.modelParameters, ALLOWED.modelParameters, 'modelParameters');
  if (card.modelParameters.approach) assert.ok(APPROACHES.includes(card.modelParameters.approach.type));
  for (const io of [...(card.modelParameters.inputs ?? []), ...(card.modelParameters.outputs ?? [])]) onlyKeys(io, ['format'], 'inputs/outputs');
  for (const d of card.modelParameters.datasets ?? []) {
    onlyKeys(d, ['ref'], 'modelParameters.datasets');
    const target = bom.components.find((c) => c['bom-ref'] === d.ref);
    assert.ok(target && target.type === 'data', `dataset ref ${d.ref} resolves to a data component`);
  }
  for (const m of card.quantitativeAnalysis?.performanceMetrics ?? []) {
    onlyKeys(m, ALLOWED.performanceMetric, 'performanceMetrics');
    assert.equal(typeof m.type, 'string');
    assert.equal(typeof m.value, 'string', 'metric values are strings in the schema');
  }
  if (card.considerations) onlyKeys(card.considerations, ALLOWED.considerations, 'considerations');
  for (const d of bom.dependencies) {
    onlyKeys(d, ALLOWED.dependency, 'dependencies');
    assert.ok(refs.has(d.ref), `dependency ref ${d.ref} resolves`);
    for (const r of d.dependsOn ?? []) assert.ok(refs.has(r), `dependsOn ${r} resolves`);
  }
  // JSON round trip: nothing undefined, nothing that does not serialize.
  assert.deepEqual(JSON.parse(JSON.stringify(bom)), bom);
  return refs;
}

const hex = (c: string): string => c.repeat(64);

const info: VersionInfo = {
  name: 'mnist-cnn',
  version: '3',
  ordinal: 3,
  digest: hex('a'),
  size: 1688446,
  filename: 'mnist-cnn.onnx',
  createdAt: '2026-11-01T10:00:00.000Z',
  createdBy: 'alice',
  aliases: ['production'],
  auditSeq: 17,
  signature: { keyId: hex('c') },
  lineage: {
    parent: { name: 'mnist-cnn', version: '2', digest: hex('b') },
    data: [
      { name: 'train.npz', sha256: hex('d'), size: 1000, uri: '/data/train.npz', role: 'training' },
      { name: 'mnist:test', uri: 'mnist:test', role: 'validation' },
    ],
    training: {
      config: { arch: 'cnn-small', inputShape: [1, 28, 28], numClasses: 10, hyperparameters: { epochs: 3, lr: 0.003 }, seed: 1 },
      metrics: { loss: 0.0712345678, trainAccuracy: 0.981, valAccuracy: 0.985 },
      recordFormat: 'bulwark.train-record/1',
    },
    scan: { unsafe: false, maxSeverity: 'low', counts: { critical: 0, high: 0, medium: 0, low: 1, info: 0 }, findings: [{ id: 'onnx-large-tensor', severity: 'low', title: 'Large tensor' }] },
    createdBy: 'alice',
    createdAt: '2026-11-01T10:00:00.000Z',
  },
};

test('ML-BOM: CycloneDX 1.6 with a machine-learning-model component, model card, hashes and lineage datasets', () => {
  const bom = buildMlBom(info, { timestamp: '2026-11-02T00:00:00.000Z', serialNumber: 'urn:uuid:12345678-1234-4123-8123-123456789abc' });
  const refs = checkBom(bom);
  const m = bom.metadata.component;
  assert.equal(m.type, 'machine-learning-model');
  assert.equal(m['bom-ref'], 'model:mnist-cnn@3');
  assert.deepEqual([m.name, m.version], ['mnist-cnn', '3']);
  assert.deepEqual(m.hashes, [{ alg: 'SHA-256', content: hex('a') }]);
  const card = m.modelCard!;
  assert.deepEqual(card.modelParameters.approach, { type: 'supervised' });
  assert.equal(card.modelParameters.task, 'classification');
  assert.equal(card.modelParameters.architectureFamily, 'convolutional neural network');
  assert.equal(card.modelParameters.modelArchitecture, 'cnn-small');
  assert.deepEqual(card.modelParameters.inputs, [{ format: 'tensor float32 [1,28,28]' }]);
  assert.deepEqual(card.modelParameters.outputs, [{ format: 'logits float32 [N,10]' }]);
  const metrics = card.quantitativeAnalysis!.performanceMetrics;
  assert.deepEqual(metrics.filter((x) => !x.type.startsWith('scan')), [
    { type: 'loss', value: '0.0712346' },
    { type: 'trainAccuracy', value: '0.981', slice: 'training' },
    { type: 'valAccuracy', value: '0.985', slice: 'validation' },
  ]);
  assert.deepEqual(metrics.find((x) => x.type === 'scan findings (low)'), { type: 'scan findings (low)', value: '1', slice: 'model file scan' });
  assert.deepEqual(card.considerations?.technicalLimitations, ['model file scan: low onnx-large-tensor: Large tensor']);
  assert.ok(card.properties?.some((p) => p.name === 'bulwark:training:hyperparameters' && p.value === '{"epochs":3,"lr":0.003}'));

  assert.equal(bom.components.length, 2);
  const [train, val] = bom.components;
  assert.equal(train!.type, 'data');
  assert.deepEqual(train!.hashes, [{ alg: 'SHA-256', content: hex('d') }]);
  assert.deepEqual(train!.data, [{ type: 'dataset', name: 'train.npz', description: 'training data' }]);
  assert.equal(val!.hashes, undefined, 'no hash is invented for a dataset without one');
  assert.deepEqual(card.modelParameters.datasets, [{ ref: train!['bom-ref'] }, { ref: val!['bom-ref'] }]);
  assert.deepEqual(bom.dependencies[0], { ref: 'model:mnist-cnn@3', dependsOn: [train!['bom-ref'], val!['bom-ref']] });
  const ancestor = m.pedigree!.ancestors[0]!;
  assert.deepEqual([ancestor.type, ancestor.name, ancestor.version, ancestor.hashes![0]!.content], ['machine-learning-model', 'mnist-cnn', '2', hex('b')]);
  assert.ok(refs.has('model:mnist-cnn@2'));
  const prop = (n: string): string | undefined => m.properties?.find((p) => p.name === n)?.value;
  assert.equal(prop('bulwark:signature'), 'verified');
  assert.equal(prop('bulwark:signature:keyId'), hex('c'));
  assert.equal(prop('bulwark:registry:alias'), 'production');
  assert.equal(prop('bulwark:scan:unsafe'), 'false');
});

test('ML-BOM of a version without training record, scan or parent still has a valid model card', () => {
  const bare: VersionInfo = { ...info, signature: null, aliases: [], lineage: { parent: null, data: [], training: null, scan: null, createdBy: 'bob', createdAt: info.createdAt } };
  const bom = buildMlBom(bare);
  checkBom(bom);
  const m = bom.metadata.component;
  assert.deepEqual(m.modelCard!.modelParameters, {});
  assert.equal(m.modelCard!.quantitativeAnalysis, undefined);
  assert.equal(m.pedigree, undefined);
  assert.deepEqual(bom.components, []);
  assert.deepEqual(bom.dependencies, [{ ref: 'model:mnist-cnn@3', dependsOn: [] }]);
  assert.equal(m.properties?.find((p) => p.name === 'bulwark:signature')?.value, 'none');
  assert.notEqual(buildMlBom(bare).serialNumber, bom.serialNumber, 'every BOM gets its own serial number');
});
