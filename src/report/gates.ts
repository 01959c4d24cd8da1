/**
 * CI gates: `--fail-under metric=value` (repeatable) fails the run (exit 1) when the report's metric is below the
 * value, `--fail-over metric=value` when it is above (leakage and exposure metrics: mia-tpr-at-1fpr, dp-epsilon).
 * Gates are parsed before anything runs, against the metrics the assessment's sections declare.
 */
import { BulwarkError } from '../core/errors.js';
import { parseDecimal } from '../core/numbers.js';
import { makeFinding } from './taxonomy.js';
import type { Finding, Gate, GateResult, ReportSection } from './types.js';

/** Metrics whose values are fractions in [0, 1] (gate values must be too); the report prints them as percentages. */
export const FRACTION_METRICS: ReadonlySet<string> = new Set([
  'clean-accuracy', 'robust-accuracy',
  'certified-accuracy', 'detector-tpr', 'detector-auc', 'detector-adaptive-evasion', 'preprocessing-adaptive-accuracy',
  'mia-auc', 'mia-tpr-at-1fpr', 'extraction-fidelity', 'inversion-own-class-rate',
]);
const FRACTIONS = FRACTION_METRICS;

/** How the report prints a metric's value. */
export function metricFormat(metric: string): 'percent' | 'number' | 'count' {
  if (metric.endsWith('-auc')) return 'number';
  return FRACTIONS.has(metric) ? 'percent' : metric.endsWith('-findings') ? 'count' : 'number';
}

/**
 * Parses `metric=value` gate specs.
 * @param specs the flag values, e.g. ["robust-accuracy=0.5"]
 * @param known metric names the assessment will report
 * @throws BulwarkError BULWARK_E_GATE for a malformed spec, an unknown metric or a value out of range
 * @example parseGates(['robust-accuracy=0.5'], ['clean-accuracy', 'robust-accuracy'])
 */
export function parseGates(specs: string[], known: readonly string[], op: 'fail-under' | 'fail-over' = 'fail-under'): Gate[] {
  const flag = `--${op}`;
  const example = op === 'fail-under' ? 'robust-accuracy=0.5' : 'mia-tpr-at-1fpr=0.05';
  const hint = `Write ${flag} ${example} or ${flag} ${op === 'fail-under' ? 'clean-accuracy=90%' : 'dp-epsilon=8'} (rates and accuracies as a fraction or a percentage); \`bulwark scan --help\` lists the metrics.`;
  return specs.map((spec) => {
    const m = /^\s*([a-z][a-z0-9-]*)\s*=\s*(\S+)\s*$/.exec(spec);
    if (!m) throw new BulwarkError('BULWARK_E_GATE', `${flag} ${JSON.stringify(spec)} must read metric=value, e.g. ${example}`, { hint });
    const metric = m[1]!;
    if (!known.includes(metric)) throw new BulwarkError('BULWARK_E_GATE', `${flag}: unknown metric ${JSON.stringify(metric)}; the assessment reports ${known.join(', ')}`, { hint });
    const text = m[2]!;
    const pct = text.endsWith('%');
    const digits = pct ? text.slice(0, -1) : text;
    // plain decimal or scientific notation only (Number() would also take 0x10, 0b1 and Infinity)
    const value = parseDecimal(digits) / (pct ? 100 : 1);
    if (!Number.isFinite(value)) throw new BulwarkError('BULWARK_E_GATE', `${flag} ${metric}: ${JSON.stringify(text)} is not a number`, { hint });
    if (FRACTIONS.has(metric) && (value < 0 || value > 1)) throw new BulwarkError('BULWARK_E_GATE', `${flag} ${metric}=${text}: ${metric} is a fraction, so its gate is a value in [0, 1] (or a percentage like 90%)`, { hint });
    if (!FRACTIONS.has(metric) && value < 0) throw new BulwarkError('BULWARK_E_GATE', `${flag} ${metric}=${text}: the value must be >= 0`, { hint });
    return { metric, op, value };
  });
}

/** Evaluates gates against the metrics of the sections; a metric no section produced fails its gate. */
export function evaluateGates(gates: Gate[], sections: ReportSection[]): GateResult[] {
  return gates.map((g) => {
    const owner = sections.find((s) => g.metric in s.metrics);
    const actual = owner ? owner.metrics[g.metric]! : null;
    if (actual === null) return { ...g, actual, passed: false, message: `${g.metric} was not measured (its section or part did not run, or --sections left it out), so the gate fails` };
    if (g.op === 'fail-over') {
      const ok = actual <= g.value;
      return { ...g, actual, passed: ok, message: `${g.metric} ${fmt(actual)} ${ok ? '<=' : '>'} ${fmt(g.value)}: ${ok ? 'passed' : 'failed'}` };
    }
    const passed = actual >= g.value;
    return { ...g, actual, passed, message: `${g.metric} ${fmt(actual)} ${passed ? '>=' : '<'} ${fmt(g.value)}: ${passed ? 'passed' : 'failed'}` };
  });
}

/** The findings of failed gates. */
export function gateFindings(results: GateResult[]): Finding[] {
  return results.filter((r) => !r.passed).map((r) => makeFinding(r.op === 'fail-over' ? 'gate-fail-over' : 'gate-fail-under', {
    title: `Gate failed: ${r.metric} ${r.actual === null ? 'not measured' : fmt(r.actual)} is ${r.actual === null ? 'required' : r.op === 'fail-over' ? 'over' : 'under'} ${fmt(r.value)}`,
    metric: r.metric,
    value: r.actual ?? 'not measured',
    threshold: r.value,
    evidence: { gate: `--${r.op} ${r.metric}=${r.value}`, message: r.message },
  }));
}

function fmt(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(4).replace(/0+$/, '').replace(/\.$/, '');
}
