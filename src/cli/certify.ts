import { BulwarkError } from '../core/errors.js';
import { argmaxRows } from '../core/tensor.js';
import { parseDataSpec } from '../data/index.js';
import { certifiedAccuracy, samplingWarnings, smoothCertify, ABSTAIN } from '../evasion/defense/smoothing.js';
import { ibpVerify } from '../evasion/defense/ibp.js';
import { checkEps } from '../evasion/evaluate/validate.js';
import type { OnnxModel } from '../runtime/model.js';
import type { Dataset } from '../data/index.js';
import { numberFlag, parseDecimal, parseFlags, printJson, required, threadsFlag } from './args.js';
import { loadDataFlag, loadModelFlag } from './common.js';

const HELP = `Usage: bulwark certify --model M.onnx --data SPEC --sigma S [options]
       bulwark certify --method ibp --model M.onnx --data SPEC --eps E [--json]

Certifies L2 robustness by randomized smoothing (Cohen et al. 2019, CERTIFY): per example, the top class of n0
noisy samples, a one-sided Clopper-Pearson lower bound pA on its probability from n fresh samples, and the
certified radius sigma * PhiInv(pA), or an abstention when pA <= 1/2. Prints certified accuracy against radius.
Train the base model with Gaussian noise of the same sigma (bulwark train --noise-sigma S).

With --method ibp: sound L-inf verification by interval bound propagation (Gowal et al. 2019): an example is
verified when no input within eps (clipped to the input bounds [0, 1]) can change its class. Prints the verified
fraction and the clean accuracy; --json prints {method, model, data, eps, n, cleanAccuracy, verifiedAccuracy,
elided, verified: [indices], seconds}.
ReLU networks of Gemm/MatMul, Conv, pooling, Flatten/Reshape, BatchNormalization and constant Add/Sub/Mul only;
another op fails with BULWARK_E_UNSUPPORTED_OP naming it. Train for it with bulwark train --adv ibp.

Options:
      --method M         smoothing (default) | ibp
      --eps E            ibp: L-inf radius (>= 0)
  -m, --model M.onnx     the base classifier
      --data SPEC        labelled data, e.g. mnist:test[0:100]
      --sigma S          noise std in input units (> 0)
      --n N              samples for the bound (default 100000)
      --n0 N0            selection samples (default 100)
      --alpha A          failure probability per example (default 0.001)
      --radii R,R,...    radii of the certified-accuracy table (default 0,0.25,0.5,0.75,1,1.5,2)
      --batch-size B     noisy copies per model run (default 1000)
      --seed S           noise seed (default 0)
      --threads T        onnxruntime intra-op threads
      --json             print one JSON object
`;

const OPTIONS = {
  model: { type: 'string', short: 'm' },
  data: { type: 'string' },
  sigma: { type: 'string' },
  n: { type: 'string' },
  n0: { type: 'string' },
  alpha: { type: 'string' },
  radii: { type: 'string' },
  'batch-size': { type: 'string' },
  seed: { type: 'string' },
  threads: { type: 'string' },
  json: { type: 'boolean' },
  method: { type: 'string' },
  eps: { type: 'string' },
} as const;

