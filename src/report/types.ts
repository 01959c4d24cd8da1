/**
 * The report model: a report is a list of sections (one per threat domain: evasion, supply chain, later
 * poisoning, privacy, ...), each with typed findings (DESIGN.md section 4), metrics that gates can test, and
 * renderable blocks (text, key figures, tables, charts, image grids) that every output format draws the same way.
 * A domain adds itself by producing a {@link ReportSection}; the renderers need no change.
 */

/** Severities, most severe first (the same scale as the model-file scanner's). */
export type Severity = 'critical' | 'high' | 'medium' | 'low' | 'info';

/** Severities in decreasing order. */
export const SEVERITY_ORDER: readonly Severity[] = ['critical', 'high', 'medium', 'low', 'info'];

/** A typed finding (DESIGN.md section 4). */
export interface Finding {
  /** Rule id, a key of the taxonomy table (`evasion-adversarial-examples`, `pickle-dangerous-callable`, ...). */
  id: string;
  title: string;
  severity: Severity;
  /** What was measured, e.g. `robust-accuracy`. */
  metric: string;
  value: number | string;
  /** The limit it was judged against (a gate's value, a check's threshold), or null. */
  threshold: number | string | null;
  /** MITRE ATLAS technique ids. */
  atlas: string[];
  /** OWASP Machine Learning Security Top 10 ids. */
  owasp: string[];
  /** Machine-readable support: example indices, per-attack counts, file offsets. */
  evidence: Record<string, unknown>;
}

/** A figure shown as a labelled value. */
export interface MetricItem {
  label: string;
  value: number | string;
  /** How to print a number: a percentage of 1, a count, seconds, or as is. */
  format?: ValueFormat;
  /** Name of the gate metric this figure is, when it is one. */
  metric?: string;
}

/** How a number is printed. */
export type ValueFormat = 'percent' | 'count' | 'seconds' | 'number' | 'text';

/** A table column. */
export interface TableColumn {
  key: string;
  label: string;
  format?: ValueFormat;
}

/** A line chart: series of (x, y) points. */
export interface ChartSeries {
  name: string;
  points: { x: number; y: number }[];
  /** `line` joins the points; `points` draws markers only. */
  style?: 'line' | 'points';
}

/** One row of an image grid: images side by side, each with a caption. */
export interface ImageRow {
  label: string;
  images: { caption: string; png: string; width: number; height: number }[];
}

/** Renderable content of a section. Every block with an `id` can be found in the HTML by `data-block`. */
export type Block =
  | { kind: 'text'; text: string }
  | { kind: 'metrics'; id: string; items: MetricItem[] }
  | { kind: 'table'; id: string; caption: string; columns: TableColumn[]; rows: Record<string, number | string | null>[] }
  | { kind: 'chart'; id: string; caption: string; xLabel: string; yLabel: string; yRange?: [number, number]; yFormat?: ValueFormat; series: ChartSeries[] }
  | { kind: 'images'; id: string; caption: string; rows: ImageRow[] };

/** Outcome of a section. */
export type SectionStatus = 'pass' | 'warn' | 'fail' | 'error' | 'skipped';

/** One domain's part of a report. */
export interface ReportSection {
  /** Stable id, e.g. `evasion`, `supply-chain`. */
  id: string;
  title: string;
  /** Taxonomy domain (a key of DOMAINS in taxonomy.ts). */
  domain: string;
  status: SectionStatus;
  /** One paragraph for readers. */
  summary: string;
  /** Gate-able figures by metric name (e.g. `robust-accuracy`: 0.02). */
  metrics: Record<string, number>;
  findings: Finding[];
  blocks: Block[];
  /** Machine-readable details for report.json (per-example records, raw results). */
  details: Record<string, unknown>;
  seconds: number;
  /** Set when the section failed to run. */
  error?: { code: string; message: string };
}

/** A CI gate: the metric must be at least `value` (fail-under) or at most `value` (fail-over). */
export interface Gate {
  metric: string;
  op: 'fail-under' | 'fail-over';
  value: number;
}

/** A gate's outcome. */
export interface GateResult extends Gate {
  /** The metric's value, or null when its section did not produce it. */
  actual: number | null;
  passed: boolean;
  message: string;
}

/** A whole assessment. */
export interface Report {
  format: 'bulwark.report/1';
  tool: { name: 'bulwark'; version: string };
  createdAt: string;
  /** The model assessed. */
  subject: { model: string; sha256: string; bytes: number; inputShape: number[]; numClasses: number; outputKind: string; bounds: [number, number] };
  /** The data it was assessed on. */
  data: { spec: string; total: number; n: number; indices: number[] };
  settings: { budget: string; eps: number; norm: 'inf' | 2; seed: number; demo: boolean };
  sections: ReportSection[];
  gates: GateResult[];
  /** Every finding of every section, most severe first. */
  findings: Finding[];
  summary: { counts: Record<Severity, number>; maxSeverity: Severity | null; gatesPassed: boolean; reliable: boolean };
  timings: { totalSeconds: number; sections: Record<string, number> };
}
