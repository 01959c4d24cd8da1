import { BulwarkError, ERROR_CODES } from '../core/errors.js';
import { escapeControls } from '../core/quote.js';

/** A CLI command: parses its own argv and returns the process exit code. */
export interface CommandModule {
  run(argv: string[]): Promise<number>;
}

interface CommandEntry {
  summary: string;
  load: () => Promise<CommandModule>;
}

/** The command table. Each command lives in its own file and is imported only when called. */
export const COMMANDS: Record<string, CommandEntry> = {
  info: { summary: 'Inputs, outputs, opset, op histogram and differentiability of an ONNX model', load: () => import('./info.js') },
  predict: { summary: "Run a model and write its raw output as float32 .npy", load: () => import('./predict.js') },
  grad: { summary: 'Gradient of a loss with respect to the input, as float32 .npy', load: () => import('./grad.js') },
  train: { summary: 'Train a built-in architecture on a dataset and export ONNX', load: () => import('./train.js') },
  eval: { summary: 'Accuracy and loss of a model on a dataset', load: () => import('./eval.js') },
  certify: { summary: 'Certify robustness: L2 by randomized smoothing (Cohen et al. 2019), Linf by interval bound propagation (--method ibp)', load: () => import('./certify.js') },
  detect: { summary: 'Feature-squeezing detector (Xu et al. 2018): fit a threshold at an FPR, score inputs, evaluate against PGD, C&W and an adaptive attack', load: () => import('./detect.js') },
  attack: { summary: 'Run an evasion attack (white-box fgsm, pgd, cw, deepfool, apgd-ce, apgd-dlr, fab, uap, patch; black-box square, hsj, nes), verified on the model', load: () => import('./attack.js') },
  keygen: { summary: 'Make a hybrid key pair (Ed25519+ML-DSA-65 signing, X25519+ML-KEM-768 encryption): KEY and KEY.pub', load: () => import('./keygen.js') },
  sign: { summary: 'Sign a model file or folder (OpenSSF model signing, hybrid Ed25519 + ML-DSA-65)', load: () => import('./sign.js') },
  verify: { summary: 'Verify a model file or folder against its signature; exit 1 if anything differs', load: () => import('./verify.js') },
  encrypt: { summary: 'Encrypt a file at rest for a public key (AES-256-GCM, hybrid X25519 + ML-KEM-768)', load: () => import('./encrypt.js') },
  decrypt: { summary: 'Decrypt and authenticate a file written by `bulwark encrypt`', load: () => import('./decrypt.js') },
  evaluate: { summary: 'Adversarial robustness: AutoAttack-style ensemble (APGD-CE, APGD-T, FAB-T, Square), curve, gradient-masking checks', load: () => import('./evaluate.js') },
  scan: { summary: 'Assess a model (model-file scan, robustness) into report.html/json/sarif; CI gates with --fail-under; --demo', load: () => import('./scan.js') },
  dp: { summary: 'Privacy accounting for DP-SGD: epsilon of a run (RDP or PRV), or the noise multiplier for a target epsilon', load: () => import('./dp.js') },
  privacy: { summary: 'Membership-inference audit of a model (loss-threshold attack or LiRA): ROC AUC and TPR at low FPR', load: () => import('./privacy.js') },
  'scan-file': { summary: 'Scan model files (pickle, PyTorch, joblib, NumPy, ONNX, safetensors, Keras) for unsafe content; exit 1 on findings', load: () => import('./scan-file.js') },
  registry: { summary: 'Model registry: push/pull/list/show/alias/rollback/verify/bom (content-addressed, signed, audited)', load: () => import('./registry.js') },
  invert: { summary: 'Model inversion (MI-Face): reconstruct class representatives as PNG and score them against the class means', load: () => import('./invert.js') },
  extract: { summary: 'Model extraction (Knockoff Nets, Jacobian augmentation) against an ONNX model or KServe v2 URL; writes the clone', load: () => import('./extract.js') },
  unlearn: { summary: 'SISA machine unlearning: train a sharded ensemble (--train) or forget examples from one (--forget)', load: () => import('./unlearn.js') },
  audit: { summary: 'Verify, export or extend the hash-chained, checkpoint-signed audit log; exit 1 on tampering', load: () => import('./audit.js') },
};

const VERSION = '0.1.0';

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return [
    'bulwark: a deep-learning security toolkit for ONNX models',
    '',
    'Usage: bulwark <command> [options]',
    '',
    'Commands:',
    ...lines,
    '',
    'Run `bulwark <command> --help` for the options of a command.',
    'Exit codes: 0 ok, 1 findings or a failed gate, 2 usage or input error.',
  ].join('\n');
}

/** Runs the CLI and maps typed errors to exit codes; never prints a stack for a user error. */
export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(usage() + '\n');
    return 0;
  }
  if (cmd === undefined) {
    // asked for nothing: the usage goes to stderr with the error, stdout stays empty for scripts
    process.stderr.write(usage() + '\n\n');
    return reportError(new BulwarkError('BULWARK_E_USAGE', 'no command given', { hint: 'Run `bulwark --help` for the commands, or `bulwark scan --demo` to see an assessment.' }));
  }
  if (cmd === '--version' || cmd === '-V') {
    process.stdout.write(VERSION + '\n');
    return 0;
  }
  const entry = COMMANDS[cmd];
  if (!entry) {
    const names = Object.keys(COMMANDS);
    return reportError(new BulwarkError('BULWARK_E_USAGE', `unknown command ${JSON.stringify(cmd)}`, { hint: `Commands are ${names.join(', ')}; run \`bulwark --help\` for what each does.` }));
  }
  try {
    const mod = await entry.load();
    return await mod.run(rest);
  } catch (e) {
    return reportError(e);
  }
}

/**
 * Prints an error as `bulwark: CODE: message` plus its hint and returns the exit code. Control characters other than
 * newline are escaped in what is printed, so a message that quotes file content raw cannot drive the terminal.
 */
export function reportError(e: unknown): number {
  if (e instanceof BulwarkError) {
    process.stderr.write(`bulwark: ${e.code}: ${escapeControls(e.message)}\nhint: ${escapeControls(e.hint)}\n`);
    return e.exitCode;
  }
  const err = e as { code?: string; message?: string };
  if (err && err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || err?.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' || err?.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
    process.stderr.write(`bulwark: BULWARK_E_USAGE: ${escapeControls(String(err.message))}\nhint: ${ERROR_CODES.BULWARK_E_USAGE.hint}\n`);
    return 2;
  }
  process.stderr.write(`bulwark: BULWARK_E_INTERNAL: ${escapeControls(err?.message ?? String(e))}\nhint: ${ERROR_CODES.BULWARK_E_INTERNAL.hint}\n`);
  if (process.env['BULWARK_DEBUG']) process.stderr.write(`${(e as Error)?.stack ?? ''}\n`);
  return 70;
}
