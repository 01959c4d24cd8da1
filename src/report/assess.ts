/**
 * The assessment runner behind `bulwark scan`: validates every input first (gates, eps, data against the model),
 * then runs each section provider in turn (supply chain, evasion; later domains add theirs to
 * {@link SECTION_PROVIDERS}), evaluates the gates, and assembles the {@link Report}. {@link writeReport} writes
 * report.json, report.html and report.sarif atomically.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BulwarkError } from '../core/errors.js';
import { readFileChecked, writeFileAtomic } from '../core/fsio.js';
import { gatherRows } from '../core/tensor.js';
import { loadData, parseDataSpec } from '../data/spec.js';
import { BUDGETS, checkData, checkEps, resolveSuite, sampleIndices, type Budget, type EvalNorm } from '../evasion/evaluate/index.js';
import { loadModel, type OnnxModel, type OutputKind } from '../runtime/model.js';
import { evaluateGates, gateFindings, parseGates } from './gates.js';
import { renderHtml } from './html.js';
import { renderReportSarif } from './sarif.js';
import { maxSeverity, type AssessmentContext, type SectionProgress, type SectionProvider } from './sections/common.js';
import { evasionProvider } from './sections/evasion.js';
import { supplyChainProvider } from './sections/supply-chain.js';
import { SEVERITY_ORDER, type Finding, type Gate, type Report, type ReportSection, type Severity } from './types.js';

/** The report's version string. */
export const REPORT_TOOL_VERSION = '0.1.0';

/** The sections `bulwark scan` runs, in order. Later domains append their providers here. */
export const SECTION_PROVIDERS: readonly SectionProvider[] = [supplyChainProvider, evasionProvider];

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
  threads?: number;
  batchSize?: number;
  /** Section providers; default {@link SECTION_PROVIDERS}. */
  sections?: readonly SectionProvider[];
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
  const providers = opts.sections ?? SECTION_PROVIDERS;
  const gates = (opts.gates ?? []).map((g) => (typeof g === 'string' ? parseGates([g], gateMetrics(providers))[0]! : g));
  const budget = opts.budget ?? 'standard';
  if (!BUDGETS.includes(budget)) throw new BulwarkError('BULWARK_E_ARG', `--budget must be one of ${BUDGETS.join(', ')}, got ${JSON.stringify(budget)}`);
  const suite = resolveSuite(budget);
  const norm = opts.norm ?? 'inf';
  if (opts.eps !== undefined && (!Number.isFinite(opts.eps) || opts.eps <= 0)) checkEps(opts.eps, norm, [0, 1], 1);
  if (opts.examples !== undefined && (!Number.isInteger(opts.examples) || opts.examples < 1)) throw new BulwarkError('BULWARK_E_ARG', `--examples must be an integer >= 1, got ${opts.examples}`);
  parseDataSpec(opts.data);
  const bytes = readFileChecked(opts.model, '--model');
  const model = await loadModel(opts.model, { outputKind: opts.outputKind ?? 'auto', ...(opts.threads === undefined ? {} : { threads: opts.threads }), ...(opts.batchSize === undefined ? {} : { batchSize: opts.batchSize }) });
  try {
    const ds = await loadData(opts.data);
    checkData(model, ds.x, ds.y, `--data ${opts.data}`);
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
        sha256: createHash('sha256').update(bytes).digest('hex'),
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
      caption: 'Gates (--fail-under metric=value: the metric must be at least the value)',
      columns: [{ key: 'metric', label: 'metric', format: 'text' }, { key: 'value', label: 'at least', format: 'number' }, { key: 'actual', label: 'actual', format: 'number' }, { key: 'result', label: 'result', format: 'text' }],
      rows: results.map((g) => ({ metric: g.metric, value: g.value, actual: g.actual, result: g.passed ? 'passed' : 'failed' })),
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
    writeFileAtomic(files.json, JSON.stringify(report, null, 1) + '\n');
    writeFileAtomic(files.html, renderHtml(report));
    writeFileAtomic(files.sarif, JSON.stringify(renderReportSarif(report), null, 1) + '\n');
  } catch (e) {
    if (e instanceof BulwarkError) throw e;
    throw new BulwarkError('BULWARK_E_FILE_WRITE', `cannot write the report into ${outDir}: ${(e as Error).message}`);
  }
  return files;
}
