/**
 * The assessment runner behind `bulwark scan`: validates every input first (gates, eps, data against the model),
 * then runs each section provider in turn (supply chain, evasion; later domains add theirs to
 * {@link SECTION_PROVIDERS}), evaluates the gates, and assembles the {@link Report}. {@link writeReport} writes
 * report.json, report.html and report.sarif atomically.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BulwarkError, namingFlag } from '../core/errors.js';
import { readFileChecked, writeFilesAtomic } from '../core/fsio.js';
import { gatherRows } from '../core/tensor.js';
import { fitLayout } from '../data/layout.js';
import { loadData, parseDataSpec } from '../data/spec.js';
import { BUDGETS, checkData, checkEps, resolveSuite, sampleIndices, type Budget, type EvalNorm } from '../evasion/evaluate/index.js';
import { loadModel, type OnnxModel, type OutputKind } from '../runtime/model.js';
import type { Dataset } from '../data/index.js';
import { evaluateGates, gateFindings, parseGates } from './gates.js';
import { renderHtml } from './html.js';
import { renderReportSarif } from './sarif.js';
import { maxSeverity, type AssessmentContext, type SectionProgress, type SectionProvider } from './sections/common.js';
import { evasionProvider } from './sections/evasion.js';
import { HARDENING_PARTS, checkSigma, hardeningProvider } from './sections/hardening.js';
import { PRIVACY_PARTS, privacyProvider } from './sections/privacy.js';
import { supplyChainProvider } from './sections/supply-chain.js';
import { SEVERITY_ORDER, type Finding, type Gate, type Report, type ReportSection, type Severity } from './types.js';

/** The report's version string. */
export const REPORT_TOOL_VERSION = '0.1.0';

/** The sections `bulwark scan` runs, in order. Later domains append their providers here. */
export const SECTION_PROVIDERS: readonly SectionProvider[] = [supplyChainProvider, evasionProvider, hardeningProvider, privacyProvider];

/** Parts a section can be narrowed to with `--sections id.part`. */
export const SECTION_PARTS: Readonly<Record<string, readonly string[]>> = { hardening: HARDENING_PARTS, privacy: PRIVACY_PARTS };

/**
 * Parses `--sections` values (comma-separated, repeatable): section ids (`evasion`, `hardening`, ...) or single
 * parts (`privacy.inversion`).
 * @returns the providers to run, in the standard order, and the parts asked for per section (null: all of it)
 * @throws BulwarkError BULWARK_E_ARG for an unknown section or part, or an empty list
 * @example parseSections(['evasion,privacy.membership'])
 */
export function parseSections(specs: string[], providers: readonly SectionProvider[] = SECTION_PROVIDERS): { providers: SectionProvider[]; requested: Map<string, Set<string> | null> } {
  const requested = new Map<string, Set<string> | null>();
  const ids = providers.map((p) => p.id);
  const names = [...ids, ...Object.entries(SECTION_PARTS).flatMap(([s, ps]) => ps.map((p) => `${s}.${p}`))];
  const items = specs.flatMap((s) => s.split(',')).map((s) => s.trim()).filter((s) => s.length > 0);
  if (items.length === 0) throw new BulwarkError('BULWARK_E_ARG', '--sections is empty; name at least one section', { hint: `Sections: ${names.join(', ')}.` });
  for (const it of items) {
    const [sec, part, extra] = it.split('.');
    if (!ids.includes(sec!) || extra !== undefined || (part !== undefined && !(SECTION_PARTS[sec!] ?? []).includes(part))) {
      throw new BulwarkError('BULWARK_E_ARG', `--sections: unknown section ${JSON.stringify(it)}`, { hint: `Name sections or parts, comma-separated: ${names.join(', ')}.` });
    }
    if (part === undefined) requested.set(sec!, null);
    else {
      const cur = requested.get(sec!);
      if (cur === null) continue;
      requested.set(sec!, new Set([...(cur ?? []), part]));
    }
  }
  return { providers: providers.filter((p) => requested.has(p.id)), requested };
}

/** Metric names gates may use (those the providers declare). */
export function gateMetrics(providers: readonly SectionProvider[] = SECTION_PROVIDERS): string[] {
  return [...new Set(providers.flatMap((p) => p.metrics))];
}

