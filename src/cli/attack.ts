/**
 * `bulwark attack <name>`: runs one evasion attack through the shared runner (which verifies every result on the
 * model) and prints the summary. The attacks are rows of {@link ATTACKS}; a row says which flags it takes and how
 * they become the attack's options, so adding an attack is adding a row (and, for new flags, a line in
 * {@link ATTACK_OPTIONS}).
 */
import { urlScheme } from '../core/urls.js';
import { BulwarkError } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import type { Float32Tensor } from '../core/tensor.js';
import { checkWritable, refuseOutputOverInput } from '../core/fsio.js';
import { writeNpy } from '../data/npy.js';
import { dataSpecFiles } from '../data/spec.js';
import type { AttackDefinition, AttackResult, Criterion, Model, Norm } from '../evasion/types.js';
import { numberFlag, parseFlags, printJson, required, type OptionSpec } from './args.js';
import { MODEL_FLAGS, REMOTE_FLAGS, REMOTE_HELP, checkInputFlags, inputsFromFlags, modelFromFlags, readLabels, refuseRemoteFlags, remoteOptions } from './common.js';

/** Parsed flag values with typed accessors (shared by every row of the table). */
export class AttackFlags {
  constructor(readonly values: Record<string, unknown>) {}
  /** A flag was given. */
  has(name: string): boolean {
    return this.values[name] !== undefined;
  }
  /** A numeric flag, or undefined when absent. */
  num(name: string, min = -Infinity, max = Infinity, integer = false): number | undefined {
    return this.has(name) ? numberFlag(this.values, name, 0, min, max, integer) : undefined;
  }
  /** A number > 0 (and <= max), or undefined when absent; the same range the attack's option schema holds. */
  pos(name: string, max = Infinity): number | undefined {
    const n = this.num(name);
    if (n !== undefined && !(n > 0 && n <= max)) throw new BulwarkError('BULWARK_E_ARG', `--${name} must be > 0${max === Infinity ? '' : ` and <= ${max}`}, got ${this.values[name]}`);
    return n;
  }
  /** A string flag, or undefined. */
  str(name: string): string | undefined {
    const v = this.values[name];
    return typeof v === 'string' ? v : undefined;
  }
  /** A string flag restricted to choices, or undefined. */
  choice<T extends string>(name: string, choices: readonly T[]): T | undefined {
    const v = this.str(name);
    if (v === undefined) return undefined;
    if (!choices.includes(v as T)) throw new BulwarkError('BULWARK_E_ARG', `--${name} must be one of ${choices.join(', ')}, got ${JSON.stringify(v)}`);
    return v as T;
  }
  /** --random-start / --no-random-start (undefined when neither). */
  randomStart(): boolean | undefined {
    if (this.values['random-start'] && this.values['no-random-start']) throw new BulwarkError('BULWARK_E_USAGE', 'give --random-start or --no-random-start, not both');
    if (this.values['random-start']) return true;
    if (this.values['no-random-start']) return false;
    return undefined;
  }
}

/** One attack of the CLI. */
export interface CliAttack {
  summary: string;
  /** Loads the attack's definition (lazy import). */
  load(): Promise<AttackDefinition<never>>;
  /** --eps is required (bounded attacks); minimum-norm attacks default to unbounded. */
  needsEps: boolean;
  /** Attack-specific flags this row reads (others given on the command line are refused). */
  flags: readonly string[];
  /** Attack-specific options from the flags (undefined values are dropped; common options are added by the command). */
  options(f: AttackFlags): Record<string, unknown>;
  /** How --targeted is read: per-example targets (default) or APGD-T's top-k target classes. */
  targeted?: 'targets' | 'topk' | 'none';
  /** Options taken from the data itself (targeted HopSkipJump starts from the data's images of the target class). */
  dataOptions?(x: Float32Tensor, y: Int32Array, criterion: Criterion): Record<string, unknown>;
}

