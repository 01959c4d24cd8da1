import * as fs from 'node:fs';
import { BulwarkError } from '../core/errors.js';
import { parseDataSpec, type Dataset } from '../data/index.js';
import type { Network } from '../nn/network.js';
import type { OptimizerName, Schedule } from '../nn/optim.js';
import { train } from '../nn/train.js';
import { buildArch } from '../nn/zoo.js';
import { auditMembership, MEMBERSHIP_ATTACKS, type AuditReport, type MembershipAttack } from '../privacy/membership/index.js';
import { trainDpSgd } from '../privacy/dpsgd.js';
import { numberFlag, parseSubcommand, printJson, required, threadsFlag } from './args.js';
import { loadDataFlag, modelFromFlags } from './common.js';

const HELP = `Usage: bulwark privacy audit --model M.onnx --train SPEC --holdout SPEC [options]

Membership-inference audit: can an attacker tell the model's training examples (--train) from unseen examples of
the same distribution (--holdout)? Reports ROC AUC and TPR at 0.1% and 1% FPR (with the number of non-members,
which sets the FPR resolution), and a finding (MITRE ATLAS AML.T0024.000, OWASP ML04).

Attacks:
  loss   the loss-threshold attack (Yeom et al. 2018): lower loss = member. Fast; weak at low FPR.
  lira   the Likelihood Ratio Attack (Carlini et al. 2022): trains --shadows models on random halves of
         train + holdout with the target's recipe, fits per-example Gaussians to their logit-scaled confidences.

Options:
  -m, --model M.onnx          the target model
      --train SPEC            its training examples (members), e.g. mnist:train[0:500]
      --holdout SPEC          examples it never saw (non-members), e.g. mnist:train[500:1000]
      --attack A              loss (default) | lira
      --shadows K             lira: number of shadow models, even (default 16)
      --variant V             lira: online (default) | offline
      --per-example-variance  lira: fit one variance per example (default below 64 shadows: one pooled variance)
      --shadow-arch A         lira: architecture of the shadows (default: the model's bulwark.arch metadata)
      --shadow-epochs N       lira: shadow training epochs   (defaults: the model's M.onnx.train.json record,
      --shadow-lr X           lira: shadow learning rate      else 20 epochs, lr 0.003, adam, batch 64)
      --shadow-batch-size B   lira: shadow batch size
      --shadow-optimizer O    lira: sgd | adam | adamw
      --seed S                seed of the shadows' halves and initializations (default 0)
      --max-auc A             exit 1 when the attack's AUC exceeds A (a CI gate)
      --threads T             onnxruntime intra-op threads
      --json                  print one JSON object (the report, without per-example scores)
`;

const OPTIONS = {
  model: { type: 'string', short: 'm' },
  train: { type: 'string' },
  holdout: { type: 'string' },
  attack: { type: 'string' },
  shadows: { type: 'string' },
  variant: { type: 'string' },
  'per-example-variance': { type: 'boolean' },
  'shadow-arch': { type: 'string' },
  'shadow-epochs': { type: 'string' },
  'shadow-lr': { type: 'string' },
  'shadow-batch-size': { type: 'string' },
  'shadow-optimizer': { type: 'string' },
  seed: { type: 'string' },
  'max-auc': { type: 'string' },
  threads: { type: 'string' },
  'output-kind': { type: 'string' },
  'batch-size': { type: 'string' },
  json: { type: 'boolean' },
} as const;

interface TrainRecord {
  arch?: string;
  hyperparameters?: { epochs?: number; batchSize?: number; lr?: number; optimizer?: OptimizerName; momentum?: number; nesterov?: boolean; weightDecay?: number; schedule?: Schedule; labelSmoothing?: number };
  privacy?: { noiseMultiplier: number; maxGradNorm: number; expectedBatchSize: number; delta: number; accountant: 'rdp' | 'prv' };
}

function readRecord(modelPath: string): TrainRecord | undefined {
  try {
    return JSON.parse(fs.readFileSync(`${modelPath}.train.json`, 'utf8')) as TrainRecord;
  } catch {
    return undefined;
  }
}

