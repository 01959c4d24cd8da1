import { BulwarkError } from '../core/errors.js';
import { checkWritable, refuseOutputOverInput } from '../core/fsio.js';
import { writeNpy } from '../data/npy.js';
import { dataSpecFiles } from '../data/spec.js';
import type { LossKind } from '../autodiff/heads.js';
import { numberFlag, parseFlags, printJson, required } from './args.js';
import { MODEL_FLAGS, checkInputFlags, inputsFromFlags, modelFromFlags } from './common.js';

const HELP = `bulwark grad --model M.onnx (--input X.npy --labels Y.npy | --data SPEC) --out G.npy [--loss ce|margin|dlr] [--kappa K] [--targeted]
              [--output-kind auto|logits|probs] [--threads T] [--workers W] [--batch-size B] [--json]

Writes the gradient (float32, shaped like X) of the sum over the batch of per-example losses with respect to the
input, so each row is that example's own gradient. Untargeted losses are the ones an attack increases; with
--targeted, labels are target classes and the loss is the one an attack decreases.
  ce      cross-entropy of the logits (a trailing Softmax is looked through)
  margin  max_{j!=y} z_j - z_y, clipped at --kappa (Carlini & Wagner 2017)
  dlr     difference of logits ratio (Croce & Hein 2020)`;

export async function run(argv: string[]): Promise<number> {
  const p = parseFlags(argv, {
    ...MODEL_FLAGS, input: { type: 'string' }, labels: { type: 'string' }, data: { type: 'string' }, out: { type: 'string' },
    loss: { type: 'string' }, kappa: { type: 'string' }, targeted: { type: 'boolean' }, json: { type: 'boolean' },
  }, HELP);
  if (!p) return 0;
  const v = p.values;
  const loss = ((v['loss'] as string | undefined) ?? 'ce') as LossKind;
  if (!['ce', 'margin', 'dlr'].includes(loss)) throw new BulwarkError('BULWARK_E_ARG', `--loss must be ce, margin or dlr, got ${JSON.stringify(loss)}`);
  const kappa = numberFlag(v, 'kappa', Infinity, 0);
  const out = required(v, 'out', HELP);
  checkInputFlags(v);
  if (v['kappa'] !== undefined && loss !== 'margin') throw new BulwarkError('BULWARK_E_USAGE', `--kappa applies to --loss margin, not ${loss}`);
  if (loss === 'dlr' && v['targeted']) throw new BulwarkError('BULWARK_E_ARG', 'targeted DLR needs true labels and targets; use it through the attack API');
  const modelPath = required(v, 'model', HELP);
  checkWritable(out, '--out');
  refuseOutputOverInput([['--out', out]], [
    ['--model', modelPath], ['--input', v['input'] as string | undefined], ['--labels', v['labels'] as string | undefined],
    ...dataSpecFiles(v['data']).map((f): [string, string] => ['--data', f]),
  ]);
  const model = await modelFromFlags(v, modelPath);
  const { x, y } = await inputsFromFlags(v, { labels: 'required', model });
  const res = await model.lossAndGradient(x, y!, { kind: loss, targeted: !!v['targeted'], kappa });
  writeNpy(out, res.grad, '--out');
  await model.dispose();
  const meanLoss = res.loss.reduce((a, b) => a + b, 0) / res.loss.length;
  if (v['json']) printJson({ out, shape: res.grad.shape, loss, meanLoss, outputKind: model.outputKind });
  else process.stdout.write(`wrote ${out} [${res.grad.shape.join(',')}]  mean ${loss} loss ${meanLoss.toFixed(6)}\n`);
  return 0;
}