/** Every flag an attack row may read, with its help line. Black-box rows add theirs here (e.g. --queries). */
export const ATTACK_OPTIONS: Record<string, { spec: { type: 'string' | 'boolean' }; help: string }> = {
  steps: { spec: { type: 'string' }, help: 'iterations (pgd, apgd, fab, deepfool, cw per search step, patch; uap: passes)' },
  'step-size': { spec: { type: 'string' }, help: 'step size (pgd, uap with --inner pgd); learning rate (cw, patch)' },
  'random-start': { spec: { type: 'boolean' }, help: 'start from a random point of the eps-ball (pgd, apgd; default on)' },
  'no-random-start': { spec: { type: 'boolean' }, help: 'start at x (pgd: the textbook update)' },
  restarts: { spec: { type: 'string' }, help: 'random restarts (pgd, apgd, fab)' },
  loss: { spec: { type: 'string' }, help: 'ce | margin | dlr (fgsm, pgd); margin | ce (square, nes)' },
  schedule: { spec: { type: 'string' }, help: 'constant | cosine | linear step sizes (pgd)' },
  kappa: { spec: { type: 'string' }, help: 'confidence (cw, default 0)' },
  c: { spec: { type: 'string' }, help: 'initial trade-off constant (cw, default 1e-3)' },
  'binary-search-steps': { spec: { type: 'string' }, help: 'binary-search steps over c (cw, default 9; 1 = fixed c)' },
  overshoot: { spec: { type: 'string' }, help: 'overshoot (deepfool, default 0.02)' },
  'n-targets': { spec: { type: 'string' }, help: 'target classes of APGD-T with --targeted (apgd, default 9)' },
  inner: { spec: { type: 'string' }, help: 'deepfool | pgd inner update (uap, default pgd)' },
  'batch': { spec: { type: 'string' }, help: 'examples per update (uap, patch)' },
  queries: { spec: { type: 'string' }, help: 'query budget per example (square, hsj, nes; default 10000, 25000, 10000)' },
  'p-init': { spec: { type: 'string' }, help: 'initial window fraction of the pixels (square, default 0.8)' },
  samples: { spec: { type: 'string' }, help: 'queries per gradient estimate, even (nes, default 50)' },
  sigma: { spec: { type: 'string' }, help: 'NES sigma / SPSA delta (nes, default 0.001)' },
  estimator: { spec: { type: 'string' }, help: 'nes | spsa gradient estimator (nes, default nes)' },
};

const defOf = <T>(p: Promise<T>) => p as unknown as Promise<AttackDefinition<never>>;
const drop = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));

