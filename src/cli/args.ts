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