/** `bulwark privacy`: see HELP. */
export async function run(argv: string[]): Promise<number> {
  const parsed = parseSubcommand(argv, 'privacy', { audit: OPTIONS }, HELP);
  if (typeof parsed === 'number') return parsed;
  const { flags: p } = parsed;
  const v = p.values;
  const modelPath = required(v, 'model', HELP);
  const trainSpec = required(v, 'train', HELP);
  const holdoutSpec = required(v, 'holdout', HELP);
  parseDataSpec(trainSpec);
  parseDataSpec(holdoutSpec);
  const attack = (typeof v.attack === 'string' ? v.attack : 'loss') as MembershipAttack;
  if (!(MEMBERSHIP_ATTACKS as readonly string[]).includes(attack)) throw new BulwarkError('BULWARK_E_ARG', `--attack must be loss or lira, got ${JSON.stringify(attack)}`);
  const variant = typeof v.variant === 'string' ? v.variant : 'online';
  if (variant !== 'online' && variant !== 'offline') throw new BulwarkError('BULWARK_E_ARG', `--variant must be online or offline, got ${JSON.stringify(variant)}`);
  const shadows = numberFlag(v, 'shadows', 16, 2, 1024, true);
  if (shadows % 2 !== 0) throw new BulwarkError('BULWARK_E_ARG', `--shadows must be even (shadows come in complementary pairs), got ${shadows}`);
  const seed = numberFlag(v, 'seed', 0, 0, 2 ** 31 - 1, true);
  const maxAuc = v['max-auc'] === undefined ? undefined : numberFlag(v, 'max-auc', 1, 0, 1);
  const threads = threadsFlag(v);
  const json = v.json === true;

  const model = await modelFromFlags(v, modelPath);
  try {
    const trainData = await loadDataFlag(trainSpec, '--train');
    const holdout = await loadDataFlag(holdoutSpec, '--holdout');
    let shadow;
    if (attack === 'lira') {
      const record = readRecord(modelPath);
      const arch = (v['shadow-arch'] as string | undefined) ?? model.graph.metadata['bulwark.arch'] ?? record?.arch;
      if (!arch) throw new BulwarkError('BULWARK_E_ARG', 'LiRA needs the shadow architecture: the model has no bulwark.arch metadata; pass --shadow-arch', { hint: 'Give the architecture the target was trained with, e.g. --shadow-arch mlp.' });
      const h = record?.hyperparameters ?? {};
      const epochs = numberFlag(v, 'shadow-epochs', h.epochs ?? 20, 1, 100000, true);
      const lr = numberFlag(v, 'shadow-lr', h.lr ?? 3e-3, 0);
      const batchSize = numberFlag(v, 'shadow-batch-size', h.batchSize ?? record?.privacy?.expectedBatchSize ?? 64, 1, 1 << 20, true);
      const optimizer = ((v['shadow-optimizer'] as string | undefined) ?? h.optimizer ?? 'adam') as OptimizerName;
      const inputShape = trainData.x.shape.slice(1);
      const numClasses = model.numClasses || trainData.numClasses || 10;
      const dp = record?.privacy;
      const trainer = async (net: Network, data: Dataset, s: number): Promise<void> => {
        if (dp) {
          // Shadows of a DP target follow its DP recipe; their noise is the attacker's and need not be private.
          await trainDpSgd(net, data, { epochs, batchSize: Math.min(batchSize, data.x.shape[0]!), lr, optimizer, momentum: h.momentum ?? 0, noiseMultiplier: dp.noiseMultiplier, maxGradNorm: dp.maxGradNorm, delta: dp.delta, noise: { seed: s }, seed: s, progress: false, ...(threads === undefined ? {} : { threads }) });
        } else {
          await train(net, data, { epochs, batchSize, lr, optimizer, momentum: h.momentum ?? 0.9, nesterov: h.nesterov ?? false, schedule: h.schedule ?? { kind: 'onecycle' }, labelSmoothing: h.labelSmoothing ?? 0, ...(h.weightDecay === undefined ? {} : { weightDecay: h.weightDecay }), seed: s, progress: false, ...(threads === undefined ? {} : { threads }) });
        }
      };
      shadow = {
        shadows,
        seed,
        makeNetwork: (i: number) => buildArch(arch, { inputShape, numClasses, seed: seed * 1000 + i + 1 }),
        trainer,
        ...(threads === undefined ? {} : { threads }),
        onShadow: (done: number, total: number) => {
          if (!json && process.stderr.isTTY) process.stderr.write(`\rshadow models ${done}/${total}`);
        },
      };
    }
    const report = await auditMembership(model, trainData, holdout, { attack, variant, ...(v['per-example-variance'] === true ? { fixedVariance: false } : {}), ...(shadow ? { shadow } : {}) });
    const failed = maxAuc !== undefined && report.auc > maxAuc;
    if (json) {
      const { scores: _scores, ...rest } = report;
      void _scores;
      printJson({ ...rest, gate: maxAuc === undefined ? null : { maxAuc, passed: !failed } });
    } else process.stdout.write(describe(report) + (failed ? `\nFAILED: AUC ${report.auc.toFixed(3)} exceeds --max-auc ${maxAuc}\n` : ''));
    return failed ? 1 : 0;
  } finally {
    await model.dispose();
  }
}

function describe(r: AuditReport): string {
  const rows = r.tprAtFpr.map((t) => `  TPR at ${(100 * t.fpr).toFixed(1)}% FPR: ${(100 * t.tpr).toFixed(2)}%${t.belowResolution ? ` (below the 1/${r.nonMembers} FPR resolution: interpolated)` : ''}`);
  const base = r.baseline ? `\n  loss-attack baseline: AUC ${r.baseline.auc.toFixed(3)}, TPR at 1% FPR ${(100 * (r.baseline.tprAtFpr.find((t) => t.fpr === 0.01)?.tpr ?? 0)).toFixed(2)}%` : '';
  const lira = r.lira ? ` (${r.lira.shadows} shadows, ${r.lira.fixedVariance ? 'pooled' : 'per-example'} variance)` : '';
  return [
    `membership inference, ${r.attack}${lira}: ${r.members} members vs ${r.nonMembers} non-members (FPR resolution ${r.fprResolution.toPrecision(2)})`,
    `  AUC ${r.auc.toFixed(3)}, best balanced accuracy ${(100 * r.balancedAccuracy).toFixed(1)}%`,
    ...rows,
  ].join('\n') + base + `\n  finding: ${r.finding.severity}: ${r.finding.title}\n`;
}
