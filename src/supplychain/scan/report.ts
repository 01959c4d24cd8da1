/**
 * Renders a ScanResult as human text, as the --json object, or as SARIF 2.1.0.
 */
import * as path from 'node:path';
import { SCAN_RULES, type ScanFinding, type Severity } from './findings.js';
import type { ScanResult } from './scanner.js';

const TOOL_VERSION = '0.1.0';

/** SARIF result level for a severity. */
export function sarifLevel(s: Severity): 'error' | 'warning' | 'note' | 'none' {
  return s === 'critical' || s === 'high' ? 'error' : s === 'medium' ? 'warning' : s === 'low' ? 'note' : 'none';
}

/** GitHub's security-severity score (0-10) for a severity. */
function securitySeverity(s: Severity): string {
  return { critical: '9.5', high: '8.0', medium: '5.5', low: '3.0', info: '0.0' }[s];
}

/** Where a finding is, as one line: file, member, offset. */
export function locationText(f: ScanFinding): string {
  const parts = [f.evidence.file];
  if (f.evidence.innerPath) parts.push(f.evidence.innerPath);
  let s = parts.join(' > ');
  if (f.evidence.pickleIndex !== undefined) s += ` (pickle #${f.evidence.pickleIndex})`;
  if (f.evidence.offset !== undefined) s += ` @ byte ${f.evidence.offset}`;
  return s;
}

/**
 * Human-readable report.
 * @param r the scan result
 * @param color use ANSI colors (a TTY)
 */
export function renderText(r: ScanResult, color = false): string {
  const paint = (s: Severity, text: string): string => {
    if (!color) return text;
    const code = { critical: '1;31', high: '31', medium: '33', low: '36', info: '2' }[s];
    return `\x1b[${code}m${text}\x1b[0m`;
  };
  const lines: string[] = [];
  const files = new Map<string, ScanFinding[]>();
  for (const it of r.scanned) if (it.innerPath === undefined && !files.has(it.file)) files.set(it.file, []);
  for (const f of r.findings) {
    if (!files.has(f.evidence.file)) files.set(f.evidence.file, []);
    files.get(f.evidence.file)!.push(f);
  }
  for (const [file, fs] of files) {
    const top = r.scanned.find((i) => i.file === file && i.innerPath === undefined);
    const fmt = top ? ` [${top.format}]` : '';
    if (fs.length === 0) {
      lines.push(`${file}${fmt}: clean`);
      continue;
    }
    lines.push(`${file}${fmt}: ${fs.length} finding${fs.length === 1 ? '' : 's'}`);
    for (const f of fs) {
      lines.push(`  ${paint(f.severity, f.severity.toUpperCase().padEnd(8))} ${f.id}: ${f.title}`);
      lines.push(`           at ${locationText(f)}${f.evidence['opcode'] ? ` (${String(f.evidence['opcode'])})` : ''}`);
      if (f.evidence['calledBy']) lines.push(`           called by ${String(f.evidence['calledBy'])} @ byte ${String(f.evidence['callOffset'])}`);
      if (f.evidence['occurrences']) lines.push(`           ${String(f.evidence['occurrences'])} occurrences`);
    }
  }
  const c = r.counts;
  lines.push('');
  lines.push(`${r.scanned.length} item${r.scanned.length === 1 ? '' : 's'} scanned; findings: ${c.critical} critical, ${c.high} high, ${c.medium} medium, ${c.low} low, ${c.info} info`);
  lines.push(r.unsafe ? `UNSAFE (findings at or above ${r.failOn})` : `OK (nothing at or above ${r.failOn})`);
  return lines.join('\n');
}

/** The --json object. */
export function renderJson(r: ScanResult): Record<string, unknown> {
  return {
    tool: 'bulwark scan-file',
    version: TOOL_VERSION,
    unsafe: r.unsafe,
    failOn: r.failOn,
    maxSeverity: r.maxSeverity,
    counts: r.counts,
    findings: r.findings,
    scanned: r.scanned,
    ...(r.droppedFindings > 0 ? { droppedFindings: r.droppedFindings } : {}),
  };
}

function uriOf(file: string): string {
  const rel = path.isAbsolute(file) ? file : file.split(path.sep).join('/');
  return encodeURI(rel.replace(/\\/g, '/'));
}

/** SARIF 2.1.0 log: one run, tool.driver.rules from the catalog, one result per finding. */
export function renderSarif(r: ScanResult): Record<string, unknown> {
  const ids = Object.keys(SCAN_RULES) as (keyof typeof SCAN_RULES)[];
  const rules = ids.map((id) => {
    const rule = SCAN_RULES[id];
    return {
      id,
      name: id.replace(/(^|-)([a-z])/g, (_m, _d, c: string) => c.toUpperCase()),
      shortDescription: { text: rule.title },
      fullDescription: { text: rule.help },
      defaultConfiguration: { level: sarifLevel(rule.severity) },
      helpUri: 'https://atlas.mitre.org/techniques/AML.T0010',
      properties: { tags: ['security', ...rule.atlas, ...rule.owasp], 'security-severity': securitySeverity(rule.severity), severity: rule.severity },
    };
  });
  const results = r.findings.map((f) => {
    const physical: Record<string, unknown> = { artifactLocation: { uri: uriOf(f.evidence.file) } };
    if (!f.evidence.innerPath && typeof f.evidence.offset === 'number') physical['region'] = { byteOffset: f.evidence.offset, byteLength: 1 };
    const location: Record<string, unknown> = { physicalLocation: physical };
    if (f.evidence.innerPath) location['logicalLocations'] = [{ fullyQualifiedName: `${f.evidence.file}!/${f.evidence.innerPath}`, kind: 'resource' }];
    return {
      ruleId: f.id,
      ruleIndex: ids.indexOf(f.id as keyof typeof SCAN_RULES),
      level: sarifLevel(f.severity),
      message: { text: `${f.title} (${f.metric} = ${String(f.value)}) at ${locationText(f)}` },
      locations: [location],
      properties: { severity: f.severity, metric: f.metric, value: f.value, threshold: f.threshold, atlas: f.atlas, owasp: f.owasp, evidence: f.evidence, 'security-severity': securitySeverity(f.severity) },
    };
  });
  return {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [
      {
        tool: { driver: { name: 'bulwark', semanticVersion: TOOL_VERSION, version: TOOL_VERSION, rules } },
        results,
        columnKind: 'utf16CodeUnits',
      },
    ],
  };
}