/** Options of {@link runAssessment}. */
export interface AssessmentOptions {
  /** ONNX model file. */
  model: string;
  /** Labelled data spec, e.g. mnist:test. */
  data: string;
  /** Sizes the run; default standard. */
  budget?: Budget;
  /** Threat-model radius; default {@link defaultEps}. */
  eps?: number;
  /** Threat-model norm; default L∞. */
  norm?: EvalNorm;
  seed?: number;
  /** Examples assessed (overrides the budget's count). */
  examples?: number;
  /** Gate specs (`metric=value`) or parsed gates. */
  gates?: (string | Gate)[];
  /** Marks the report as the demo's. */
  demo?: boolean;
  outputKind?: 'auto' | OutputKind;
  /** onnxruntime threads of every session the assessment creates (the model's, shadow models', ...). */
  threads?: number;
  /** Worker threads sharing every batch of the model (see LoadOptions.workers). */
  workers?: number;
  /** onnxruntime threads of each of the model's worker lanes, when they differ from `threads`. */
  laneThreads?: number;
  batchSize?: number;
  /** Section providers; default {@link SECTION_PROVIDERS} (or those `only` names). */
  sections?: readonly SectionProvider[];
  /** `--sections` values: section ids or `section.part`, comma-separated (see {@link parseSections}). */
  only?: string[];
  /** `--fail-over` gate specs (the metric must be at most the value). */
  failOver?: string[];
  /** Randomized-smoothing noise level for the hardening section (overrides the training record's). */
  sigma?: number;
  /** Members for membership inference (a data spec). */
  trainData?: string;
  /** Non-members for membership inference (default: `data`). */
  holdoutData?: string;
  /** LiRA shadow models (even, >= 2). */
  shadows?: number;
  onProgress?: (p: SectionProgress) => void;
}

/**
 * The default radius for a model input: MNIST-sized images (1×28×28) get L∞ 0.3 / L2 2.0 (the AutoAttack MNIST
 * settings), anything else L∞ 8/255 / L2 0.5 (the CIFAR-10 settings), in units of a [0, 1] input range scaled to the
 * model bounds.
 */
export function defaultEps(norm: EvalNorm, inputShape: number[], bounds: [number, number] = [0, 1]): number {
  const mnist = inputShape.length === 4 && inputShape[1] === 1 && inputShape[2] === 28 && inputShape[3] === 28;
  const unit = norm === 'inf' ? (mnist ? 0.3 : 8 / 255) : mnist ? 2 : 0.5;
  return +(unit * (bounds[1] - bounds[0])).toPrecision(6);
}

/**
 * Runs an assessment and returns the report (nothing is written).
 * @throws BulwarkError BULWARK_E_GATE, BULWARK_E_ARG (budget, eps), BULWARK_E_FILE_NOT_FOUND, BULWARK_E_ONNX_PARSE,
 *   BULWARK_E_DATA_SPEC, BULWARK_E_SHAPE (data does not fit the model), BULWARK_E_LABELS
 * @example const report = await runAssessment({ model: 'cnn.onnx', data: 'mnist:test', budget: 'quick' });
 */
