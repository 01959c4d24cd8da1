import { BulwarkError } from '../core/errors.js';
import { gatherRows } from '../core/tensor.js';
import { parseDataSpec } from '../data/index.js';
import { BUDGETS, checkData, checkEps, evaluateRobustness, parseNorm, resolveSuite, sampleIndices, summarizeEvaluation, type Budget, type EvalProgress, type RobustnessEvaluation } from '../evasion/evaluate/index.js';
import { formatValue } from '../report/html.js';
import { stageProgress } from '../report/progress.js';
import { numberFlag, parseDecimal, parseFlags, printJson, required } from './args.js';
import { fitLayout } from '../data/layout.js';
import { MODEL_FLAGS, loadDataFlag, modelFromFlags } from './common.js';

const HELP = `Usage: bulwark evaluate --model M.onnx --data SPEC --eps E [--norm inf|2] [--suite quick|standard|thorough] [--json] [--seed S]

Evaluates adversarial robustness with an ensemble in the manner of AutoAttack (Croce & Hein 2020): APGD-CE, then
APGD-T (targeted DLR on the top 9 other classes), then FAB-T (minimum norm), then Square (black-box, 5000
queries), each on the examples still robust. An example counts as robust only if it survives every attack. Also
draws a robustness curve and runs gradient-masking checks that flag an unreliable result.

Options:
  -m, --model M.onnx      the model, a local ONNX file (remote KServe v2 endpoints: bulwark attack square|hsj|nes)
      --data SPEC         labelled data, e.g. mnist:test, mnist:test[0:500], data.npz
      --eps E             threat-model radius in input units (e.g. 0.3 for MNIST L∞)
      --norm N            inf (default) or 2
      --suite S           quick | standard (default) | thorough: examples, steps, restarts, targets, queries
      --examples N        evaluate N examples (default: the suite's; a seeded sample when the data has more)
      --seed S            seed of the sample and of every attack (default 0)
      --json              print one JSON object (clean and robust accuracy, per attack, curve, flags)
      --output-kind K     auto | logits | probs (default auto)
      --threads T         onnxruntime intra-op threads (per worker)
      --workers W         worker threads that share every batch (default, when --threads is not given
                          either: one per core, up to 4; --threads and --workers are each at most the
                          number of cores, their product at most twice that)
      --batch-size B      examples per onnxruntime run (default: 256 for predictions, a cache-sized run for gradients)

Suites: quick (100 examples, 25 steps, 3 targets, Square 1000 queries), standard (1000 examples, 100 steps,
9 targets, 5000 queries), thorough (10000 examples, APGD-CE 5 restarts, Square 10000 queries).
Exit codes: 0 evaluated (flags are reported, not failed: use \`bulwark scan --fail-under\` to gate), 2 bad input.
`;

const OPTIONS = {
  ...MODEL_FLAGS,
  model: { type: 'string', short: 'm' },
  data: { type: 'string' },
  eps: { type: 'string' },
  norm: { type: 'string' },
  suite: { type: 'string' },
  examples: { type: 'string' },
  seed: { type: 'string' },
  json: { type: 'boolean' },
} as const;

