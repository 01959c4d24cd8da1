import * as path from 'node:path';
import { BulwarkError, namingFlagSync } from '../core/errors.js';
import { checkWritableFolder } from '../core/fsio.js';
import { parseDataSpec } from '../data/spec.js';
import { BUDGETS, parseNorm, type Budget } from '../evasion/evaluate/index.js';
import { DEMO_DEFAULTS, demoModel } from '../report/demo.js';
import { SECTION_PARTS, SECTION_PROVIDERS, gateMetrics, parseSections, runAssessment, writeReport } from '../report/assess.js';
import { parseGates } from '../report/gates.js';
import { formatValue } from '../report/html.js';
import { stageProgress } from '../report/progress.js';
import type { Report } from '../report/types.js';
import { numberFlag, parseDecimal, parseFlags, printJson, threadsFlag } from './args.js';
import { checkLocalModel, executionFlags } from './common.js';

/** Comma-separated names wrapped at 116 columns, continuation lines indented by 29 spaces. */
function wrapList(items: string[], first: string): string {
  const lines: string[] = [];
  let cur = first;
  for (const [i, it] of items.entries()) {
    const word = it + (i < items.length - 1 ? ',' : '');
    if (cur.trim().length > 0 && cur.length + 1 + word.length > 116) {
      lines.push(cur);
      cur = ' '.repeat(29) + word;
    } else cur += (cur.trim().length > 0 ? ' ' : '') + word;
  }
  lines.push(cur);
  return lines.join('\n');
}

const HELP = `Usage: bulwark scan --model M.onnx --data SPEC --out DIR [options]
       bulwark scan --demo

Assesses a model and writes DIR/report.html (one self-contained page: inline SVG plots, no scripts, no external
assets), DIR/report.json and DIR/report.sarif (SARIF 2.1.0). Every finding is mapped to MITRE ATLAS and the OWASP
ML Top 10. See docs/REPORT.md. Sections:
  supply-chain   the model-file scanner on M.onnx
  evasion        the AutoAttack-style ensemble (APGD-CE, APGD-T, FAB-T, Square), a robustness curve, masking checks
  hardening      parts: record (training method and per-epoch accuracy from M.onnx.train.json, and whether its
                 robust-accuracy claim survives the scan), smoothing (certified accuracy against L2 radius when the
                 record says noise-trained or --sigma is given), detector (feature squeezing at 5% FPR: ROC, rates,
                 adaptive attack), preprocessing (plain against BPDA accuracy of median / JPEG / bit-depth inputs)
  privacy        parts: dp (epsilon from the training record), membership (with --train-data: loss attack, LiRA
                 with --shadows), extraction (Knockoff clone agreement against queries) and inversion (MI-Face
                 images); extraction and inversion run by default at budget standard and thorough only

Options:
  -m, --model M.onnx         the model, a local ONNX file (remote KServe v2 endpoints: bulwark attack square|hsj|nes)
      --data SPEC            labelled data, e.g. mnist:test, mnist:test[0:1000], data.npz
  -o, --out DIR              the report folder (created if missing)
      --budget B             quick | standard (default) | thorough
      --eps E                threat-model radius (default: 0.3 L∞ / 2.0 L2 for 1×28×28 inputs, else 8/255 / 0.5)
      --norm N               inf (default) or 2
      --sections LIST        sections or parts to run, comma-separated (default: all, with the default parts):
${wrapList([...SECTION_PROVIDERS.map((p) => p.id), ...Object.entries(SECTION_PARTS).flatMap(([id, ps]) => ps.map((x) => `${id}.${x}`))], ' '.repeat(29))}
                             (naming a section runs all its parts whatever the budget)
      --fail-under M=V       CI gate, repeatable: exit 1 when metric M is below V
      --fail-over M=V        CI gate, repeatable: exit 1 when metric M is above V (e.g. mia-tpr-at-1fpr=0.05,
                             dp-epsilon=8)
${wrapList(gateMetrics(), '                             metrics:')}
                             (V a fraction or a percentage for rates and accuracies; a metric that was not measured,
                             e.g. of a section --sections leaves out, fails its gate: exit 1; an unknown metric
                             name is an input error: exit 2)
      --sigma S              hardening: certify with randomized smoothing at noise level S (default: the training
                             record's noise sigma, if the model was noise-trained)
      --train-data SPEC      privacy: the model's training examples (members) for membership inference
      --holdout-data SPEC    privacy: non-members (default: --data)
      --shadows K            privacy: also run offline LiRA with K shadow models (even; trained with the
                             record's recipe)
      --examples N           assess N examples (default: the budget's; a seeded sample of the data)
      --seed S               seed of the sample and every attack (default 0)
      --json                 print one JSON object (files, accuracies, every metric, findings, flags, gates)
      --demo                 assess the reference MNIST CNN on mnist:test with budget quick into ./bulwark-report
                             (the committed fixture, else a copy cached in $BULWARK_CACHE or ~/.cache/bulwark,
                             else trained once and cached)
      --output-kind K        auto | logits | probs (default auto)
      --threads T            onnxruntime intra-op threads (per worker)
      --workers W            worker threads that share every batch (default, when --threads is not given
                             either: one per core, up to 4; --threads and --workers are each at most the
                             number of cores, their product at most twice that)
      --batch-size B         examples per onnxruntime run (default: 256 for predictions, a cache-sized run for gradients)

Exit codes: 0 report written and every gate passed, 1 a gate failed, 2 usage or input error.
`;

