/**
 * What a report section provider gets and returns. A domain joins `bulwark scan` by exporting a
 * {@link SectionProvider} and adding it to SECTION_PROVIDERS in assess.ts.
 */
import type { Float32Tensor } from '../../core/tensor.js';
import type { Budget } from '../../evasion/evaluate/index.js';
import type { OnnxModel } from '../../runtime/model.js';
import { SEVERITY_ORDER, type Finding, type Gate, type ReportSection, type SectionStatus, type Severity } from '../types.js';

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

/** Section status from its findings: fail on critical or high, warn on medium, pass otherwise. */
export function statusFromFindings(findings: Finding[]): SectionStatus {
  const m = maxSeverity(findings);
  return m === 'critical' || m === 'high' ? 'fail' : m === 'medium' ? 'warn' : 'pass';
}
