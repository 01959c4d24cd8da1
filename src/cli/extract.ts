import { BulwarkError } from '../core/errors.js';
import { refuseOutputOverInput, writeFileAtomic } from '../core/fsio.js';
import { dataSpecFiles } from '../data/spec.js';
import type { Model } from '../runtime/model.js';
import { numberFlag, parseFlags, printJson, required } from './args.js';
import { MODEL_FLAGS, REMOTE_FLAGS, REMOTE_HELP, loadDataFlag, modelFromFlags, refuseRemoteFlags, remoteOptions } from './common.js';

const HELP = `bulwark extract --model M.onnx|URL --budget Q --strategy random|adaptive|jacobian --out CLONE.onnx
                [--pool SPEC] [--seed-data SPEC] [--eval SPEC] [--checkpoints Q1,Q2,...] [--arch A] [--epochs E]
                [--lambda L] [--seed N] [--json]

Model extraction: clone a model through its prediction API and report how well the clone agrees with it.
  random, adaptive  Knockoff Nets (Orekondy et al. CVPR 2019): query images from --pool (default
                    fashion-mnist:train[0:10000], a surrogate pool for an MNIST victim), drawn at random or by a
                    gradient bandit over the pool's classes (adaptive)
  jacobian          Jacobian-based dataset augmentation (Papernot et al. AsiaCCS 2017) from --seed-data
                    (default mnist:test[0:150]), step --lambda (default 0.1)
--model takes an ONNX file or an Open Inference Protocol (KServe v2) URL http(s)://host/v2/models/<name>; for a URL
the budget is enforced by the client. --eval (default mnist:test[0:1000]) measures fidelity (agreement with the
victim) and accuracy; its queries are reported apart. The clone is written as ONNX to --out.

${REMOTE_HELP}`;

/** `bulwark extract`: Knockoff Nets or Jacobian augmentation against a local or remote model. */
export async function run(argv: string[]): Promise<number> {
  const p = parseFlags(argv, {
    ...MODEL_FLAGS, budget: { type: 'string' }, strategy: { type: 'string' }, out: { type: 'string' }, pool: { type: 'string' }, 'seed-data': { type: 'string' },
    eval: { type: 'string' }, checkpoints: { type: 'string' }, arch: { type: 'string' }, epochs: { type: 'string' }, lambda: { type: 'string' }, seed: { type: 'string' }, json: { type: 'boolean' },
    ...REMOTE_FLAGS,
  }, HELP);
  if (!p) return 0;
  const v = p.values;
  const budget = numberFlag(v, 'budget', NaN, 1, 1e9, true);
  if (Number.isNaN(budget)) throw new BulwarkError('BULWARK_E_USAGE', 'missing required flag --budget', { hint: `usage:\n${HELP}` });
  const strategy = required(v, 'strategy', HELP);
  if (!['random', 'adaptive', 'jacobian'].includes(strategy)) throw new BulwarkError('BULWARK_E_ARG', `--strategy must be random, adaptive or jacobian, got ${JSON.stringify(strategy)}`);
  const out = required(v, 'out', HELP);
  const target = required(v, 'model', HELP);
  refuseOutputOverInput([['--out', out]], [['--model', target], ...dataSpecFiles(v['eval']).map((f): [string, string] => ['--eval', f])]);
  const checkpoints = v['checkpoints'] === undefined ? undefined : String(v['checkpoints']).split(',').map((s) => {
    const n = /^\d+$/.test(s.trim()) ? Number(s) : NaN;
    if (!Number.isInteger(n) || n < 1) throw new BulwarkError('BULWARK_E_ARG', `--checkpoints must be comma-separated positive integers, got ${JSON.stringify(v['checkpoints'])}`);
    return n;
  });
  const { isRemoteModelUrl, connectRemoteModel } = await import('../runtime/remote.js');
  const { knockoffNets, jacobianAugmentation } = await import('../privacy/extraction/index.js');
  let victim: Model;
  let close: () => Promise<void>;
  const evalSpec = (v['eval'] as string | undefined) ?? 'mnist:test[0:1000]';
  const evalSet = await loadDataFlag(evalSpec, '--eval');
  if (isRemoteModelUrl(target)) {
    // The client's budget covers the attack and the evaluation queries.
    const remote = await connectRemoteModel(target, { maxQueries: budget + evalSet.x.shape[0]!, ...(await remoteOptions(v)) });
    victim = remote;
    close = async () => remote.close();
  } else {
    refuseRemoteFlags(v, target);
    const local = await modelFromFlags(v, target);
    victim = local;
    close = () => local.dispose();
  }
  try {
    const common = {
      evalSet,
      seed: numberFlag(v, 'seed', 0, 0, 2 ** 32 - 1, true),
      epochs: numberFlag(v, 'epochs', 10, 1, 10000, true),
      ...(v['arch'] ? { arch: v['arch'] as string } : {}),
    };
    const r = strategy === 'jacobian'
      ? await jacobianAugmentation(victim, await loadDataFlag((v['seed-data'] as string | undefined) ?? 'mnist:test[0:150]', '--seed-data'), { ...common, budget, lambda: numberFlag(v, 'lambda', 0.1, 0) })
      : await knockoffNets(victim, await loadDataFlag((v['pool'] as string | undefined) ?? 'fashion-mnist:train[0:10000]', '--pool'), { ...common, budget, strategy: strategy as 'random' | 'adaptive', ...(checkpoints ? { checkpoints } : {}) });
    writeFileAtomic(out, r.clone.toOnnx(), '--out');
    const last = r.curve.at(-1);
    const res = { out, strategy, queries: r.queries, evalQueries: r.evalQueries, eval: evalSpec, fidelity: last?.fidelity, accuracy: last?.accuracy, curve: r.curve, seconds: r.seconds };
    if (v['json']) printJson(res);
    else {
      for (const c of r.curve) process.stdout.write(`${String(c.queries).padStart(8)} queries  fidelity ${(100 * c.fidelity).toFixed(1)}%  accuracy ${(100 * c.accuracy).toFixed(1)}%\n`);
      process.stdout.write(`wrote ${out} (${r.queries} victim queries, ${r.evalQueries} more to evaluate)\n`);
    }
    return 0;
  } finally {
    await close();
  }
}