export async function runAssessment(opts: AssessmentOptions): Promise<Report> {
  const t0 = performance.now();
  const selection = opts.only ? parseSections(opts.only, opts.sections ?? SECTION_PROVIDERS) : undefined;
  const providers = selection?.providers ?? opts.sections ?? SECTION_PROVIDERS;
  // Gates may name the metric of a section left out by `only`: it is not measured, so its gate fails (exit 1);
  // only a name no section reports is refused.
  const known = gateMetrics(opts.sections ?? SECTION_PROVIDERS);
  const gates = [
    ...(opts.gates ?? []).map((g) => (typeof g === 'string' ? parseGates([g], known)[0]! : g)),
    ...parseGates(opts.failOver ?? [], known, 'fail-over'),
  ];
  if (opts.sigma !== undefined) checkSigma(opts.sigma);
  if (opts.shadows !== undefined && (!Number.isSafeInteger(opts.shadows) || opts.shadows < 2 || opts.shadows % 2 !== 0)) {
    throw new BulwarkError('BULWARK_E_ARG', `--shadows must be an even integer >= 2, got ${opts.shadows}`, { hint: 'LiRA trains shadow models in complementary pairs; 16 or more give good estimates at low FPR.' });
  }
  const hasPrivacy = providers.some((p) => p.id === 'privacy');
  for (const [flag, v] of [['--train-data', opts.trainData], ['--holdout-data', opts.holdoutData], ['--shadows', opts.shadows]] as const) {
    if (v !== undefined && !hasPrivacy) throw new BulwarkError('BULWARK_E_USAGE', `${flag} is for the privacy section, which --sections leaves out`, { hint: 'Add privacy (or privacy.membership) to --sections.' });
  }
  if ((opts.holdoutData !== undefined || opts.shadows !== undefined) && opts.trainData === undefined) {
    throw new BulwarkError('BULWARK_E_USAGE', `${opts.holdoutData !== undefined ? '--holdout-data' : '--shadows'} needs --train-data (the members of the membership-inference audit)`, { hint: 'Pass --train-data SPEC with the examples the model was trained on, e.g. --train-data mnist:train[0:5000].' });
  }
  if (opts.trainData !== undefined && opts.trainData === (opts.holdoutData ?? opts.data)) {
    throw new BulwarkError('BULWARK_E_ARG', `--train-data ${opts.trainData} is also the holdout (${opts.holdoutData === undefined ? '--data' : '--holdout-data'}): members and non-members must be different examples`, { hint: 'Pass data the model never saw as --holdout-data, e.g. the test split when --train-data is the training split.' });
  }
  if (opts.trainData !== undefined) parseDataSpec(opts.trainData);
  if (opts.holdoutData !== undefined) parseDataSpec(opts.holdoutData);
  const budget = opts.budget ?? 'standard';
  if (!BUDGETS.includes(budget)) throw new BulwarkError('BULWARK_E_ARG', `--budget must be one of ${BUDGETS.join(', ')}, got ${JSON.stringify(budget)}`);
  const suite = resolveSuite(budget);
  const norm = opts.norm ?? 'inf';
  if (opts.eps !== undefined && (!Number.isFinite(opts.eps) || opts.eps <= 0)) checkEps(opts.eps, norm, [0, 1], 1);
  if (opts.examples !== undefined && (!Number.isInteger(opts.examples) || opts.examples < 1)) throw new BulwarkError('BULWARK_E_ARG', `--examples must be an integer >= 1, got ${opts.examples}`);
  parseDataSpec(opts.data);
  const bytes = readFileChecked(opts.model, '--model');
  const modelThreads = opts.laneThreads ?? opts.threads;
  const model = await loadModel(opts.model, { outputKind: opts.outputKind ?? 'auto', ...(modelThreads === undefined ? {} : { threads: modelThreads }), ...(opts.workers === undefined ? {} : { workers: opts.workers }), ...(opts.batchSize === undefined ? {} : { batchSize: opts.batchSize }) });
  try {
    const loaded = await loadData(opts.data);
    const ds = { ...loaded, x: fitLayout(loaded.x, model.inputShape).x };
    const labels = checkData(model, ds.x, ds.y, `--data ${opts.data}`);
    const extra = async (spec: string | undefined, flag: string): Promise<{ spec: string; data: Dataset } | undefined> => {
      if (spec === undefined) return undefined;
      // name the flag: a missing file under --train-data reads "npz file: no such file" otherwise
      const d = await namingFlag(flag, () => loadData(spec));
      const y = checkData(model, d.x, d.y, `${flag} ${spec}`);
      return { spec, data: { ...d, y } };
    };
    const trainData = await extra(opts.trainData, '--train-data');
    const holdoutData = await extra(opts.holdoutData, '--holdout-data');
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const total = ds.x.shape[0]!;
    const valuesPerExample = ds.x.data.length / total;
    const eps = opts.eps ?? defaultEps(norm, ds.x.shape, model.bounds);
    checkEps(eps, norm, model.bounds, valuesPerExample, '--eps');
    const seed = opts.seed ?? 0;
    const indices = sampleIndices(total, opts.examples ?? suite.examples, seed);
    const x = indices.length === total ? ds.x : gatherRows(ds.x, indices);
    const y = Int32Array.from(indices, (i) => ds.y![i]!);
    const ctx: AssessmentContext = {
      model,
      modelPath: opts.model,
      x,
      y,
      indices,
      dataSpec: opts.data,
      settings: { budget, eps, norm, seed },
      gates,
      progress: opts.onProgress ?? (() => {}),
      dataset: { x: ds.x, y: labels },
      modelSha256: sha256,
      shared: new Map(),
      options: {
        ...(selection ? { requested: selection.requested } : {}),
        ...(opts.sigma === undefined ? {} : { sigma: opts.sigma }),
        ...(trainData ? { trainData } : {}),
        ...(holdoutData ? { holdoutData } : {}),
        ...(opts.shadows === undefined ? {} : { shadows: opts.shadows }),
        ...(opts.threads === undefined ? {} : { threads: opts.threads }),
      },
    };
    const sections: ReportSection[] = [];
    for (const p of providers) sections.push(await p.run(ctx));
    const gateResults = evaluateGates(gates, sections);
    if (gates.length > 0) sections.push(gatesSection(gateResults));
    const findings = sections.flatMap((s) => s.findings).sort((a, b) => SEVERITY_ORDER.indexOf(a.severity) - SEVERITY_ORDER.indexOf(b.severity));
    const counts = Object.fromEntries(SEVERITY_ORDER.map((s) => [s, findings.filter((f) => f.severity === s).length])) as Record<Severity, number>;
    return {
      format: 'bulwark.report/1',
      tool: { name: 'bulwark', version: REPORT_TOOL_VERSION },
      createdAt: new Date().toISOString(),
      subject: {
        model: opts.model,
        sha256,
        bytes: bytes.length,
        inputShape: model.inputShape,
        numClasses: model.numClasses,
        outputKind: model.outputKind,
        bounds: model.bounds,
      },
      data: { spec: opts.data, total, n: indices.length, indices: Array.from(indices) },
      settings: { budget, eps, norm, seed, demo: opts.demo === true },
      sections,
      gates: gateResults,
      findings,
      summary: { counts, maxSeverity: maxSeverity(findings), gatesPassed: gateResults.every((g) => g.passed), reliable: !findings.some((f) => f.id.startsWith('evasion-masking-')) },
      timings: { totalSeconds: (performance.now() - t0) / 1000, sections: Object.fromEntries(sections.map((s) => [s.id, s.seconds])) },
    };
  } finally {
    await (model as OnnxModel).dispose();
  }
}