/** `bulwark certify`: see HELP. */
export async function run(argv: string[]): Promise<number> {
  const p = parseFlags(argv, OPTIONS, HELP);
  if (!p) return 0;
  const v = p.values;
  const method = typeof v.method === 'string' ? v.method : 'smoothing';
  if (method !== 'smoothing' && method !== 'ibp') throw new BulwarkError('BULWARK_E_USAGE', `--method must be smoothing or ibp, got ${JSON.stringify(method)}`, { hint: `usage:\n${HELP}` });
  if (method === 'ibp') return runIbp(v);
  if (v.eps !== undefined) throw new BulwarkError('BULWARK_E_USAGE', '--eps applies to --method ibp; randomized smoothing takes --sigma');
  const modelPath = required(v, 'model', HELP);
  const spec = required(v, 'data', HELP);
  const sigmaText = required(v, 'sigma', HELP);
  const sigma = parseDecimal(sigmaText);
  if (!(sigma > 0 && Number.isFinite(sigma))) throw new BulwarkError('BULWARK_E_SMOOTHING', `--sigma must be a positive number, got ${JSON.stringify(sigmaText)}`);
  const n = numberFlag(v, 'n', 100000, 1, 1e9, true);
  const n0 = numberFlag(v, 'n0', 100, 1, 1e9, true);
  const alpha = numberFlag(v, 'alpha', 0.001, 0, 1);
  if (!(alpha > 0 && alpha < 1)) throw new BulwarkError('BULWARK_E_SMOOTHING', `--alpha must be in (0, 1), got ${alpha}`);
  const batchSize = numberFlag(v, 'batch-size', 1000, 1, 1e6, true);
  const seed = numberFlag(v, 'seed', 0, 0, 2 ** 32 - 1, true);
  const threads = threadsFlag(v);
  const radii = (typeof v.radii === 'string' ? v.radii : '0,0.25,0.5,0.75,1,1.5,2').split(',').map((t) => {
    const r = parseDecimal(t);
    if (t.trim() === '' || !(r >= 0 && Number.isFinite(r))) throw new BulwarkError('BULWARK_E_ARG', `--radii must be comma-separated numbers >= 0, got ${JSON.stringify(v.radii)}`);
    return r;
  });
  parseDataSpec(spec);
  const json = v.json === true;
  const warn = samplingWarnings(n, alpha).warnings.filter((w) => !w.startsWith('PREDICT'));
  if (!json) for (const w of warn) process.stderr.write(`warning: ${w}\n`);
  const model = await loadModelFlag(modelPath, { batchSize, ...(threads === undefined ? {} : { threads }) });
  const data = await loadDataFlag(spec);
  if (!data.y) throw new BulwarkError('BULWARK_E_LABELS', `--data ${spec} has no labels; certify needs them`);
  try {
    const res = await smoothCertify(model, data.x, { sigma, n, n0, alpha, batchSize, seed });
    const curve = certifiedAccuracy(res, data.y, radii);
    let correct = 0;
    for (let i = 0; i < data.y.length; i++) if (res.prediction[i] === data.y[i]) correct++;
    const out = {
      model: modelPath,
      data: spec,
      ...res.settings,
      examples: data.y.length,
      abstentions: res.abstentions,
      certifiedCorrect: correct,
      certifiedAccuracy: curve,
      warnings: res.warnings,
      perExample: Array.from(res.prediction, (c, i) => ({ label: data.y![i], prediction: c === ABSTAIN ? null : c, radius: res.radius[i], pALower: res.pALower[i], countA: res.countA[i] })),
      seconds: res.seconds,
    };
    if (json) printJson(out);
    else {
      process.stdout.write(`randomized smoothing, sigma ${sigma}, n ${n}, n0 ${n0}, alpha ${alpha}: ${data.y.length} examples, ${res.abstentions} abstentions, ${res.seconds.toFixed(1)} s\n`);
      process.stdout.write('radius  certified accuracy\n');
      for (const c of curve) process.stdout.write(`${c.radius.toFixed(2).padStart(6)}  ${(100 * c.accuracy).toFixed(1)}%\n`);
    }
  } finally {
    await model.dispose();
  }
  return 0;
}

/** `bulwark certify --method ibp`: interval bound propagation on the model's logits (see HELP). */
async function runIbp(v: Record<string, unknown>): Promise<number> {
  for (const f of ['sigma', 'n', 'n0', 'alpha', 'radii', 'batch-size', 'seed']) {
    if (v[f] !== undefined) throw new BulwarkError('BULWARK_E_USAGE', `--${f} applies to --method smoothing, not ibp`);
  }
  const modelPath = required(v, 'model', HELP);
  const spec = required(v, 'data', HELP);
  required(v, 'eps', HELP);
  const eps = numberFlag(v, 'eps', 0, 0, Infinity);
  const threads = threadsFlag(v);
  parseDataSpec(spec);
  const json = v.json === true;
  const model: OnnxModel = await loadModelFlag(modelPath, threads === undefined ? {} : { threads });
  try {
    // an L∞ radius wider than the input range makes every input reachable (e.g. --eps 1e308)
    if (eps > 0) checkEps(eps, 'inf', model.bounds, 1, '--eps');
    const data: Dataset = await loadDataFlag(spec);
    if (!data.y) throw new BulwarkError('BULWARK_E_LABELS', `--data ${spec} has no labels; certify needs them`);
    const t0 = performance.now();
    // Bound the logits: a trailing Softmax (monotone per class ranking) is left out of the propagation.
    const graph = model.logitsName === model.outputName ? model.graph : { ...model.graph, outputs: [{ ...model.graph.outputs[0]!, name: model.logitsName }] };
    const res = ibpVerify(graph, data.x, data.y, eps, model.bounds);
    const pred = argmaxRows(await model.predict(data.x));
    const n = data.y.length;
    let correct = 0;
    for (let i = 0; i < n; i++) if (pred[i] === data.y[i]) correct++;
    const verified: number[] = [];
    res.verified.forEach((f, i) => f && verified.push(i));
    const out = { method: 'ibp', model: modelPath, data: spec, eps, n, cleanAccuracy: n ? correct / n : 0, verifiedAccuracy: res.verifiedAccuracy, elided: res.elided, verified, seconds: (performance.now() - t0) / 1000 };
    if (json) printJson(out);
    else {
      process.stdout.write(`interval bound propagation (${res.paper}), eps ${eps}: ${n} examples, ${out.seconds.toFixed(1)} s\n`);
      process.stdout.write(`verified ${verified.length}/${n} (${(100 * res.verifiedAccuracy).toFixed(1)}%), clean accuracy ${correct}/${n} (${(100 * out.cleanAccuracy).toFixed(1)}%)\n`);
    }
  } finally {
    await model.dispose();
  }
  return 0;
}
