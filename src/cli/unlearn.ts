import { BulwarkError } from '../core/errors.js';
import { readFileChecked } from '../core/fsio.js';
import { numberFlag, parseFlags, printJson, required, threadsFlag } from './args.js';

const HELP = `bulwark unlearn --sisa DIR --forget IDS.json [--data SPEC] [--json]
bulwark unlearn --train --data SPEC --out DIR [--shards S] [--slices R] [--arch A] [--epochs E] [--lr LR]
                [--batch-size B] [--seed N] [--threads T] [--json]

SISA machine unlearning (Bourtoule et al., IEEE S&P 2021). --train splits the data into S shards of R slices,
trains one model per shard with a checkpoint after each slice, and writes DIR (manifest.json + checkpoints).
--forget reads a JSON array of example ids (row numbers of the training data) and retrains only the shards that
held them, from the checkpoint before the earliest affected slice. The data is reloaded from the spec recorded at
training time unless --data is given.
  --shards S   default 4      --slices R   default 4      --arch A   default mlp (any bulwark train --arch)
  --epochs E   epochs after each slice, default 3`;

/** `bulwark unlearn`: train a SISA ensemble, or forget examples from one. */
export async function run(argv: string[]): Promise<number> {
  const p = parseFlags(argv, {
    sisa: { type: 'string' }, forget: { type: 'string' }, train: { type: 'boolean' }, data: { type: 'string' }, out: { type: 'string' },
    shards: { type: 'string' }, slices: { type: 'string' }, arch: { type: 'string' }, epochs: { type: 'string' }, lr: { type: 'string' },
    'batch-size': { type: 'string' }, seed: { type: 'string' }, threads: { type: 'string' }, json: { type: 'boolean' },
  }, HELP);
  if (!p) return 0;
  const v = p.values;
  const { loadDataFlag } = await import('./common.js');
  const { SisaEnsemble } = await import('../privacy/unlearning/index.js');
  if (v['train']) {
    if (v['sisa'] || v['forget']) throw new BulwarkError('BULWARK_E_USAGE', '--train makes a new ensemble; it does not take --sisa or --forget', { hint: `usage:\n${HELP}` });
    const spec = required(v, 'data', HELP);
    const out = required(v, 'out', HELP);
    const threads = threadsFlag(v);
    const opts = {
      shards: numberFlag(v, 'shards', 4, 1, 1024, true),
      slices: numberFlag(v, 'slices', 4, 1, 1024, true),
      epochsPerSlice: numberFlag(v, 'epochs', 3, 1, 10000, true),
      lr: numberFlag(v, 'lr', 3e-3, 0),
      batchSize: numberFlag(v, 'batch-size', 64, 1, 1 << 20, true),
      seed: numberFlag(v, 'seed', 0, 0, 2 ** 32 - 1, true),
      arch: (v['arch'] as string | undefined) ?? 'mlp',
      dataSpec: spec,
      ...(threads === undefined ? {} : { threads }),
    };
    const data = await loadDataFlag(spec);
    const ens = await SisaEnsemble.train(data, out, opts);
    const m = ens.manifest;
    const summary = { out, shards: m.options.shards, slices: m.options.slices, examples: m.data.n, arch: m.arch, trainSeconds: m.trainSeconds };
    if (v['json']) printJson(summary);
    else process.stdout.write(`trained SISA ensemble in ${out}: ${m.options.shards} shards x ${m.options.slices} slices on ${m.data.n} examples (${m.arch}) in ${m.trainSeconds.toFixed(1)} s\n`);
    return 0;
  }
  const dir = required(v, 'sisa', HELP);
  const idsFile = required(v, 'forget', HELP);
  let ids: unknown;
  try {
    ids = JSON.parse(readFileChecked(idsFile, '--forget').toString('utf8'));
  } catch (e) {
    if (e instanceof BulwarkError) throw e;
    throw new BulwarkError('BULWARK_E_ARG', `--forget ${idsFile} is not JSON (${(e as Error).message})`, { hint: 'Write the ids as a JSON array of integers, e.g. [12, 345].' });
  }
  if (!Array.isArray(ids) || !ids.every((i) => Number.isSafeInteger(i) && i >= 0)) throw new BulwarkError('BULWARK_E_ARG', `--forget ${idsFile} must hold a JSON array of non-negative integer ids`);
  const ens = SisaEnsemble.open(dir);
  const spec = (v['data'] as string | undefined) ?? ens.manifest.data.spec;
  if (!spec) throw new BulwarkError('BULWARK_E_USAGE', `the SISA folder ${dir} records no data spec; pass the training data with --data SPEC`);
  const data = await loadDataFlag(spec);
  const rec = await ens.forget(ids as number[], data);
  const full = ens.manifest.trainSeconds;
  const res = { sisa: dir, forgotten: rec.ids.length, ignored: rec.ignored, retrained: rec.retrained, seconds: rec.seconds, fullTrainSeconds: full, fractionOfFullTraining: full > 0 ? rec.seconds / full : null };
  if (v['json']) printJson(res);
  else {
    process.stdout.write(`forgot ${rec.ids.length} examples; retrained ${rec.retrained.map((r) => `shard ${r.shard} from slice ${r.fromSlice}`).join(', ') || 'nothing'} in ${rec.seconds.toFixed(2)} s (${full > 0 ? ((100 * rec.seconds) / full).toFixed(0) : '?'}% of the full training time)\n`);
    if (rec.ignored.length) process.stdout.write(`ignored ids not in any shard: ${rec.ignored.join(', ')}\n`);
  }
  return 0;
}