function gatesSection(results: ReturnType<typeof evaluateGates>): ReportSection {
  const findings: Finding[] = gateFindings(results);
  const failed = results.filter((g) => !g.passed).length;
  return {
    id: 'gates',
    title: 'CI gates',
    domain: 'policy',
    status: failed > 0 ? 'fail' : 'pass',
    summary: failed > 0 ? `${failed} of ${results.length} gate${results.length === 1 ? '' : 's'} failed: the command exits 1.` : `All ${results.length} gate${results.length === 1 ? '' : 's'} passed.`,
    metrics: {},
    findings,
    blocks: [{
      kind: 'table',
      id: 'gate-results',
      caption: 'Gates (--fail-under metric=value: the metric must be at least the value; --fail-over: at most)',
      columns: [{ key: 'metric', label: 'metric', format: 'text' }, { key: 'op', label: 'gate', format: 'text' }, { key: 'value', label: 'value', format: 'number' }, { key: 'actual', label: 'actual', format: 'number' }, { key: 'result', label: 'result', format: 'text' }],
      rows: results.map((g) => ({ metric: g.metric, op: g.op === 'fail-over' ? 'at most' : 'at least', value: g.value, actual: g.actual, result: g.passed ? 'passed' : 'failed' })),
    }],
    details: { gates: results },
    seconds: 0,
  };
}

/** The files {@link writeReport} writes. */
export interface ReportFiles {
  html: string;
  json: string;
  sarif: string;
}

/**
 * Writes report.json, report.html and report.sarif into a folder (created if missing), each atomically.
 * @throws BulwarkError BULWARK_E_FILE_WRITE when the folder cannot be created or written
 */
export function writeReport(report: Report, outDir: string): ReportFiles {
  const files = { json: path.join(outDir, 'report.json'), html: path.join(outDir, 'report.html'), sarif: path.join(outDir, 'report.sarif') };
  try {
    if (fs.existsSync(outDir) && !fs.statSync(outDir).isDirectory()) throw new BulwarkError('BULWARK_E_FILE_WRITE', `--out ${outDir} is a file; give a folder`);
    // All three or none: a failure (a full disk, a folder in the way) leaves an earlier report whole.
    writeFilesAtomic(
      [
        { file: files.json, data: JSON.stringify(report, null, 1) + '\n' },
        { file: files.html, data: renderHtml(report) },
        { file: files.sarif, data: JSON.stringify(renderReportSarif(report), null, 1) + '\n' },
      ],
      '--out',
    );
  } catch (e) {
    if (e instanceof BulwarkError) throw e;
    throw new BulwarkError('BULWARK_E_FILE_WRITE', `cannot write the report into ${outDir}: ${(e as Error).message}`);
  }
  return files;
}
