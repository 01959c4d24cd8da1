/**
 * Canonical JSON for hashing and signing: object keys sorted by UTF-16 code units, no whitespace, strings and
 * numbers as ECMAScript's JSON.stringify writes them (the RFC 8785 JCS rules for the values Bulwark stores).
 * Two semantically equal values always give the same bytes, so a hash over them is stable.
 */
import { createHash } from 'node:crypto';
import { BulwarkError } from '../../core/errors.js';

/** A JSON value that canonicalizes: no undefined, functions, bigints, NaN or Infinity. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** An object of JSON values. */
export type JsonObject = { [key: string]: JsonValue };

/**
 * Serializes a value canonically.
 * @param value a JSON value (plain objects, arrays, strings, finite numbers, booleans, null)
 * @param what what the value is, for messages
 * @returns the canonical JSON text
 * @throws BulwarkError BULWARK_E_ARG on a value JSON cannot represent exactly (NaN, Infinity, undefined, a bigint,
 *   a class instance, or nesting deeper than 64)
 * @example canonicalJson({ b: 1, a: [true, null] }) // '{"a":[true,null],"b":1}'
 */
export function canonicalJson(value: unknown, what = 'value'): string {
  return write(value, what, 0);
}

function write(v: unknown, what: string, depth: number): string {
  if (depth > 64) throw new BulwarkError('BULWARK_E_ARG', `${what}: nested deeper than 64 levels`);
  if (v === null) return 'null';
  switch (typeof v) {
    case 'boolean':
      return v ? 'true' : 'false';
    case 'string':
      return JSON.stringify(v);
    case 'number':
      if (!Number.isFinite(v)) throw new BulwarkError('BULWARK_E_ARG', `${what}: ${String(v)} has no JSON form`);
      return JSON.stringify(v);
    case 'object': {
      if (Array.isArray(v)) return `[${v.map((x, i) => write(x, `${what}[${i}]`, depth + 1)).join(',')}]`;
      const proto = Object.getPrototypeOf(v) as unknown;
      if (proto !== Object.prototype && proto !== null) throw new BulwarkError('BULWARK_E_ARG', `${what}: only plain objects can be canonicalized`);
      const o = v as Record<string, unknown>;
      const keys = Object.keys(o).sort();
      const parts: string[] = [];
      for (const k of keys) {
        if (o[k] === undefined) throw new BulwarkError('BULWARK_E_ARG', `${what}.${k} is undefined`);
        parts.push(`${JSON.stringify(k)}:${write(o[k], `${what}.${k}`, depth + 1)}`);
      }
      return `{${parts.join(',')}}`;
    }
    default:
      throw new BulwarkError('BULWARK_E_ARG', `${what}: a ${typeof v} has no JSON form`);
  }
}

/** Lowercase hex SHA-256 of a string's UTF-8 bytes or of raw bytes. */
export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Parses JSON text and checks that it is a JSON value (the parser never yields anything else, but the check keeps
 * the type honest for callers).
 * @returns the value, or undefined when the text is not JSON
 */
export function parseJsonOrUndefined(text: string): JsonValue | undefined {
  try {
    return JSON.parse(text) as JsonValue;
  } catch {
    return undefined;
  }
}
