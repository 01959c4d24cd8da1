/**
 * A small strict option schema for attacks (STYLE.md "Attacks"): options are validated once at the boundary,
 * unknown keys are refused, and every default carries a doc line (and, for attacks, the paper's link), from which
 * docs/ATTACKS.md tables are rendered.
 */
import { BulwarkError } from '../core/errors.js';
import type { CommonOptions, Criterion, Norm } from './types.js';

/** One option: its type, range, default and documentation. */
export type FieldSpec =
  | { type: 'number'; doc: string; default?: number; min?: number; max?: number; integer?: boolean; exclusiveMin?: boolean; allowInfinity?: boolean; ref?: string }
  | { type: 'boolean'; doc: string; default?: boolean; ref?: string }
  | { type: 'enum'; doc: string; values: readonly (string | number)[]; default?: string | number; ref?: string }
  | { type: 'numbers'; doc: string; default?: number[]; ref?: string }
  | { type: 'custom'; doc: string; default?: unknown; describeDefault?: string; parse: (value: unknown, key: string, attack: string) => unknown; ref?: string; optional?: boolean; summarize?: (value: unknown) => unknown };

/** A strict schema: `parse` validates an input object and fills defaults. */
export interface OptionSchema<O> {
  readonly fields: Readonly<Record<string, FieldSpec>>;
  /** Validates `input` (refusing unknown keys) and returns the options with defaults. */
  parse(input: unknown, attack: string): O;
}

function argError(attack: string, message: string, hint?: string): never {
  throw new BulwarkError('BULWARK_E_ARG', `${attack}: ${message}`, hint === undefined ? {} : { hint });
}

/**
 * Builds a strict schema.
 * @param fields the options, each with a doc line and (unless required) a default
 * @param check a cross-field check run after defaults are filled (throw BulwarkError on a bad combination)
 * @returns the schema
 */
export function defineSchema<O>(fields: Record<string, FieldSpec>, check?: (o: O, attack: string) => void): OptionSchema<O> {
  return {
    fields,
    parse(input: unknown, attack: string): O {
      const src = input ?? {};
      if (typeof src !== 'object' || Array.isArray(src)) argError(attack, `options must be an object, got ${Array.isArray(src) ? 'an array' : typeof src}`);
      const known = Object.keys(fields);
      for (const k of Object.keys(src)) {
        if (!(k in fields)) argError(attack, `unknown option ${JSON.stringify(k)}`, `Accepted options: ${known.join(', ')}.`);
      }
      const out: Record<string, unknown> = {};
      for (const [k, spec] of Object.entries(fields)) {
        const v = (src as Record<string, unknown>)[k];
        if (v === undefined) {
          if (spec.default === undefined && !(spec.type === 'custom' && spec.optional)) argError(attack, `option ${k} is required (${spec.doc})`);
          out[k] = Array.isArray(spec.default) ? [...spec.default] : spec.default;
          continue;
        }
        out[k] = parseField(spec, v, k, attack);
      }
      check?.(out as O, attack);
      return out as O;
    },
  };
}

function parseField(spec: FieldSpec, v: unknown, k: string, attack: string): unknown {
  switch (spec.type) {
    case 'number': {
      if (typeof v !== 'number' || Number.isNaN(v)) argError(attack, `option ${k} must be a number, got ${JSON.stringify(v)}`);
      if (!Number.isFinite(v) && !(spec.allowInfinity && v === Infinity)) argError(attack, `option ${k} must be finite, got ${v}`);
      if (spec.integer && Number.isFinite(v) && !Number.isInteger(v)) argError(attack, `option ${k} must be an integer, got ${v}`);
      if (spec.min !== undefined && (v < spec.min || (spec.exclusiveMin && v === spec.min))) argError(attack, `option ${k} must be ${spec.exclusiveMin ? '>' : '>='} ${spec.min}, got ${v}`);
      if (spec.max !== undefined && v > spec.max) argError(attack, `option ${k} must be <= ${spec.max}, got ${v}`);
      return v;
    }
    case 'boolean':
      if (typeof v !== 'boolean') argError(attack, `option ${k} must be true or false, got ${JSON.stringify(v)}`);
      return v;
    case 'enum':
      if (!spec.values.includes(v as string | number)) argError(attack, `option ${k} must be one of ${spec.values.map((x) => JSON.stringify(x)).join(', ')}, got ${JSON.stringify(v)}`);
      return v;
    case 'numbers':
      if (!Array.isArray(v) || v.some((x) => typeof x !== 'number' || !Number.isFinite(x))) argError(attack, `option ${k} must be an array of finite numbers`);
      return [...(v as number[])];
    case 'custom':
      return spec.parse(v, k, attack);
  }
}