/** The attack table. */
export const ATTACKS: Record<string, CliAttack> = {
  fgsm: {
    summary: 'Fast gradient sign method, one step of eps (Goodfellow et al. 2015)',
    load: () => defOf(import('../evasion/whitebox/fgsm.js').then((m) => m.fgsmDefinition)),
    needsEps: true,
    flags: ['loss'],
    options: (f) => ({ loss: f.choice('loss', ['ce', 'margin', 'dlr'] as const) }),
  },
  pgd: {
    summary: 'Projected gradient descent, L∞/L2/L1 (Madry et al. 2018; L1 steps: Tramèr & Boneh 2019)',
    load: () => defOf(import('../evasion/whitebox/pgd.js').then((m) => m.pgdDefinition)),
    needsEps: true,
    flags: ['steps', 'step-size', 'random-start', 'no-random-start', 'restarts', 'loss', 'schedule'],
    options: (f) => ({
      steps: f.num('steps', 1, 1e6, true),
      stepSize: f.pos('step-size'),
      randomStart: f.randomStart(),
      restarts: f.num('restarts', 1, 1e4, true),
      loss: f.choice('loss', ['ce', 'margin', 'dlr'] as const),
      schedule: f.choice('schedule', ['constant', 'cosine', 'linear'] as const),
    }),
  },
  cw: {
    summary: 'Carlini & Wagner L2, minimum-norm (Carlini & Wagner 2017)',
    load: () => defOf(import('../evasion/whitebox/cw.js').then((m) => m.cwDefinition)),
    needsEps: false,
    flags: ['steps', 'step-size', 'kappa', 'c', 'binary-search-steps'],
    options: (f) => ({
      steps: f.num('steps', 1, 1e6, true),
      lr: f.pos('step-size'),
      kappa: f.num('kappa', 0),
      initialConst: f.pos('c'),
      binarySearchSteps: f.num('binary-search-steps', 1, 100, true),
    }),
  },
  deepfool: {
    summary: 'DeepFool, minimum-norm L2/L∞ (Moosavi-Dezfooli et al. 2016)',
    load: () => defOf(import('../evasion/whitebox/deepfool.js').then((m) => m.deepfoolDefinition)),
    needsEps: false,
    flags: ['steps', 'overshoot'],
    targeted: 'none',
    options: (f) => ({ steps: f.num('steps', 1, 1e4, true), overshoot: f.num('overshoot', 0) }),
  },
  'apgd-ce': {
    summary: 'Auto-PGD with cross-entropy (Croce & Hein 2020); --targeted runs APGD-T over the top classes',
    load: () => defOf(import('../evasion/whitebox/apgd.js').then((m) => m.apgdCeDefinition)),
    needsEps: true,
    flags: ['steps', 'restarts', 'random-start', 'no-random-start', 'n-targets'],
    targeted: 'topk',
    options: (f) => ({ steps: f.num('steps', 1, 1e6, true), restarts: f.num('restarts', 1, 1000, true), randomStart: f.randomStart() }),
  },
  'apgd-dlr': {
    summary: 'Auto-PGD with the DLR loss (Croce & Hein 2020); --targeted is APGD-T (targeted DLR, top-9 classes)',
    load: () => defOf(import('../evasion/whitebox/apgd.js').then((m) => m.apgdDlrDefinition)),
    needsEps: true,
    flags: ['steps', 'restarts', 'random-start', 'no-random-start', 'n-targets'],
    targeted: 'topk',
    options: (f) => ({ steps: f.num('steps', 1, 1e6, true), restarts: f.num('restarts', 1, 1000, true), randomStart: f.randomStart() }),
  },
  fab: {
    summary: 'Fast adaptive boundary attack, minimum-norm L∞/L2/L1 (Croce & Hein 2020)',
    load: () => defOf(import('../evasion/whitebox/fab.js').then((m) => m.fabDefinition)),
    needsEps: false,
    flags: ['steps', 'restarts'],
    options: (f) => ({ steps: f.num('steps', 1, 1e6, true), restarts: f.num('restarts', 1, 1000, true) }),
  },
  uap: {
    summary: 'Universal adversarial perturbation, one v for all inputs (Moosavi-Dezfooli et al. 2017)',
    load: () => defOf(import('../evasion/whitebox/uap.js').then((m) => m.uapDefinition)),
    needsEps: true,
    flags: ['steps', 'step-size', 'inner', 'batch'],
    targeted: 'none',
    options: (f) => ({ maxPasses: f.num('steps', 1, 1000, true), stepSize: f.pos('step-size'), inner: f.choice('inner', ['deepfool', 'pgd'] as const), batchSize: f.num('batch', 1, 1e5, true) }),
  },
  patch: {
    summary: 'Adversarial patch at random positions; --eps is the patch area fraction (Brown et al. 2017)',
    load: () => defOf(import('../evasion/whitebox/patch.js').then((m) => m.patchDefinition)),
    needsEps: false,
    flags: ['steps', 'step-size', 'batch'],
    options: (f) => ({ steps: f.num('steps', 1, 1e6, true), lr: f.pos('step-size'), batchSize: f.num('batch', 1, 1e5, true) }),
  },
  square: {
    summary: 'Square Attack, score-based black-box L∞/L2 (Andriushchenko et al. 2020)',
    load: () => defOf(import('../evasion/blackbox/square.js').then((m) => m.squareDefinition)),
    needsEps: true,
    flags: ['queries', 'p-init', 'loss'],
    options: (f) => ({ maxQueries: f.num('queries', 1, 1e9, true), pInit: f.pos('p-init', 1), loss: f.choice('loss', ['margin', 'ce'] as const) }),
  },
  hsj: {
    summary: 'HopSkipJump, decision-based black-box minimum-norm L2/L∞, untargeted or targeted (Chen et al. 2020)',
    load: () => defOf(import('../evasion/blackbox/hsj.js').then((m) => m.hsjDefinition)),
    needsEps: false,
    flags: ['queries', 'steps'],
    options: (f) => ({ maxQueries: f.num('queries', 1, 1e9, true), steps: f.num('steps', 0, 1e5, true) }),
    // targeted runs start from the data's own images of each target class (nearest first)
    dataOptions: (x, y, c) => (c.kind === 'targeted' ? { targetPool: { x, y } } : {}),
  },
  nes: {
    summary: 'NES-PGD, PGD on query-estimated gradients, black-box L∞/L2 (Ilyas et al. 2018; SPSA: Uesato et al. 2018)',
    load: () => defOf(import('../evasion/blackbox/nes.js').then((m) => m.nesDefinition)),
    needsEps: true,
    flags: ['queries', 'steps', 'loss', 'samples', 'sigma', 'estimator'],
    options: (f) => ({
      maxQueries: f.num('queries', 1, 1e9, true),
      steps: f.num('steps', 1, 1e6, true),
      loss: f.choice('loss', ['margin', 'ce'] as const),
      samples: f.num('samples', 2, 1e6, true),
      sigma: f.pos('sigma'),
      estimator: f.choice('estimator', ['nes', 'spsa'] as const),
    }),
  },
};

