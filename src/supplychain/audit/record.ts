/**
 * Audit records: what one entry of the hash-chained log holds, and how its hash is computed.
 *
 * A record is `{v, seq, at, actor, action, subject, data, prev}`; `prev` is the SHA-256 of the previous record's
 * canonical JSON (64 zeros for the first record), so changing, removing or moving any record breaks the chain at
 * that point.
 */
import * as os from 'node:os';
import { BulwarkError } from '../../core/errors.js';
import { canonicalJson, sha256Hex, type JsonValue } from './canonical.js';

/** The record format version. */
export const AUDIT_RECORD_VERSION = 1;
/** `prev` of the first record. */
export const GENESIS_HASH = '0'.repeat(64);
/** Largest canonical `data` of one event, in bytes. */
export const MAX_AUDIT_DATA_BYTES = 64 * 1024;

/** What a component reports to the log (the log adds seq, time and the chain link). */
export interface AuditEvent {
  /** Dotted lowercase verb, e.g. `registry.push`, `gateway.decision`. */
  action: string;
  /** What the action was about, e.g. `mnist-cnn@3` or a request id. */
  subject?: string;
  /** Who did it; default: the log's actor ($USER). */
  actor?: string;
  /** Structured details (canonicalizable JSON, at most 64 KiB). */
  data?: JsonValue;
}

/** One record of the log, as hashed. */
export interface AuditRecord {
  v: typeof AUDIT_RECORD_VERSION;
  /** 1, 2, 3, ... without gaps. */
  seq: number;
  /** ISO 8601 UTC time the log appended it. */
  at: string;
  actor: string;
  action: string;
  subject: string;
  data: JsonValue;
  /** Hex SHA-256 of the previous record's canonical JSON. */
  prev: string;
}

const ACTION = /^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+){0,7}$/;

/** The canonical JSON text of a record (what is stored and hashed). */
export function recordText(r: AuditRecord): string {
  return canonicalJson(r, 'audit record');
}

/** Hex SHA-256 of a record's canonical JSON. */
export function recordHash(r: AuditRecord): string {
  return sha256Hex(recordText(r));
}

/** The actor to record when none is given: $USER, else the OS account name, else "unknown". */
export function defaultActor(): string {
  const env = process.env['USER'] ?? process.env['USERNAME'];
  if (env) return env;
  try {
    return os.userInfo().username || 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * Checks an event before it is appended.
 * @throws BulwarkError BULWARK_E_ARG naming the bad field
 */
export function checkEvent(e: AuditEvent): void {
  if (typeof e !== 'object' || e === null) throw new BulwarkError('BULWARK_E_ARG', 'audit event must be an object');
  if (typeof e.action !== 'string' || e.action.length > 64 || !ACTION.test(e.action)) {
    throw new BulwarkError('BULWARK_E_ARG', `audit event action ${JSON.stringify(e.action)} must be dotted lowercase words (e.g. gateway.decision), at most 64 characters`);
  }
  for (const k of ['subject', 'actor'] as const) {
    const v = e[k];
    if (v !== undefined && (typeof v !== 'string' || v.length > 512 || /[\u0000-\u001f\u007f]/.test(v))) {
      throw new BulwarkError('BULWARK_E_ARG', `audit event ${k} must be a string of at most 512 printable characters`);
    }
  }
  if (e.data !== undefined) {
    const text = canonicalJson(e.data, 'audit event data');
    if (Buffer.byteLength(text) > MAX_AUDIT_DATA_BYTES) throw new BulwarkError('BULWARK_E_LIMIT', `audit event data is ${Buffer.byteLength(text)} bytes; the limit is ${MAX_AUDIT_DATA_BYTES}`);
  }
}

/** Parses a stored record text; null when it is not a well-formed record. */
export function parseRecord(text: string): AuditRecord | null {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof j !== 'object' || j === null || Array.isArray(j)) return null;
  const o = j as Record<string, unknown>;
  const keys = Object.keys(o).sort().join(',');
  if (keys !== 'action,actor,at,data,prev,seq,subject,v') return null;
  if (o['v'] !== AUDIT_RECORD_VERSION || !Number.isSafeInteger(o['seq']) || (o['seq'] as number) < 1) return null;
  for (const k of ['at', 'actor', 'action', 'subject', 'prev']) if (typeof o[k] !== 'string') return null;
  if (!/^[0-9a-f]{64}$/.test(o['prev'] as string)) return null;
  return o as unknown as AuditRecord;
}