/** `bulwark evaluate`: see HELP. */
export async function run(argv: string[]): Promise<number> {
  const p = parseFlags(argv, OPTIONS, HELP);
  if (!p) return 0;
  const v = p.values;
  const modelPath = required(v, 'model', HELP);
  const spec = required(v, 'data', HELP);
  const epsText = required(v, 'eps', HELP);
  const eps = parseDecimal(epsText);
  const norm = parseNorm(typeof v.norm === 'string' ? v.norm : 'inf');
  // positive and finite now; the box diameter is checked once the model's bounds are known
  checkEps(eps, norm, [-Infinity, Infinity], 1);
  const suiteName = (typeof v.suite === 'string' ? v.suite : 'standard') as Budget;
  if (!BUDGETS.includes(suiteName)) throw new BulwarkError('BULWARK_E_ARG', `--suite must be one of ${BUDGETS.join(', ')}, got ${JSON.stringify(v.suite)}`);
  const seed = numberFlag(v, 'seed', 0, 0, 2 ** 31 - 1, true);
  const examples = v.examples === undefined ? undefined : numberFlag(v, 'examples', 1, 1, 1e9, true);
  const json = v.json === true;
  parseDataSpec(spec);
  const model = await modelFromFlags(v, modelPath);
  try {
    const loaded = await loadDataFlag(spec);
    const ds = { ...loaded, x: fitLayout(loaded.x, model.inputShape).x };
    checkData(model, ds.x, ds.y, `--data ${spec}`);
    const total = ds.x.shape[0]!;
    checkEps(eps, norm, model.bounds, ds.x.data.length / total, '--eps');
    const idx = sampleIndices(total, examples ?? resolveSuite(suiteName).examples, seed);
    const x = idx.length === total ? ds.x : gatherRows(ds.x, idx);
    const y = Int32Array.from(idx, (i) => ds.y![i]!);
    const bar = stageProgress(json ? false : undefined);
    const onProgress = (e: EvalProgress) => bar.update({ stage: e.stage, done: e.done, total: e.total, status: [e.member, e.eps === undefined ? undefined : `eps ${e.eps}`].filter(Boolean).join(' @ ') });
    let ev: RobustnessEvaluation;
    try {
      ev = await evaluateRobustness(model, x, y, { eps, norm, suite: suiteName, seed, indices: idx, onProgress });
    } finally {
      bar.end();
    }
    const summary = summarizeEvaluation(ev);
    if (json) printJson({ model: modelPath, data: spec, total, ...summary });
    else process.stdout.write(renderText(ev, modelPath, spec, total) + '\n');
    return 0;
  } finally {
    await model.dispose();
  }
}

/** Human-readable evaluation. */
export function renderText(ev: RobustnessEvaluation, modelPath: string, spec: string, total: number): string {
  const pct = (v: number) => formatValue(v, 'percent');
  const lines: string[] = [];
  const threat = `${ev.norm === 'inf' ? 'L∞' : 'L2'} eps ${ev.eps}`;
  lines.push(`${modelPath} on ${spec} (${ev.n} of ${total} examples), ${threat}, suite ${ev.budget}, seed ${ev.seed}`);
  lines.push(`clean accuracy   ${pct(ev.cleanAccuracy)}`);
  const flags = ev.checks.filter((c) => c.status === 'flag');
  lines.push(`robust accuracy  ${pct(ev.robustAccuracy)}${flags.length ? `  UNRELIABLE (${flags.map((c) => c.id).join(', ')})` : ''}`);
  lines.push('');
  lines.push(`${'attack'.padEnd(9)} ${'kind'.padEnd(10)} ${'status'.padEnd(10)} ${'attacked'.padStart(8)} ${'broken'.padStart(7)} ${'robust'.padStart(7)} ${'queries'.padStart(9)} ${'time'.padStart(8)}`);
  for (const m of ev.ensemble.members) {
    lines.push(`${m.name.padEnd(9)} ${m.kind.padEnd(10)} ${m.status.padEnd(10)} ${String(m.attacked).padStart(8)} ${String(m.broken).padStart(7)} ${pct(m.robustAccuracyAfter).padStart(7)} ${String(m.queries).padStart(9)} ${formatValue(m.seconds, 'seconds').padStart(8)}${m.reason && m.status === 'skipped' ? `  (${m.reason})` : ''}`);
  }
  if (ev.curve) {
    lines.push('');
    lines.push(`curve (${ev.curve.n} examples, ${ev.curve.members.join(' + ')}): ${ev.curve.points.map((p) => `${p.eps}: ${pct(p.worstCaseRobustAccuracy)}`).join('  ')}`);
  }
  lines.push('');
  for (const c of ev.checks) lines.push(`${c.status === 'flag' ? 'FLAG' : c.status === 'pass' ? 'ok  ' : 'skip'} ${c.id}: ${c.message}`);
  lines.push(`(${formatValue(ev.timings.totalSeconds, 'seconds')})`);
  return lines.join('\n');
}