const OPTIONS = {
  model: { type: 'string', short: 'm' },
  data: { type: 'string' },
  out: { type: 'string', short: 'o' },
  budget: { type: 'string' },
  eps: { type: 'string' },
  norm: { type: 'string' },
  'fail-under': { type: 'string', multiple: true },
  'fail-over': { type: 'string', multiple: true },
  sections: { type: 'string', multiple: true },
  sigma: { type: 'string' },
  'train-data': { type: 'string' },
  'holdout-data': { type: 'string' },
  shadows: { type: 'string' },
  examples: { type: 'string' },
  seed: { type: 'string' },
  json: { type: 'boolean' },
  demo: { type: 'boolean' },
  'output-kind': { type: 'string' },
  threads: { type: 'string' },
  workers: { type: 'string' },
  'batch-size': { type: 'string' },
} as const;

/** `bulwark scan`: see HELP. Returns 0 (written, gates passed) or 1 (a gate failed); input errors throw (exit 2). */
export async function run(argv: string[]): Promise<number> {
  const p = parseFlags(argv, OPTIONS, HELP);
  if (!p) return 0;
  const v = p.values;
  const demo = v.demo === true;
  const json = v.json === true;
  if (demo && typeof v.model === 'string') throw new BulwarkError('BULWARK_E_USAGE', '--demo brings its own model; drop --model (or drop --demo)');
  const missing = ['model', 'data', 'out'].filter((k) => typeof v[k] !== 'string' || (v[k] as string).length === 0);
  if (!demo && missing.length > 0) throw new BulwarkError('BULWARK_E_USAGE', `missing required flag${missing.length > 1 ? 's' : ''} ${missing.map((k) => `--${k}`).join(', ')}`, { hint: `usage:\n${HELP}` });
  if (!demo) checkLocalModel(v.model as string);
  const only = v.sections as string[] | undefined;
  if (only) parseSections(only); // refuse an unknown section before anything runs
  // every metric a section can report is a valid gate; one whose section --sections leaves out fails (exit 1)
  const gates = parseGates((v['fail-under'] as string[] | undefined) ?? [], gateMetrics());
  const failOver = (v['fail-over'] as string[] | undefined) ?? [];
  parseGates(failOver, gateMetrics(), 'fail-over');
  let sigma: number | undefined;
  if (typeof v.sigma === 'string') {
    sigma = parseDecimal(v.sigma);
    if (v.sigma.trim() === '' || !Number.isFinite(sigma) || sigma <= 0) throw new BulwarkError('BULWARK_E_SMOOTHING', `--sigma must be a finite noise level > 0, got ${JSON.stringify(v.sigma)}`, { hint: 'Pass the sigma the model was trained with (bulwark train --noise-sigma S), e.g. --sigma 0.25.' });
  }
  const shadows = v.shadows === undefined ? undefined : numberFlag(v, 'shadows', 16, 2, 1024, true);
  const trainData = typeof v['train-data'] === 'string' ? v['train-data'] : undefined;
  const holdoutData = typeof v['holdout-data'] === 'string' ? v['holdout-data'] : undefined;
  const budget = (typeof v.budget === 'string' ? v.budget : demo ? DEMO_DEFAULTS.budget : 'standard') as Budget;
  if (!BUDGETS.includes(budget)) throw new BulwarkError('BULWARK_E_ARG', `--budget must be one of ${BUDGETS.join(', ')}, got ${JSON.stringify(v.budget)}`);
  const norm = parseNorm(typeof v.norm === 'string' ? v.norm : 'inf');
  let eps: number | undefined;
  if (typeof v.eps === 'string') {
    eps = parseDecimal(v.eps);
    if (v.eps.trim() === '' || !Number.isFinite(eps) || eps <= 0) throw new BulwarkError('BULWARK_E_ARG', `--eps must be a finite radius > 0, got ${JSON.stringify(v.eps)}`, { hint: 'Give eps in input units, e.g. --eps 0.3 for MNIST L∞.' });
  }
  const seed = numberFlag(v, 'seed', 0, 0, 2 ** 31 - 1, true);
  const examples = v.examples === undefined ? undefined : numberFlag(v, 'examples', 1, 1, 1e9, true);
  // The model runs in worker lanes by default (executionFlags); --threads, when given, also sets the threads of the
  // report's other work (shadow models, smoothing), which otherwise keeps onnxruntime's default.
  const threads = threadsFlag(v);
  const exec = executionFlags(v);
  const workers = exec.workers;
  const laneThreads = threads === undefined ? exec.threads : undefined;
  const batchSize = v['batch-size'] === undefined ? undefined : numberFlag(v, 'batch-size', 256, 1, 1 << 20, true);
  const kind = typeof v['output-kind'] === 'string' ? v['output-kind'] : 'auto';
  if (kind !== 'auto' && kind !== 'logits' && kind !== 'probs') throw new BulwarkError('BULWARK_E_ARG', `--output-kind must be auto, logits or probs, got ${JSON.stringify(kind)}`);

  const log = (line: string) => {
    if (!json) process.stderr.write(line + '\n');
  };
  const out = typeof v.out === 'string' ? v.out : DEMO_DEFAULTS.out;
  // before the assessment (and before the demo trains a model): a report that cannot be written fails now
  checkWritableFolder(out, ['report.json', 'report.html', 'report.sarif'], '--out');
  const modelPath = demo ? (await demoModel(log)).path : (v.model as string);
  const data = typeof v.data === 'string' ? v.data : DEMO_DEFAULTS.data;
  // the three data flags are checked here so that a malformed spec names its flag
  for (const [flag, spec] of [['--data', data], ['--train-data', trainData], ['--holdout-data', holdoutData]] as const) {
    if (spec !== undefined) namingFlagSync(flag, () => parseDataSpec(spec));
  }
  if (demo) log(`demo: assessing ${path.relative(process.cwd(), modelPath) || modelPath} on ${data} (budget ${budget}) into ${out}/`);
  const bar = stageProgress(json ? false : undefined);
  let report: Report;
  try {
    report = await runAssessment({
      model: modelPath,
      data,
      budget,
      norm,
      seed,
      gates,
      failOver,
      ...(only ? { only } : {}),
      ...(sigma === undefined ? {} : { sigma }),
      ...(shadows === undefined ? {} : { shadows }),
      ...(trainData === undefined ? {} : { trainData }),
      ...(holdoutData === undefined ? {} : { holdoutData }),
      demo,
      outputKind: kind,
      ...(eps === undefined ? (demo ? { eps: DEMO_DEFAULTS.eps } : {}) : { eps }),
      ...(examples === undefined ? {} : { examples }),
      ...(threads === undefined ? {} : { threads }),
      workers,
      ...(laneThreads === undefined ? {} : { laneThreads }),
      ...(batchSize === undefined ? {} : { batchSize }),
      onProgress: (e) => bar.update(e),
    });
  } finally {
    bar.end();
  }
  const files = writeReport(report, out);
  const exitCode = report.summary.gatesPassed ? 0 : 1;
  if (json) printJson(scanSummary(report, files, exitCode));
  else process.stdout.write(renderScanText(report, files) + '\n');
  return exitCode;
}

