import * as path from 'node:path';
import { BulwarkError } from '../core/errors.js';
import { writeFileAtomic } from '../core/fsio.js';
import { parseDigits } from '../core/numbers.js';
import { numberFlag, parseFlags, printJson, required } from './args.js';
import { MODEL_FLAGS, loadDataFlag, modelFromFlags } from './common.js';

const HELP = `bulwark invert --model M.onnx --class K|all --data SPEC --out DIR [--steps N] [--restarts R] [--lr LR]
               [--tv W] [--l2 W] [--objective 1-p|ce] [--seed N] [--json]

Model inversion (MI-Face, Fredrikson et al. CCS 2015): gradient descent on the input to minimize 1 - p_class(x)
plus total-variation and L2 priors, projected to the input bounds. Writes DIR/class-K.png per class and reports
the cosine similarity and SSIM of each reconstruction with the real mean image of its class in --data, and
which class mean it is nearest to.
  --steps N      gradient steps per run, default 300
  --restarts R   runs from noise averaged per class, default 6 (1 = a single run from zeros, as in the paper)
  --lr LR        step size, default 0.1      --tv W  default 0.01      --l2 W  default 0.001`;

/** `bulwark invert`: MI-Face class reconstructions as PNG plus similarity scores. */
export async function run(argv: string[]): Promise<number> {
  const p = parseFlags(argv, {
    ...MODEL_FLAGS, class: { type: 'string' }, data: { type: 'string' }, out: { type: 'string' }, steps: { type: 'string' }, restarts: { type: 'string' },
    lr: { type: 'string' }, tv: { type: 'string' }, l2: { type: 'string' }, objective: { type: 'string' }, seed: { type: 'string' }, json: { type: 'boolean' },
  }, HELP);
  if (!p) return 0;
  const v = p.values;
  const out = required(v, 'out', HELP);
  const spec = required(v, 'data', HELP);
  const clsFlag = required(v, 'class', HELP);
  const steps = numberFlag(v, 'steps', 300, 1, 1e6, true);
  const restarts = numberFlag(v, 'restarts', 6, 1, 1000, true);
  const objective = (v['objective'] as string | undefined) ?? '1-p';
  if (objective !== '1-p' && objective !== 'ce') throw new BulwarkError('BULWARK_E_ARG', `--objective must be 1-p or ce, got ${JSON.stringify(objective)}`);
  const model = await modelFromFlags(v, required(v, 'model', HELP));
  const { classMeans, imageToPng, invertClasses, scoreReconstructions } = await import('../privacy/inversion/index.js');
  try {
    const k = model.numClasses;
    let classes: number[];
    if (clsFlag === 'all') classes = Array.from({ length: k }, (_, i) => i);
    else {
      const c = parseDigits(clsFlag);
      if (!Number.isInteger(c) || c < 0 || c >= k) throw new BulwarkError('BULWARK_E_ARG', `--class must be all or an integer in [0, ${k}), got ${JSON.stringify(clsFlag)}`);
      classes = [c];
    }
    const data = await loadDataFlag(spec);
    const { means, counts } = classMeans(data, k);
    const r = await invertClasses(model, classes, {
      steps, restarts, objective, lr: numberFlag(v, 'lr', 0.1, 0), tvWeight: numberFlag(v, 'tv', 0.01, 0), l2Weight: numberFlag(v, 'l2', 0.001, 0),
      seed: numberFlag(v, 'seed', 0, 0, 2 ** 32 - 1, true), ...(restarts === 1 ? { init: 'zeros' as const } : {}),
    });
    const { scores, ownNearestRate } = scoreReconstructions(r, means, { range: model.bounds[1] - model.bounds[0] });
    const d = r.images.data.length / classes.length;
    const shape = r.images.shape.slice(1);
    const files = classes.map((c, i) => {
      const file = path.join(out, `class-${c}.png`);
      writeFileAtomic(file, imageToPng(r.images.data.subarray(i * d, (i + 1) * d), shape, model.bounds), '--out');
      return file;
    });
    const res = {
      out, steps, restarts, seconds: r.seconds, ownNearestRate,
      classes: scores.map((s, i) => ({ class: s.class, file: files[i], confidence: r.confidence[i], cosine: s.cosine, ssim: s.ssim, nearestMean: s.nearestMean, margin: s.margin, referenceExamples: counts[s.class] })),
    };
    if (v['json']) printJson(res);
    else {
      for (const c of res.classes) process.stdout.write(`class ${c.class}: p=${c.confidence!.toFixed(3)} cosine ${c.cosine.toFixed(3)} SSIM ${c.ssim.toFixed(3)} nearest mean ${c.nearestMean}${c.nearestMean === c.class ? '' : ' (other class)'}  ${c.file}\n`);
      process.stdout.write(`own class mean nearest for ${Math.round(ownNearestRate * classes.length)}/${classes.length} classes\n`);
    }
    return 0;
  } finally {
    await model.dispose();
  }
}
