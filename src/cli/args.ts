import { redactUrl } from '../core/urls.js';
import { availableParallelism } from 'node:os';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { BulwarkError } from '../core/errors.js';
import { parseDecimal } from '../core/numbers.js';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

/**
 * Strict flag parsing shared by every command: unknown flags and missing values are usage errors (exit 2).
 * Returns null when --help was asked (the caller prints its help and exits 0).
 */
export interface ParsedFlags {
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  positionals: string[];
}

export function parseFlags(argv: string[], options: OptionSpec, help: string, allowPositionals = false): ParsedFlags | null {
  const withHelp: OptionSpec = { ...options, help: { type: 'boolean', short: 'h' } };
  let parsed;
  try {
    parsed = parseArgs({ args: joinNegativeValues(argv, withHelp), options: withHelp, strict: true, allowPositionals, tokens: true });
  } catch (e) {
    throw new BulwarkError('BULWARK_E_USAGE', (e as Error).message, { hint: `usage:\n${help}` });
  }
  if ((parsed.values as Record<string, unknown>)['help']) {
    process.stdout.write(help.trimEnd() + '\n');
    return null;
  }
  refuseRepeats(parsed.tokens, withHelp);
  return { values: parsed.values as ParsedFlags['values'], positionals: parsed.positionals };
}

/** A negative number (-1, -0.5, -.5, -1e-3) given as the value of a flag after a space. */
const NEGATIVE_NUMBER = /^-(\d|\.\d)/;

/**
 * `--epochs -1` becomes `--epochs=-1` for a flag that takes a value, so the value is range-checked like any other
 * (node's parseArgs would read -1 as an option and call the flag's value ambiguous). Stops at `--`.
 */
function joinNegativeValues(argv: string[], options: OptionSpec): string[] {
  const shorts = new Map(Object.entries(options).flatMap(([name, o]) => (o.short ? [[o.short, name] as const] : [])));
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      out.push(...argv.slice(i));
      break;
    }
    const next = argv[i + 1];
    const name = /^--[^=]+$/.test(a) ? a.slice(2) : /^-[^-]$/.test(a) ? shorts.get(a.slice(1)) : undefined;
    if (name !== undefined && next !== undefined && NEGATIVE_NUMBER.test(next) && Object.prototype.hasOwnProperty.call(options, name) && options[name]!.type === 'string') {
      out.push(`--${name}=${next}`);
      i++;
      continue;
    }
    out.push(a);
  }
  return out;
}

/** A flag that takes one value given twice (`--out a --out b`) is a usage error instead of the last one winning. */
function refuseRepeats(tokens: readonly { kind: string; name?: string; value?: string | undefined }[], options: OptionSpec): void {
  const seen = new Map<string, (string | undefined)[]>();
  for (const t of tokens) {
    if (t.kind !== 'option' || t.name === undefined) continue;
    const o = options[t.name];
    if (!o || o.type !== 'string' || o.multiple) continue;
    const values = seen.get(t.name) ?? [];
    values.push(t.value);
    seen.set(t.name, values);
  }
  for (const [name, values] of seen) {
    if (values.length > 1) {
      throw new BulwarkError('BULWARK_E_USAGE', `--${name} is given ${values.length} times (${values.map((v) => JSON.stringify(v === undefined ? v : redactUrl(v))).join(', ')}); it takes one value`, { hint: `Give --${name} once; \`bulwark <command> --help\` says which flags repeat.` });
    }
  }
}

/** A required string flag. */
export function required(values: Record<string, unknown>, name: string, help: string): string {
  const v = values[name];
  if (typeof v !== 'string' || v.length === 0) throw new BulwarkError('BULWARK_E_USAGE', `missing required flag --${name}`, { hint: `usage:\n${help}` });
  return v;
}

export { parseDecimal };