/** The --json object of `bulwark scan`. */
export function scanSummary(r: Report, files: { html: string; json: string; sarif: string }, exitCode: number): Record<string, unknown> {
  const ev = r.sections.find((s) => s.id === 'evasion');
  const flags = r.findings.filter((f) => f.id.startsWith('evasion-masking-')).map((f) => f.id.replace('evasion-masking-', ''));
  return {
    files,
    model: r.subject.model,
    data: r.data.spec,
    n: r.data.n,
    budget: r.settings.budget,
    eps: r.settings.eps,
    norm: r.settings.norm,
    cleanAccuracy: ev?.metrics['clean-accuracy'] ?? null,
    robustAccuracy: ev?.metrics['robust-accuracy'] ?? null,
    reliable: r.summary.reliable,
    metrics: Object.fromEntries(r.sections.flatMap((s) => Object.entries(s.metrics))),
    flags,
    findings: r.summary.counts,
    maxSeverity: r.summary.maxSeverity,
    gates: r.gates.map((g) => ({ metric: g.metric, op: g.op, value: g.value, actual: g.actual, passed: g.passed })),
    passed: r.summary.gatesPassed,
    exitCode,
    seconds: r.timings.totalSeconds,
  };
}

/** Human summary of a scan. */
export function renderScanText(r: Report, files: { html: string; json: string; sarif: string }): string {
  const lines: string[] = [];
  for (const s of r.sections) {
    lines.push(`${s.status.toUpperCase().padEnd(5)} ${s.title}: ${s.summary}`);
  }
  const c = r.summary.counts;
  lines.push(`findings: ${c.critical} critical, ${c.high} high, ${c.medium} medium, ${c.low} low, ${c.info} info`);
  for (const f of r.findings) lines.push(`  ${f.severity.toUpperCase().padEnd(8)} ${f.id}: ${f.title} [${[...f.atlas, ...f.owasp].join(', ')}]`);
  for (const g of r.gates) lines.push(`gate ${g.passed ? 'passed' : 'FAILED'}: ${g.message}`);
  lines.push(`wrote ${files.html}, ${files.json}, ${files.sarif} (${formatValue(r.timings.totalSeconds, 'seconds')})`);
  return lines.join('\n');
}