/** Parses a criterion object. */
export function parseCriterion(v: unknown, key: string, attack: string): Criterion {
  const c = v as { kind?: unknown; targets?: unknown; k?: unknown };
  if (typeof v !== 'object' || v === null) argError(attack, `option ${key} must be {kind: 'untargeted' | 'targeted' | 'targeted-topk', ...}`);
  const extra = Object.keys(v).filter((x) => !['kind', 'targets', 'k'].includes(x));
  if (extra.length) argError(attack, `option ${key} has unknown key ${JSON.stringify(extra[0])}`);
  switch (c.kind) {
    case 'untargeted':
      return { kind: 'untargeted' };
    case 'targeted': {
      const t = c.targets as ArrayLike<number> | undefined;
      if (!t || typeof t !== 'object' || typeof t.length !== 'number') argError(attack, `option ${key}: a targeted criterion needs targets (one class id per example)`);
      return { kind: 'targeted', targets: t };
    }
    case 'targeted-topk': {
      const k = c.k;
      if (typeof k !== 'number' || !Number.isInteger(k) || k < 1) argError(attack, `option ${key}: targeted-topk needs k, an integer >= 1, got ${JSON.stringify(k)}`);
      return { kind: 'targeted-topk', k };
    }
    default:
      return argError(attack, `option ${key}.kind must be 'untargeted', 'targeted' or 'targeted-topk', got ${JSON.stringify(c.kind)}`);
  }
}

/** Renders a norm for messages and docs. */
export function normName(n: Norm): string {
  return n === 'inf' ? 'L∞' : `L${n}`;
}

/**
 * The fields every attack shares: norm, eps, criterion, seed.
 * @param opts the norms the attack supports (first is the default), eps default (undefined: required) and its doc
 */
export function commonFields(opts: { norms: readonly Norm[]; eps?: number; epsDoc?: string }): Record<string, FieldSpec> {
  return {
    norm: { type: 'enum', values: opts.norms, default: opts.norms[0]!, doc: 'Threat-model norm (`"inf"` is L∞; 0 counts changed pixel positions).' },
    eps: {
      type: 'number',
      min: 0,
      allowInfinity: true,
      ...(opts.eps === undefined ? {} : { default: opts.eps }),
      doc: opts.epsDoc ?? 'Threat-model radius in the chosen norm (input units).',
    },
    criterion: { type: 'custom', parse: parseCriterion, default: { kind: 'untargeted' }, describeDefault: "{ kind: 'untargeted' }", doc: 'Success criterion: untargeted, targeted (given targets) or targeted-topk (APGD-T style).' },
    seed: { type: 'number', integer: true, min: 0, default: 0, doc: 'Seed of every random draw (random starts, restarts, positions).' },
  };
}

/**
 * Renders a schema as a Markdown table (docs/ATTACKS.md).
 * @param paper the attack's own paper: option references equal to it are not repeated on every row
 */
export function renderSchema(schema: OptionSchema<unknown>, paper?: string): string {
  const rows = Object.entries(schema.fields).map(([k, f]) => {
    let def: string;
    if (f.type === 'custom' && f.describeDefault) def = f.describeDefault;
    else if (f.default === undefined) def = 'required';
    else if (f.type === 'custom') def = f.describeDefault ?? JSON.stringify(f.default);
    else def = f.default === Infinity ? 'Infinity' : JSON.stringify(f.default);
    const range = f.type === 'enum' ? ` One of ${f.values.map((x) => `\`${JSON.stringify(x)}\``).join(', ')}.` : '';
    const ref = f.ref && f.ref !== paper && !(paper ?? '').includes(f.ref) ? ` (${f.ref})` : '';
    return `| \`${k}\` | \`${def}\` | ${`${f.doc}${range}${ref}`.replace(/\|/g, '\\|')} |`;
  });
  return ['| option | default | meaning |', '|---|---|---|', ...rows].join('\n');
}

export type { CommonOptions };