/** Flags every attack takes. */
const COMMON_FLAGS = {
  ...MODEL_FLAGS,
  input: { type: 'string' },
  labels: { type: 'string' },
  data: { type: 'string' },
  eps: { type: 'string' },
  norm: { type: 'string' },
  targeted: { type: 'boolean' },
  'target-class': { type: 'string' },
  targets: { type: 'string' },
  seed: { type: 'string' },
  out: { type: 'string' },
  json: { type: 'boolean' },
  ...REMOTE_FLAGS,
} as const;

function help(): string {
  const width = Math.max(...Object.keys(ATTACKS).map((k) => k.length));
  const optWidth = Math.max(...Object.keys(ATTACK_OPTIONS).map((k) => k.length)) + 4;
  return `Usage: bulwark attack <${Object.keys(ATTACKS).join('|')}> --model M.onnx (--input X.npy --labels Y.npy | --data SPEC)
       --eps E --norm inf|2|1 [options]

Runs an evasion attack. Every result is verified by the shared runner: adversarial inputs are projected onto the
threat model (bounds and the eps-ball) and success is recomputed on the model, never taken from the attack.
Examples the model already misclassifies are not attacked (they count as not robust).

Attacks:
${Object.entries(ATTACKS).map(([k, a]) => `  ${k.padEnd(width)}  ${a.summary}`).join('\n')}

Common options:
  --model M.onnx|URL        the model (white-box attacks need its gradients); a URL
                            http(s)://host/v2/models/NAME[/versions/V] is a KServe v2 endpoint (black-box attacks)
  --input X.npy --labels Y.npy, or --data SPEC (e.g. mnist:test[0:1000])
  --eps E                   radius of the threat model in input units, > 0 (required for fgsm, pgd, apgd-*, uap;
                            minimum-norm attacks cw, deepfool, fab default to unbounded; patch: area fraction, default
                            0.1); eps 0 is refused as by evaluate and scan: every run reports clean accuracy anyway
  --norm inf|2|1            threat-model norm (default: the attack's first: 2 for cw, deepfool and hsj, inf for
                            the others; patch takes none)
  --targeted                targeted attack: targets from --targets T.npy, or --target-class C for all, or a seeded
                            random class other than the label; apgd-*: APGD-T over the top --n-targets classes;
                            hsj starts from the data's images of each target class (nearest first)
  --seed S                  seed of every random draw (default 0)
  --out ADV.npy             write the adversarial inputs (float32)
  --json                    print one JSON object as the last stdout line
  --threads T, --workers W, --batch-size B, --output-kind auto|logits|probs   model execution
                        (--workers W: W worker threads, each with T onnxruntime threads, share every batch;
                        with neither given, one worker per core, up to 4; T and W are each at most the
                        number of cores, T x W at most twice that; for a URL --batch-size is the examples per
                        request, default 64)

${REMOTE_HELP}

Attack options:
${Object.entries(ATTACK_OPTIONS).map(([k, o]) => `  ${`--${k}${o.spec.type === 'string' ? ' V' : ''}`.padEnd(optWidth)}  ${o.help}`).join('\n')}

See docs/ATTACKS.md for every option, its default and the paper it comes from.`;
}

