/**
 * Renders a report's findings as a SARIF 2.1.0 log (OASIS Static Analysis Results Interchange Format,
 * https://docs.oasis-open.org/sarif/sarif/v2.1.0/sarif-v2.1.0.html) for code-scanning dashboards: one run, one rule
 * per finding kind that occurs (from the taxonomy table), one result per finding, located at the model file.
 */
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ATLAS_TECHNIQUES, OWASP_ML_TOP10, atlasUrl, findingRule } from './taxonomy.js';
import type { Finding, Report, Severity } from './types.js';

/** SARIF level of a severity. */
export function sarifLevel(s: Severity): 'error' | 'warning' | 'note' {
  return s === 'critical' || s === 'high' ? 'error' : s === 'medium' ? 'warning' : 'note';
}

/** GitHub code scanning's security-severity (0-10) of a severity. */
function securitySeverity(s: Severity): string {
  return { critical: '9.5', high: '8.0', medium: '5.5', low: '3.0', info: '0.0' }[s];
}

/** A URI reference for a file: relative paths stay relative (forward slashes), absolute ones become file: URIs. */
export function artifactUri(file: string): string {
  if (path.isAbsolute(file)) return pathToFileURL(file).href;
  return encodeURI(file.split(path.sep).join('/'));
}

/**
 * Builds the SARIF log.
 * @param r the report
 * @returns a JSON-serializable SARIF 2.1.0 object
 * @example writeFileAtomic('report.sarif', JSON.stringify(renderReportSarif(report), null, 2));
 */
export function renderReportSarif(r: Report): Record<string, unknown> {
  const ids = [...new Set(r.findings.map((f) => f.id))].sort();
  const rules = ids.map((id) => {
    const rule = findingRule(id);
    const sample = r.findings.find((f) => f.id === id)!;
    const atlas = rule?.atlas ?? sample.atlas;
    const owasp = rule?.owasp ?? sample.owasp;
    const severity = rule?.severity ?? sample.severity;
    return {
      id,
      name: id.replace(/(^|-)([a-z0-9])/g, (_m, _d, c: string) => c.toUpperCase()),
      shortDescription: { text: rule?.title ?? sample.title },
      fullDescription: { text: rule?.help ?? sample.title },
      help: { text: `${rule?.help ?? sample.title}\nMITRE ATLAS: ${atlas.map((a) => `${a} ${ATLAS_TECHNIQUES[a] ?? ''}`.trim()).join('; ') || 'none'}. OWASP ML Top 10: ${owasp.map((o) => `${o} ${OWASP_ML_TOP10[o]?.name ?? ''}`.trim()).join('; ') || 'none'}.` },
      defaultConfiguration: { level: sarifLevel(severity) },
      ...(atlas.length > 0 ? { helpUri: atlasUrl(atlas[0]!) } : {}),
      properties: { tags: ['security', 'machine-learning', rule?.domain ?? 'other', ...atlas, ...owasp], 'security-severity': securitySeverity(severity), severity },
    };
  });
  const uri = artifactUri(r.subject.model);
  const results = r.findings.map((f) => result(f, ids.indexOf(f.id), uri));
  return {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [
      {
        tool: { driver: { name: 'bulwark', version: r.tool.version, semanticVersion: r.tool.version, informationUri: 'https://atlas.mitre.org/', rules } },
        invocations: [{ executionSuccessful: true, endTimeUtc: r.createdAt }],
        artifacts: [{ location: { uri }, hashes: { 'sha-256': r.subject.sha256 }, length: r.subject.bytes }],
        results,
        properties: { budget: r.settings.budget, eps: r.settings.eps, norm: r.settings.norm, data: r.data.spec, gates: r.gates, reliable: r.summary.reliable },
        columnKind: 'utf16CodeUnits',
      },
    ],
  };
}

function result(f: Finding, ruleIndex: number, modelUri: string): Record<string, unknown> {
  // Scanner findings point at a file (and maybe a member inside it); the others are about the model as a whole.
  const file = typeof f.evidence['file'] === 'string' ? artifactUri(f.evidence['file'] as string) : modelUri;
  const physical: Record<string, unknown> = { artifactLocation: { uri: file } };
  const inner = f.evidence['innerPath'];
  if (inner === undefined && typeof f.evidence['offset'] === 'number') physical['region'] = { byteOffset: f.evidence['offset'], byteLength: 1 };
  const location: Record<string, unknown> = { physicalLocation: physical };
  if (typeof inner === 'string') location['logicalLocations'] = [{ fullyQualifiedName: `${file}!/${inner}`, kind: 'resource' }];
  const value = typeof f.value === 'number' ? +f.value.toPrecision(6) : f.value;
  return {
    ruleId: f.id,
    ruleIndex,
    level: sarifLevel(f.severity),
    message: { text: `${f.title} (${f.metric} = ${String(value)}${f.threshold === null ? '' : `, threshold ${String(f.threshold)}`})` },
    locations: [location],
    properties: { severity: f.severity, metric: f.metric, value: f.value, threshold: f.threshold, atlas: f.atlas, owasp: f.owasp, 'security-severity': securitySeverity(f.severity) },
  };
}
