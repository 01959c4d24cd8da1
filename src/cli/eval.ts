import { BulwarkError, namingFlagSync } from '../core/errors.js';
import { parseDataSpec } from '../data/index.js';
import { scoreLogits, type Score } from '../nn/train.js';
import type { OutputKind } from '../runtime/model.js';
import { numberFlag, parseFlags, printJson, required, threadsFlag } from './args.js';
import { loadDataFlag, loadModelFlag } from './common.js';

const HELP = `Usage: bulwark eval --model M.onnx --data SPEC [options]

Runs a model on a labelled dataset and prints its accuracy and mean cross-entropy loss.

Options:
  -m, --model M.onnx       the model
      --data SPEC          labelled data, e.g. mnist:test, mnist:test[0:1000], data.npz
      --output-kind K      auto | logits | probs: what the model outputs (default auto: a trailing Softmax means probs)
      --batch-size B       examples per onnxruntime run (default 256)
      --threads T          onnxruntime intra-op threads (default: onnxruntime's choice)
      --json               print one JSON object {accuracy, loss, n}
`;

const OPTIONS = {
  model: { type: 'string', short: 'm' },
  data: { type: 'string' },
  'output-kind': { type: 'string' },
  'batch-size': { type: 'string' },
  threads: { type: 'string' },
  json: { type: 'boolean' },
} as const;

/**
 * Accuracy and mean cross-entropy of class scores [N·K]: logits go through log-softmax, probabilities through log.
 * @param scores row-major model outputs
 * @param y labels
 * @param k classes
 * @param kind what the scores are
 */
export function scoreOutputs(scores: Float32Array, y: Int32Array, k: number, kind: OutputKind): Score {
  if (kind === 'logits') return scoreLogits(scores, y, k);
  const logs = new Float64Array(scores.length);
  for (let i = 0; i < scores.length; i++) logs[i] = Math.log(Math.max(scores[i]!, 1e-12));
  // log-probabilities of a normalized distribution are their own log-softmax.
  return scoreLogits(logs, y, k);
}

/** `bulwark eval`: see HELP. */
export async function run(argv: string[]): Promise<number> {
  const p = parseFlags(argv, OPTIONS, HELP);
  if (!p) return 0;
  const v = p.values;
  const modelPath = required(v, 'model', HELP);
  const spec = required(v, 'data', HELP);
  parseDataSpec(spec);
  const kind = typeof v['output-kind'] === 'string' ? v['output-kind'] : 'auto';
  if (kind !== 'auto' && kind !== 'logits' && kind !== 'probs') throw new BulwarkError('BULWARK_E_ARG', `--output-kind must be auto, logits or probs, got ${JSON.stringify(kind)}`);
  const batchSize = numberFlag(v, 'batch-size', 256, 1, Infinity, true);
  const threads = threadsFlag(v);
  const model = await loadModelFlag(modelPath, { outputKind: kind, batchSize, ...(threads === undefined ? {} : { threads }) });
  const data = await loadDataFlag(spec);
  if (!data.y) throw new BulwarkError('BULWARK_E_LABELS', `--data ${spec} has no labels; eval needs them`);
  const t0 = performance.now();
  try {
    // data that does not fit the model is the --data flag's fault: its message says so
    namingFlagSync('--data', () => model.checkInput(data.x));
    const out = await model.predict(data.x);
    const k = out.shape[1] ?? 0;
    const bad = data.y.findIndex((c) => c >= k);
    if (out.shape.length !== 2 || k < 1) throw new BulwarkError('BULWARK_E_MODEL', `the model output has shape [${out.shape.join(',')}]; eval needs [N,K] class scores`);
    if (bad >= 0) throw new BulwarkError('BULWARK_E_LABELS', `label ${bad} of ${spec} is ${data.y[bad]}, outside the model's ${k} classes`);
    const s = scoreOutputs(out.data, data.y, k, model.outputKind);
    if (v.json === true) printJson({ accuracy: s.accuracy, loss: s.loss, n: s.n });
    else {
      const correct = Math.round(s.accuracy * s.n);
      process.stdout.write(`accuracy ${(100 * s.accuracy).toFixed(2)}% (${correct}/${s.n})  mean cross-entropy ${s.loss.toFixed(4)}  (${model.outputKind}, ${((performance.now() - t0) / 1000).toFixed(1)} s)\n`);
    }
    return 0;
  } finally {
    await model.dispose();
  }
}