/** A numeric flag within [min, max], or the default when absent. */
export function numberFlag(values: Record<string, unknown>, name: string, def: number, min = -Infinity, max = Infinity, integer = false): number {
  const v = values[name];
  if (v === undefined) return def;
  const n = typeof v === 'string' ? parseDecimal(v) : NaN;
  if (!Number.isFinite(n)) throw new BulwarkError('BULWARK_E_ARG', `--${name} must be a decimal number, got ${JSON.stringify(v)}`, { hint: `Write --${name} in decimal or scientific notation (0.01, 1e-3).` });
  if (integer && !Number.isInteger(n)) throw new BulwarkError('BULWARK_E_ARG', `--${name} must be an integer, got ${v}`);
  if (n < min || n > max) throw new BulwarkError('BULWARK_E_ARG', `--${name} must be in [${min}, ${max}], got ${v}`);
  return n;
}

/** The most --threads or --workers a command takes: the machine's cores (at least 2). */
export function parallelismLimit(): number {
  return Math.max(2, availableParallelism());
}

/** --threads (onnxruntime intra-op threads; 0 for its own choice) in [0, cores], or undefined when absent. */
export function threadsFlag(values: Record<string, unknown>): number | undefined {
  if (values['threads'] === undefined) return undefined;
  const limit = parallelismLimit();
  return withHint(() => numberFlag(values, 'threads', 0, 0, limit, true), `This machine has ${availableParallelism()} cores; more threads than cores only slow a run down.`);
}

/** --workers (worker lanes) in [1, cores], or undefined when absent. */
export function workersFlag(values: Record<string, unknown>): number | undefined {
  if (values['workers'] === undefined) return undefined;
  const limit = parallelismLimit();
  return withHint(() => numberFlag(values, 'workers', 1, 1, limit, true), `This machine has ${availableParallelism()} cores; more workers than cores only slow a run down.`);
}

/** --threads × --workers at most twice the cores (each worker lane runs --threads threads). */
export function checkParallelism(threads: number | undefined, workers: number | undefined): void {
  if (threads === undefined || workers === undefined) return;
  const limit = 2 * parallelismLimit();
  const total = Math.max(threads, 1) * workers;
  if (total > limit) {
    throw new BulwarkError('BULWARK_E_ARG', `--threads ${threads} with --workers ${workers} runs ${total} threads; --threads × --workers must be at most ${limit} (twice the cores)`, {
      hint: `Each worker runs --threads threads; on ${availableParallelism()} cores use e.g. --workers ${Math.min(workers, parallelismLimit())} --threads 1.`,
    });
  }
}

function withHint<T>(f: () => T, hint: string): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof BulwarkError && /must be in \[/.test(e.message)) throw new BulwarkError(e.code, e.message, { hint });
    throw e;
  }
}

/** Prints one JSON object as the last line of stdout (the --json contract). */
export function printJson(obj: unknown): void {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

/**
 * Parses `bulwark <command> <sub> [flags]`: prints the help for no subcommand (exit 2) or --help (exit 0) and
 * returns that exit code; refuses an unknown subcommand; parses the subcommand's flags strictly.
 */
export function parseSubcommand(argv: string[], command: string, subs: Record<string, OptionSpec>, help: string, allowPositionals = false): { sub: string; flags: ParsedFlags } | number {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    process.stdout.write(help.trimEnd() + '\n');
    return sub === undefined ? 2 : 0;
  }
  const spec = Object.prototype.hasOwnProperty.call(subs, sub) ? subs[sub] : undefined;
  if (!spec) {
    const names = Object.keys(subs);
    const list = names.length > 1 ? `${names.slice(0, -1).join(', ')} or ${names.at(-1)}` : names[0];
    throw new BulwarkError('BULWARK_E_USAGE', `unknown ${command} subcommand ${JSON.stringify(sub)}; use ${list}`, { hint: `usage:\n${help}` });
  }
  const flags = parseFlags(rest, spec, help, allowPositionals);
  return flags ? { sub, flags } : 0;
}

/** Each subcommand's flags plus the flags every subcommand shares. */
export function withShared(subs: Record<string, OptionSpec>, shared: OptionSpec): Record<string, OptionSpec> {
  return Object.fromEntries(Object.entries(subs).map(([k, v]) => [k, { ...shared, ...v }]));
}