/**
 * Whether --model names an HTTP endpoint rather than a file: an http(s) scheme (http:host without the slashes is still
 * meant as one; the client's URL check explains what is wrong with it).
 */
function isEndpoint(where: string): boolean {
  const scheme = urlScheme(where);
  return scheme === 'http' || scheme === 'https';
}

/** Loads the model of --model: an ONNX file, or an Open Inference Protocol (KServe v2) URL. */
export async function loadTargetModel(values: Record<string, unknown>, helpText: string): Promise<Model & { dispose?(): Promise<void> }> {
  const where = required(values, 'model', helpText);
  const { isRemoteModelUrl, connectRemoteModel } = await import('../runtime/remote.js');
  if (!isRemoteModelUrl(where) && !isEndpoint(where)) {
    refuseRemoteFlags(values, where);
    return modelFromFlags(values, where);
  }
  const kind = values['output-kind'];
  if (kind !== undefined && kind !== 'auto' && kind !== 'logits' && kind !== 'probs') throw new BulwarkError('BULWARK_E_ARG', `--output-kind must be auto, logits or probs, got ${JSON.stringify(kind)}`);
  const remote = await connectRemoteModel(where, {
    outputKind: kind === 'probs' ? 'probs' : 'logits',
    maxBatchSize: numberFlag(values, 'batch-size', 64, 1, 1 << 16, true),
    ...(await remoteOptions(values)),
  });
  return Object.assign(remote, { dispose: async () => remote.close() });
}

function parseNorm(v: string | undefined): Norm | undefined {
  if (v === undefined) return undefined;
  const m: Record<string, Norm> = { inf: 'inf', linf: 'inf', Linf: 'inf', '2': 2, l2: 2, L2: 2, '1': 1, l1: 1, L1: 1 };
  const n = m[v];
  if (n === undefined) throw new BulwarkError('BULWARK_E_ARG', `--norm must be inf, 2 or 1, got ${JSON.stringify(v)}`);
  return n;
}

/** The criterion of --targeted / --targets / --target-class for n examples with labels y. */
function criterionFrom(f: AttackFlags, row: CliAttack, name: string, y: Int32Array, numClasses: number, seed: number): Criterion {
  const targeted = f.values['targeted'] === true || f.has('targets') || f.has('target-class');
  if (!targeted) return { kind: 'untargeted' };
  const mode = row.targeted ?? 'targets';
  if (mode === 'none') throw new BulwarkError('BULWARK_E_ARG', `${name} is untargeted; drop --targeted`);
  if (mode === 'topk') {
    if (f.has('targets') || f.has('target-class')) throw new BulwarkError('BULWARK_E_ARG', `${name} --targeted runs APGD-T over the most likely classes; use --n-targets K instead of --targets/--target-class`);
    return { kind: 'targeted-topk', k: f.num('n-targets', 1, Math.max(1, numClasses - 1), true) ?? Math.min(9, numClasses - 1) };
  }
  if (f.has('targets')) {
    const t = readLabels(f.str('targets')!, '--targets');
    if (t.length !== y.length) throw new BulwarkError('BULWARK_E_LABELS', `--targets has ${t.length} entries for ${y.length} inputs`);
    return { kind: 'targeted', targets: t };
  }
  if (f.has('target-class')) {
    const c = f.num('target-class', 0, numClasses - 1, true)!;
    return { kind: 'targeted', targets: new Int32Array(y.length).fill(c) };
  }
  const rng = new Rng(seed ^ 0x7a3d);
  if (name === 'patch') return { kind: 'targeted', targets: new Int32Array(y.length).fill(rng.int(numClasses)) };
  return { kind: 'targeted', targets: Int32Array.from(y, (l) => (l + 1 + rng.int(numClasses - 1)) % numClasses) };
}

/** The JSON object `--json` prints: the summary plus where the adversarial inputs went. */
export function attackJson(r: AttackResult, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const s = r.summary;
  return {
    attack: s.attack,
    n: s.n,
    cleanAccuracy: s.cleanAccuracy,
    robustAccuracy: s.robustAccuracy,
    successRate: s.successRate,
    meanPerturbation: s.meanPerturbation,
    queries: s.queries,
    seconds: s.seconds,
    imagesPerSecond: s.imagesPerSecond,
    norm: s.norm,
    eps: Number.isFinite(s.eps) ? s.eps : null,
    targeted: s.targeted,
    outOfThreat: s.outOfThreat,
    options: r.options,
    ...extra,
  };
}

