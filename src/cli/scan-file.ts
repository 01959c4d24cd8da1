import { BulwarkError } from '../core/errors.js';
import { renderJson, renderSarif, renderText, scanPaths, SEVERITIES, type ScanResult, type Severity } from '../supplychain/scan/index.js';
import { numberFlag, parseFlags, printJson } from './args.js';

const HELP = `Usage: bulwark scan-file <path...> [--json | --sarif] [--fail-on SEVERITY] [--max-depth N] [--allow MODULE.NAME]

Scans model files for unsafe content without loading them: pickles (every opcode; callables judged by an
allowlist and a blocklist), PyTorch zip / legacy / tar checkpoints, joblib, NumPy .npy/.npz, nested archives
(zip bombs refused), ONNX (external-data paths, custom domains, absurd sizes), safetensors header rules and
Keras (.keras Lambda layers and custom modules, legacy .h5 Lambda layers). Folders are scanned recursively;
links that leave a folder are reported, not followed. See docs/SCANNER.md.

Exit codes: 0 clean, 1 findings at or above --fail-on, 2 usage or input error (missing file).

Options:
      --json             print one JSON object {unsafe, counts, findings, scanned, ...}
      --sarif            print a SARIF 2.1.0 log (for code-scanning dashboards)
      --fail-on SEV      lowest severity that makes the exit code 1: critical, high, medium, low (default), info
      --max-depth N      most archive levels opened (default 4)
      --allow MOD.NAME   allow an extra pickle global (repeatable), e.g. --allow mypkg.models.Net
`;

/** Scans the paths and prints the report; returns the exit code. */
export async function scanFileCommand(paths: string[], opts: { format: 'text' | 'json' | 'sarif'; failOn: Severity; maxDepth: number; allow: string[] }): Promise<{ result: ScanResult; exitCode: number }> {
  const result = await scanPaths(paths, { failOn: opts.failOn, maxDepth: opts.maxDepth, allow: opts.allow });
  if (opts.format === 'json') printJson(renderJson(result));
  else if (opts.format === 'sarif') printJson(renderSarif(result));
  else process.stdout.write(renderText(result, process.stdout.isTTY === true) + '\n');
  return { result, exitCode: result.unsafe ? 1 : 0 };
}

/** `bulwark scan-file`: parses flags, scans, prints; returns 0 clean, 1 findings (usage errors throw, exit 2). */
export async function run(argv: string[]): Promise<number> {
  const p = parseFlags(
    argv,
    { json: { type: 'boolean' }, sarif: { type: 'boolean' }, 'fail-on': { type: 'string' }, 'max-depth': { type: 'string' }, allow: { type: 'string', multiple: true } },
    HELP,
    true,
  );
  if (!p) return 0;
  if (p.positionals.length === 0) throw new BulwarkError('BULWARK_E_USAGE', 'scan-file needs at least one file or folder', { hint: `usage:\n${HELP}` });
  if (p.values.json && p.values.sarif) throw new BulwarkError('BULWARK_E_USAGE', 'give --json or --sarif, not both');
  const failOn = (p.values['fail-on'] as string | undefined) ?? 'low';
  if (!(SEVERITIES as readonly string[]).includes(failOn)) throw new BulwarkError('BULWARK_E_ARG', `--fail-on must be one of ${SEVERITIES.join(', ')}, got ${JSON.stringify(failOn)}`);
  const maxDepth = numberFlag(p.values, 'max-depth', 4, 0, 64, true);
  const allow = (p.values.allow as string[] | undefined) ?? [];
  const format = p.values.json ? 'json' : p.values.sarif ? 'sarif' : 'text';
  const { exitCode } = await scanFileCommand(p.positionals, { format, failOn: failOn as Severity, maxDepth, allow });
  return exitCode;
}
