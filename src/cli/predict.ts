import { checkWritable, refuseOutputOverInput } from '../core/fsio.js';
import { writeNpy } from '../data/npy.js';
import { dataSpecFiles } from '../data/spec.js';
import { parseFlags, printJson, required } from './args.js';
import { MODEL_FLAGS, checkInputFlags, inputsFromFlags, modelFromFlags } from './common.js';

const HELP = `bulwark predict --model M.onnx (--input X.npy | --data SPEC) --out P.npy [--output-kind auto|logits|probs] [--threads T] [--workers W] [--batch-size B] [--json]

Runs the model and writes its raw output (float32) to --out.`;

export async function run(argv: string[]): Promise<number> {
  const p = parseFlags(argv, { ...MODEL_FLAGS, input: { type: 'string' }, data: { type: 'string' }, out: { type: 'string' }, json: { type: 'boolean' } }, HELP);
  if (!p) return 0;
  const v = p.values;
  const modelPath = required(v, 'model', HELP);
  const out = required(v, 'out', HELP);
  checkInputFlags(v);
  checkWritable(out, '--out');
  refuseOutputOverInput([['--out', out]], [['--model', modelPath], ['--input', v['input'] as string | undefined], ...dataSpecFiles(v['data']).map((f): [string, string] => ['--data', f])]);
  const model = await modelFromFlags(v, modelPath);
  const { x } = await inputsFromFlags(v, { labels: 'optional', model });
  const y = await model.predict(x);
  writeNpy(out, y, '--out');
  await model.dispose();
  if (v['json']) printJson({ out, shape: y.shape, n: x.shape[0] });
  else process.stdout.write(`wrote ${out} [${y.shape.join(',')}]\n`);
  return 0;
}