/**
 * `bulwark attack`: see the help text.
 * @param argv the arguments after `attack`
 * @returns the exit code (0; errors are thrown as BulwarkError and mapped by main)
 */
export async function run(argv: string[]): Promise<number> {
  const HELP = help();
  const [name, ...rest] = argv;
  if (name === '--help' || name === '-h') {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  if (name === undefined) {
    process.stderr.write(HELP + '\n\n');
    throw new BulwarkError('BULWARK_E_USAGE', `no attack given; attacks are ${Object.keys(ATTACKS).join(', ')}`, { hint: 'e.g. `bulwark attack pgd --model M.onnx --data mnist:test[0:100] --eps 0.3`; `bulwark attack --help` lists every option.' });
  }
  const row = ATTACKS[name];
  if (!row) throw new BulwarkError('BULWARK_E_USAGE', `unknown attack ${JSON.stringify(name)}; attacks are ${Object.keys(ATTACKS).join(', ')}`, { hint: 'Run `bulwark attack --help`.' });
  const specs: OptionSpec = { ...COMMON_FLAGS };
  for (const [k, o] of Object.entries(ATTACK_OPTIONS)) specs[k] = o.spec;
  const p = parseFlags(rest, specs, HELP);
  if (!p) return 0;
  const v = p.values;
  const f = new AttackFlags(v);
  const stray = Object.keys(ATTACK_OPTIONS).filter((k) => f.has(k) && !row.flags.includes(k));
  if (stray.length) throw new BulwarkError('BULWARK_E_USAGE', `${name} does not take --${stray[0]}`, { hint: `${name} takes ${row.flags.map((x) => `--${x}`).join(', ') || 'no attack-specific flags'} besides the common ones.` });
  checkInputFlags(v);
  const targeted = v['targeted'] === true || f.has('targets') || f.has('target-class');
  if (f.has('n-targets') && !targeted) throw new BulwarkError('BULWARK_E_USAGE', `--n-targets applies to ${name} --targeted (APGD-T); add --targeted or drop --n-targets`);
  const eps = f.num('eps');
  if (eps === undefined && row.needsEps) throw new BulwarkError('BULWARK_E_USAGE', `${name} needs --eps (the radius of the threat model)`, { hint: 'e.g. --eps 0.3 --norm inf for MNIST, --eps 0.031 for CIFAR-10 L∞.' });
  // eps 0 would only re-measure clean accuracy, which every run reports; evaluate and scan refuse it the same way
  if (eps !== undefined && !(eps > 0)) throw new BulwarkError('BULWARK_E_ARG', `--eps must be a finite radius > 0, got ${eps}`, { hint: 'Every attack also reports clean accuracy; for accuracy alone run `bulwark eval`.' });
  const norm = parseNorm(f.str('norm'));
  const seed = f.num('seed', 0, 2 ** 32 - 1, true) ?? 0;
  const def = await row.load();
  if (norm !== undefined && !def.norms.includes(norm)) {
    if (def.norms.every((n) => n === 0)) throw new BulwarkError('BULWARK_E_USAGE', `${name} takes no --norm: its threat model is a patch whose area fraction is --eps`);
    throw new BulwarkError('BULWARK_E_ARG', `--norm ${f.str('norm')}: ${name} supports --norm ${def.norms.join(' or ')}`);
  }
  if (f.has('targets') && f.has('target-class')) {
    throw new BulwarkError('BULWARK_E_USAGE', '--targets and --target-class both name the targets; give one', { hint: '--targets T.npy gives one target per example, --target-class C the same class for all.' });
  }
  const where = v['model'];
  if (def.whiteBox && typeof where === 'string' && isEndpoint(where)) {
    // before any connection: a remote endpoint only ever answers predictions
    const { BLACK_BOX_HINT } = await import('../evasion/runner.js');
    throw new BulwarkError('BULWARK_E_MODEL', `${name} is a white-box attack and needs gradients, but --model ${where} is a remote endpoint, which only returns predictions`, { hint: BLACK_BOX_HINT });
  }
  const outPath = f.str('out');
  if (outPath) {
    checkWritable(outPath, '--out');
    refuseOutputOverInput([['--out', outPath]], [
      ['--model', v['model'] as string | undefined], ['--input', v['input'] as string | undefined], ['--labels', v['labels'] as string | undefined],
      ['--targets', v['targets'] as string | undefined], ...dataSpecFiles(v['data']).map((d): [string, string] => ['--data', d]),
    ]);
  }

  const model = await loadTargetModel(v, HELP);
  try {
    const { x, y, source } = await inputsFromFlags(v, { labels: 'required', model });
    const criterion = criterionFrom(f, row, name, y!, model.numClasses, seed);
    const options = drop({ ...row.options(f), ...(row.dataOptions?.(x, y!, criterion) ?? {}), eps, norm, seed, criterion });
    const { runAttack } = await import('../evasion/runner.js');
    const result = await namingFlags(() => runAttack(def, model, x, y!, options));
    const out = f.str('out');
    if (out) writeNpy(out, result.adversarial as Float32Tensor, '--out');
    if (v['json']) printJson(attackJson(result, { data: source, ...(out ? { out } : {}), ...(result.extras['queryStats'] ? { queryStats: result.extras['queryStats'] } : {}) }));
    else process.stdout.write(humanSummary(result, out) + '\n');
    return 0;
  } finally {
    await model.dispose?.();
  }
}

/** CLI flags of the attacks' option names (several rows map one flag to differently named options). */
const OPTION_FLAGS: Record<string, string> = {
  steps: 'steps', maxPasses: 'steps', stepSize: 'step-size', lr: 'step-size', randomStart: 'random-start', restarts: 'restarts',
  loss: 'loss', schedule: 'schedule', kappa: 'kappa', initialConst: 'c', binarySearchSteps: 'binary-search-steps',
  overshoot: 'overshoot', inner: 'inner', batchSize: 'batch', maxQueries: 'queries', pInit: 'p-init', samples: 'samples',
  sigma: 'sigma', estimator: 'estimator', eps: 'eps', norm: 'norm', seed: 'seed', criterion: 'targeted',
};

/**
 * Runs the attack and rewrites "pgd: option stepSize ..." errors of the option schema as "pgd: --step-size ...", so a
 * check the CLI does not repeat still names the flag the user typed.
 */
async function namingFlags<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (e) {
    if (!(e instanceof BulwarkError)) throw e;
    const m = /^([\w-]+): (?:option )?(\w+)( .*)$/s.exec(e.message);
    const flag = m ? OPTION_FLAGS[m[2]!] : undefined;
    if (!m || flag === undefined) throw e;
    throw new BulwarkError(e.code, `${m[1]}: --${flag}${m[3]}`, { hint: e.hint, ...(e.details ? { details: e.details } : {}), cause: e });
  }
}

function humanSummary(r: AttackResult, out: string | undefined): string {
  const s = r.summary;
  const pct = (v: number) => `${(100 * v).toFixed(2)}%`;
  const eps = Number.isFinite(s.eps) ? String(s.eps) : 'unbounded';
  return [
    `${s.attack}: ${s.n} examples, norm ${s.norm === 'inf' ? 'L∞' : `L${s.norm}`}, eps ${eps}${s.targeted ? ', targeted' : ''}`,
    `  clean accuracy   ${pct(s.cleanAccuracy)}`,
    `  robust accuracy  ${pct(s.robustAccuracy)}`,
    `  success rate     ${pct(s.successRate)} of the correctly classified examples`,
    `  mean perturbation (successes)  L∞ ${s.meanPerturbation.linf.toFixed(4)}  L2 ${s.meanPerturbation.l2.toFixed(4)}`,
    `  ${s.queries} model queries, ${s.seconds.toFixed(2)} s (${s.imagesPerSecond.toFixed(1)} images/s)`,
    ...(s.outOfThreat ? [`  note: ${s.outOfThreat} outputs left the threat model and were projected back`] : []),
    ...(out ? [`  wrote ${out}`] : []),
  ].join('\n');
}
