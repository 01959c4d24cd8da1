/**
 * What a report section provider gets and returns. A domain joins `bulwark scan` by exporting a
 * {@link SectionProvider} and adding it to SECTION_PROVIDERS in assess.ts.
 */
import { BulwarkError } from '../../core/errors.js';
import type { Float32Tensor } from '../../core/tensor.js';
import type { Dataset } from '../../data/index.js';
import type { Budget } from '../../evasion/evaluate/index.js';
import type { OnnxModel } from '../../runtime/model.js';
import { SEVERITY_ORDER, type Block, type Finding, type Gate, type ReportSection, type SectionStatus, type Severity } from '../types.js';

/** Progress of a section, for the scan's progress bar. */
export interface SectionProgress {
  section: string;
  stage: string;
  done: number;
  total: number;
  status?: string;
}

/** Everything a section may use. */
export interface AssessmentContext {
  model: OnnxModel;
  /** The model file as given. */
  modelPath: string;
  /** The assessed examples (a budget-sized sample of the data) and their labels. */
  x: Float32Tensor;
  y: Int32Array;
  /** Dataset indices of the assessed examples. */
  indices: Int32Array;
  dataSpec: string;
  settings: { budget: Budget; eps: number; norm: 'inf' | 2; seed: number };
  gates: Gate[];
  progress: (p: SectionProgress) => void;
  /** The whole labelled data set the sample was drawn from (detector fitting, extraction pools). */
  dataset?: { x: Float32Tensor; y: Int32Array };
  /** SHA-256 of the model file (hex). */
  modelSha256?: string;
  /** Results earlier sections leave for later ones: the evasion section stores its evaluation under `evasion`. */
  shared?: Map<string, unknown>;
  /** Options of the hardening and privacy sections (from --sections, --sigma, --train-data, --shadows). */
  options?: SectionOptions;
}

/** Options of the sections beyond evasion. */
export interface SectionOptions {
  /**
   * Parts asked for explicitly, per section id: `null` means the whole section was named (`--sections privacy`:
   * every part runs, whatever the budget), a set names single parts (`--sections privacy.inversion`). A section
   * without an entry runs its default parts.
   */
  requested?: Map<string, Set<string> | null>;
  /** Noise level for randomized-smoothing certification (--sigma), overriding the training record's. */
  sigma?: number;
  /** Members for membership inference (--train-data), already loaded and checked against the model. */
  trainData?: { spec: string; data: Dataset };
  /** Non-members (default: the scan's --data). */
  holdoutData?: { spec: string; data: Dataset };
  /** LiRA shadow models (--shadows K, even). */
  shadows?: number;
  /** onnxruntime threads for training clones and shadows. */
  threads?: number;
}

/**
 * Which parts of a section run: the requested ones when the section was narrowed to parts, every part when it was
 * named whole, else the defaults.
 */
export function sectionParts(ctx: AssessmentContext, section: string, all: readonly string[], defaults: readonly string[]): { parts: Set<string>; explicit: boolean } {
  const r = ctx.options?.requested?.get(section);
  if (r === undefined) return { parts: new Set(defaults), explicit: false };
  if (r === null) return { parts: new Set(all), explicit: true };
  return { parts: new Set(all.filter((p) => r.has(p))), explicit: true };
}

/**
 * The handler of a section part that threw: input problems found late (a model the part cannot serve) are recorded
 * in `details[part]` and `notes` and leave the rest of the report standing; bugs (any other error) are rethrown.
 */
export function partFailureHandler(details: Record<string, unknown>, notes: string[]): (part: string, e: unknown) => void {
  return (part, e) => {
    if (!(e instanceof BulwarkError) || e.code === 'BULWARK_E_INTERNAL') throw e;
    details[part] = { ran: false, error: { code: e.code, message: e.message } };
    notes.push(`${part} could not run: ${e.code}: ${e.message}`);
  };
}

/**
 * What a section with parts builds as it runs: its blocks, findings, metrics, details (starting with the parts that
 * run) and notes, the handler of a part that throws ({@link partFailureHandler}) and its progress reporter.
 */
export function sectionScaffold(ctx: AssessmentContext, section: string, parts: ReadonlySet<string>) {
  const details: Record<string, unknown> = { parts: [...parts] };
  const notes: string[] = [];
  return {
    blocks: [] as Block[],
    findings: [] as Finding[],
    metrics: {} as Record<string, number>,
    details,
    notes,
    partFailed: partFailureHandler(details, notes),
    progress: (stage: string, done: number, total: number) => ctx.progress({ section, stage, done, total }),
  };
}

/** A domain's contribution to the assessment. */
export interface SectionProvider {
  id: string;
  title: string;
  /** Taxonomy domain (DOMAINS in taxonomy.ts). */
  domain: string;
  /** Names of the metrics it reports (gates may name them). */
  metrics: string[];
  run(ctx: AssessmentContext): Promise<ReportSection>;
}

/** The most severe of some findings, or null. */
export function maxSeverity(findings: Finding[]): Severity | null {
  for (const s of SEVERITY_ORDER) if (findings.some((f) => f.severity === s)) return s;
  return null;
}

/** The summary of a section that evaluated nothing, with the reasons its notes give. */
export function nothingEvaluated(notes: string[]): string {
  return `Nothing was evaluated.${notes.length > 0 ? ' ' + notes.join(' ') : ''}`;
}

/** Section status from its findings: fail on critical or high, warn on medium, pass otherwise. */
export function statusFromFindings(findings: Finding[]): SectionStatus {
  const m = maxSeverity(findings);
  return m === 'critical' || m === 'high' ? 'fail' : m === 'medium' ? 'warn' : 'pass';
}
