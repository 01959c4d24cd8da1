/**
 * ML-BOM export: a registry version as a CycloneDX 1.6 JSON BOM.
 *
 * The BOM's subject (`metadata.component`) is the model: type `machine-learning-model`, its SHA-256, a
 * `modelCard` (modelParameters from the training record, quantitativeAnalysis from its metrics and the scan
 * report, considerations from scan findings), and its parent version as a pedigree ancestor. `components` holds
 * the datasets of its lineage (type `data`, with their hashes), and `dependencies` links the model to them.
 */
import { randomUUID } from 'node:crypto';
import type { DatasetRef, VersionInfo } from '../registry/registry.js';

/** CycloneDX spec version written. */
export const CYCLONEDX_SPEC_VERSION = '1.6';
const TOOL_VERSION = '0.1.0';

/** A CycloneDX property. */
export interface CdxProperty {
  name: string;
  value: string;
}

/** A CycloneDX hash. */
export interface CdxHash {
  alg: 'SHA-256';
  content: string;
}

/** A CycloneDX performance metric (values are strings in the schema). */
export interface CdxPerformanceMetric {
  type: string;
  value: string;
  slice?: string;
}

/** The CycloneDX 1.6 model card fields Bulwark writes. */
export interface CdxModelCard {
  'bom-ref': string;
  modelParameters: {
    approach?: { type: 'supervised' | 'unsupervised' | 'reinforcement-learning' | 'semi-supervised' | 'self-supervised' };
    task?: string;
    architectureFamily?: string;
    modelArchitecture?: string;
    datasets?: { ref: string }[];
    inputs?: { format: string }[];
    outputs?: { format: string }[];
  };
  quantitativeAnalysis?: { performanceMetrics: CdxPerformanceMetric[] };
  considerations?: { technicalLimitations?: string[] };
  properties?: CdxProperty[];
}

/** A CycloneDX component (the subset Bulwark writes). */
export interface CdxComponent {
  type: 'machine-learning-model' | 'data';
  'bom-ref': string;
  name: string;
  version?: string;
  description?: string;
  hashes?: CdxHash[];
  properties?: CdxProperty[];
  modelCard?: CdxModelCard;
  data?: { type: 'dataset'; name: string; description?: string }[];
  pedigree?: { ancestors: CdxComponent[] };
}

/** A CycloneDX 1.6 BOM as Bulwark writes it. */
export interface CycloneDxBom {
  bomFormat: 'CycloneDX';
  specVersion: typeof CYCLONEDX_SPEC_VERSION;
  serialNumber: string;
  version: number;
  metadata: {
    timestamp: string;
    tools: { components: { type: 'application'; name: string; version: string }[] };
    component: CdxComponent;
    properties?: CdxProperty[];
  };
  components: CdxComponent[];
  dependencies: { ref: string; dependsOn?: string[] }[];
}

/** Options of {@link buildMlBom}. */
export interface MlBomOptions {
  /** The parent version's record, when lineage names one (adds its hash to the pedigree). */
  parent?: VersionInfo | null;
  /** Default: now. */
  timestamp?: string;
  /** Default: a random urn:uuid. */
  serialNumber?: string;
}

function prop(name: string, value: unknown): CdxProperty {
  return { name, value: typeof value === 'string' ? value : JSON.stringify(value) };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A readable architecture family for a Bulwark architecture name or a common model name. */
function architectureFamily(arch: string): string | undefined {
  const a = arch.toLowerCase();
  if (/resnet/.test(a)) return 'residual neural network';
  if (/cnn|conv|lenet|vgg|mobilenet|efficientnet/.test(a)) return 'convolutional neural network';
  if (/transformer|vit|bert|gpt/.test(a)) return 'transformer';
  if (/lstm|gru|rnn/.test(a)) return 'recurrent neural network';
  if (/mlp|dense|linear|logistic|softmax/.test(a)) return 'multilayer perceptron';
  return undefined;
}

function shapeText(s: unknown): string | undefined {
  return Array.isArray(s) && s.every((d) => typeof d === 'number' || typeof d === 'string') ? `[${s.map((d) => (typeof d === 'number' && d < 0 ? 'N' : String(d))).join(',')}]` : undefined;
}

function datasetRef(d: DatasetRef, i: number): string {
  return `data:${i + 1}:${d.role ?? 'training'}:${d.name}`;
}

function datasetComponent(d: DatasetRef, i: number): CdxComponent {
  const role = d.role ?? 'training';
  const properties = [prop('bulwark:dataset:role', role)];
  if (d.uri !== undefined) properties.push(prop('bulwark:dataset:uri', d.uri));
  if (d.size !== undefined) properties.push(prop('bulwark:dataset:size', String(d.size)));
  return {
    type: 'data',
    'bom-ref': datasetRef(d, i),
    name: d.name,
    ...(d.sha256 ? { hashes: [{ alg: 'SHA-256' as const, content: d.sha256 }] } : {}),
    data: [{ type: 'dataset', name: d.name, description: `${role} data${d.sha256 ? '' : ' (no content hash recorded)'}` }],
    properties,
  };
}

/** A metric value as the schema's string, without float noise past 6 significant digits. */
function metricValue(v: number): string {
  return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(6)));
}

/**
 * Builds the CycloneDX 1.6 ML-BOM of a registry version.
 * @param info the version (from `registry.show`)
 * @param options the parent version, and fixed timestamp / serial number for reproducible output
 * @returns the BOM object (serialize with JSON.stringify)
 * @example const bom = buildMlBom(await reg.show('mnist-cnn@production'));
 */
