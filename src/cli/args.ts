import { parseArgs, type ParseArgsConfig } from 'node:util';
import { BulwarkError } from '../core/errors.js';

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
    parsed = parseArgs({ args: argv, options: withHelp, strict: true, allowPositionals });
  } catch (e) {
    throw new BulwarkError('BULWARK_E_USAGE', (e as Error).message, { hint: `usage:\n${help}` });
  }
  if ((parsed.values as Record<string, unknown>)['help']) {
    process.stdout.write(help.trimEnd() + '\n');
    return null;
  }
  return { values: parsed.values as ParsedFlags['values'], positionals: parsed.positionals };
}

/** A required string flag. */
export function required(values: Record<string, unknown>, name: string, help: string): string {
  const v = values[name];
  if (typeof v !== 'string' || v.length === 0) throw new BulwarkError('BULWARK_E_USAGE', `missing required flag --${name}`, { hint: `usage:\n${help}` });
  return v;
}

/** A numeric flag within [min, max], or the default when absent. */
export function numberFlag(values: Record<string, unknown>, name: string, def: number, min = -Infinity, max = Infinity, integer = false): number {
  const v = values[name];
  if (v === undefined) return def;
  const n = Number(v);
  if (typeof v !== 'string' || v.trim() === '' || !Number.isFinite(n)) throw new BulwarkError('BULWARK_E_ARG', `--${name} must be a number, got ${JSON.stringify(v)}`);
  if (integer && !Number.isInteger(n)) throw new BulwarkError('BULWARK_E_ARG', `--${name} must be an integer, got ${v}`);
  if (n < min || n > max) throw new BulwarkError('BULWARK_E_ARG', `--${name} must be in [${min}, ${max}], got ${v}`);
  return n;
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