export function buildMlBom(info: VersionInfo, options: MlBomOptions = {}): CycloneDxBom {
  const ref = `model:${info.name}@${info.version}`;
  const lin = info.lineage;
  const datasets = lin.data.map(datasetComponent);
  const training = lin.training ?? {};
  const config: Record<string, unknown> = isObject(training.config) ? training.config : {};

  const params: CdxModelCard['modelParameters'] = {};
  const numClasses = config['numClasses'];
  if (typeof numClasses === 'number') {
    params.approach = { type: 'supervised' };
    params.task = 'classification';
  }
  if (typeof config['arch'] === 'string') {
    const fam = architectureFamily(config['arch']);
    if (fam) params.architectureFamily = fam;
    params.modelArchitecture = config['arch'];
  }
  if (datasets.length > 0) params.datasets = datasets.map((d) => ({ ref: d['bom-ref'] }));
  const inShape = shapeText(config['inputShape']);
  if (inShape) params.inputs = [{ format: `tensor float32 ${inShape}` }];
  if (typeof numClasses === 'number') params.outputs = [{ format: `logits float32 [N,${numClasses}]` }];

  const metrics: CdxPerformanceMetric[] = [];
  for (const [k, v] of Object.entries(training.metrics ?? {})) {
    if (typeof v !== 'number' || !Number.isFinite(v)) continue;
    const slice = /^val/i.test(k) ? 'validation' : /^train/i.test(k) ? 'training' : /^test/i.test(k) ? 'test' : undefined;
    metrics.push({ type: k, value: metricValue(v), ...(slice ? { slice } : {}) });
  }
  const scan = lin.scan;
  const limitations: string[] = [];
  if (scan) {
    const counts = isObject(scan['counts']) ? scan['counts'] : {};
    for (const [sev, n] of Object.entries(counts)) if (typeof n === 'number') metrics.push({ type: `scan findings (${sev})`, value: String(n), slice: 'model file scan' });
    const findings = Array.isArray(scan['findings']) ? scan['findings'] : [];
    for (const f of findings.slice(0, 20)) {
      if (isObject(f)) limitations.push(`model file scan: ${String(f['severity'])} ${String(f['id'])}${typeof f['title'] === 'string' ? `: ${f['title']}` : ''}`);
    }
  }

  const cardProps: CdxProperty[] = [];
  for (const [k, v] of Object.entries(config)) if (!['arch', 'numClasses', 'inputShape'].includes(k)) cardProps.push(prop(`bulwark:training:${k}`, v));
  if (training.recordFormat) cardProps.push(prop('bulwark:training:recordFormat', training.recordFormat));

  const modelCard: CdxModelCard = {
    'bom-ref': `model-card:${info.name}@${info.version}`,
    modelParameters: params,
    ...(metrics.length > 0 ? { quantitativeAnalysis: { performanceMetrics: metrics } } : {}),
    ...(limitations.length > 0 ? { considerations: { technicalLimitations: limitations } } : {}),
    ...(cardProps.length > 0 ? { properties: cardProps } : {}),
  };

  const properties: CdxProperty[] = [
    prop('bulwark:registry:filename', info.filename),
    prop('bulwark:registry:size', String(info.size)),
    prop('bulwark:registry:createdBy', info.createdBy),
    prop('bulwark:registry:createdAt', info.createdAt),
    prop('bulwark:registry:auditSeq', String(info.auditSeq)),
  ];
  for (const a of info.aliases) properties.push(prop('bulwark:registry:alias', a));
  properties.push(prop('bulwark:signature', info.signature === null ? 'none' : info.signature.keyId === null ? 'unverified' : 'verified'));
  if (info.signature?.keyId) properties.push(prop('bulwark:signature:keyId', info.signature.keyId));
  if (scan) {
    properties.push(prop('bulwark:scan:unsafe', String(scan['unsafe'] === true)));
    properties.push(prop('bulwark:scan:maxSeverity', String(scan['maxSeverity'] ?? 'none')));
  }

  let pedigree: CdxComponent['pedigree'];
  if (lin.parent) {
    const p = lin.parent;
    const parentInfo = options.parent && options.parent.name === p.name && options.parent.version === p.version ? options.parent : null;
    pedigree = {
      ancestors: [
        {
          type: 'machine-learning-model',
          'bom-ref': `model:${p.name}@${p.version}`,
          name: p.name,
          version: p.version,
          hashes: [{ alg: 'SHA-256', content: p.digest }],
          ...(parentInfo ? { properties: [prop('bulwark:registry:createdAt', parentInfo.createdAt), prop('bulwark:registry:createdBy', parentInfo.createdBy)] } : {}),
        },
      ],
    };
  }

  const model: CdxComponent = {
    type: 'machine-learning-model',
    'bom-ref': ref,
    name: info.name,
    version: info.version,
    hashes: [{ alg: 'SHA-256', content: info.digest }],
    properties,
    modelCard,
    ...(pedigree ? { pedigree } : {}),
  };

  return {
    bomFormat: 'CycloneDX',
    specVersion: CYCLONEDX_SPEC_VERSION,
    serialNumber: options.serialNumber ?? `urn:uuid:${randomUUID()}`,
    version: 1,
    metadata: {
      timestamp: options.timestamp ?? new Date().toISOString(),
      tools: { components: [{ type: 'application', name: 'bulwark', version: TOOL_VERSION }] },
      component: model,
    },
    components: datasets,
    dependencies: [{ ref, dependsOn: datasets.map((d) => d['bom-ref']) }, ...datasets.map((d) => ({ ref: d['bom-ref'] }))],
  };
}
