/**
 * Verification of a stored audit log: the hash chain, the head marker and the signed checkpoints. It is a pure
 * function of what the database holds, so it can run on an export as well as on a live table.
 *
 * What it finds, located by sequence number:
 * - edited: a record whose text no longer matches its stored hash, or whose successor chains to another hash
 *   (the record was rewritten together with its stored hash), or that differs from a signed checkpoint;
 * - deleted: a gap in the sequence;
 * - reordered: a record stored at another position than the sequence number it was hashed with;
 * - truncated: records missing at the end (the head marker or a checkpoint names a later record);
 * - inserted: records past the head marker (written around the log);
 * - checkpoint: a checkpoint whose signature is missing, does not verify, or is by an untrusted key.
 */
import { BulwarkError } from '../../core/errors.js';
import { preAuthEncoding } from '../signing/dsse.js';
import { canonicalJson, sha256Hex } from './canonical.js';
import type { AuditVerifier, CheckpointAlg, CheckpointSignatures } from './keys.js';
import { GENESIS_HASH, parseRecord, recordText, type AuditRecord } from './record.js';

/** DSSE payload type of a checkpoint (the signatures cover its pre-authentication encoding). */
export const CHECKPOINT_PAYLOAD_TYPE = 'application/vnd.bulwark.audit-checkpoint+json';
/** The `type` field of a checkpoint payload. */
export const CHECKPOINT_TYPE = 'bulwark.audit.checkpoint';

/** A row of the audit table. */
export interface StoredAuditRow {
  seq: number;
  /** The record's canonical JSON. */
  record: string;
  /** Hex SHA-256 of `record`. */
  hash: string;
}

/** What a checkpoint signs: the log's state at `seq`. */
export interface CheckpointPayload {
  type: typeof CHECKPOINT_TYPE;
  v: 1;
  seq: number;
  /** Hash of record `seq`. */
  hash: string;
  at: string;
  keyId: string;
  alg: CheckpointAlg;
}

/** A row of the checkpoint table. */
export interface StoredCheckpoint {
  seq: number;
  /** Canonical JSON of a {@link CheckpointPayload}. */
  payload: string;
  /** JSON of {@link CheckpointSignatures}. */
  signatures: string;
}

/** The head marker: the last record the log appended. */
export interface AuditHead {
  seq: number;
  hash: string;
}

/** Kinds of damage {@link verifyAuditRows} reports. */
export type AuditIssueKind = 'edited' | 'deleted' | 'reordered' | 'truncated' | 'inserted' | 'head' | 'checkpoint';

/** One finding of a verification. */
export interface AuditIssue {
  kind: AuditIssueKind;
  /** The (first) sequence number concerned. */
  seq: number;
  /** The last sequence number, when the issue spans a range. */
  toSeq?: number;
  message: string;
}

/** The result of verifying a log. */
export interface AuditVerifyResult {
  /** True when no issue was found. */
  ok: boolean;
  /** Rows read. */
  records: number;
  /** Highest sequence number present (0 when empty). */
  lastSeq: number;
  head: AuditHead | null;
  checkpoints: { total: number; verified: number; lastVerifiedSeq: number | null };
  /** Sorted by sequence number. */
  issues: AuditIssue[];
  /** Limits of what could be checked (no key given, records after the last checkpoint). */
  warnings: string[];
}

/** The bytes a checkpoint's signatures cover. */
export function checkpointMessage(payloadText: string): Buffer {
  return preAuthEncoding(CHECKPOINT_PAYLOAD_TYPE, Buffer.from(payloadText, 'utf8'));
}

/** Canonical text of a checkpoint payload. */
export function checkpointText(p: CheckpointPayload): string {
  return canonicalJson(p, 'checkpoint');
}

function parseCheckpoint(cp: StoredCheckpoint): { payload: CheckpointPayload; sigs: CheckpointSignatures } | string {
  let p: unknown;
  let s: unknown;
  try {
    p = JSON.parse(cp.payload);
    s = JSON.parse(cp.signatures);
  } catch {
    return 'is not valid JSON';
  }
  const o = p as Record<string, unknown>;
  if (typeof o !== 'object' || o === null || o['type'] !== CHECKPOINT_TYPE || o['v'] !== 1 || !Number.isSafeInteger(o['seq']) || typeof o['hash'] !== 'string' || typeof o['keyId'] !== 'string' || typeof o['at'] !== 'string') {
    return 'is not a checkpoint payload';
  }
  if (o['alg'] !== 'ed25519' && o['alg'] !== 'hybrid-ed25519-ml-dsa-65') return `names an unknown signature scheme ${JSON.stringify(o['alg'])}`;
  let canonical: string;
  try {
    canonical = checkpointText(o as unknown as CheckpointPayload);
  } catch {
    return 'is not canonical JSON';
  }
  if (canonical !== cp.payload) return 'is not in canonical form (it was edited)';
  const sg = s as Record<string, unknown>;
  if (typeof sg !== 'object' || sg === null || typeof sg['ed25519'] !== 'string') return 'has no signatures';
  return { payload: o as unknown as CheckpointPayload, sigs: sg as unknown as CheckpointSignatures };
}

interface Entry {
  seq: number;
  col: number;
  rec: AuditRecord | null;
  hash: string;
}

/**
 * Verifies an audit log from its stored rows.
 * @param rows the audit table (any order)
 * @param checkpoints the checkpoint table
 * @param head the head marker, or null when absent
 * @param verifiers trusted checkpoint keys; when empty, checkpoint signatures are not checked (a warning says so)
 * @returns every issue found, located by sequence number
 * @example const r = verifyAuditRows(rows, cps, head, [loadAuditVerifier('audit.pub')]); if (!r.ok) console.log(r.issues);
 */
export function verifyAuditRows(rows: readonly StoredAuditRow[], checkpoints: readonly StoredCheckpoint[], head: AuditHead | null, verifiers: readonly AuditVerifier[] = []): AuditVerifyResult {
  const issues: AuditIssue[] = [];
  const warnings: string[] = [];
  const add = (kind: AuditIssueKind, seq: number, message: string, toSeq?: number): void => {
    issues.push({ kind, seq, ...(toSeq !== undefined && toSeq !== seq ? { toSeq } : {}), message });
  };
  const range = (a: number, b: number): string => (a === b ? `record ${a}` : `records ${a}..${b}`);

  // 1. Each row on its own: well-formed, canonical, matching its stored hash, stored at its own position.
  const sorted = [...rows].sort((a, b) => a.seq - b.seq);
  const entries: Entry[] = [];
  for (const row of sorted) {
    const rec = parseRecord(row.record);
    if (!rec) {
      add('edited', row.seq, `record ${row.seq} is not a well-formed audit record (it was edited)`);
      entries.push({ seq: row.seq, col: row.seq, rec: null, hash: row.hash });
      continue;
    }
    let canonical = '';
    try {
      canonical = recordText(rec);
    } catch {
      canonical = '';
    }
    if (canonical !== row.record) add('edited', row.seq, `record ${row.seq} is not in canonical form (it was edited)`);
    else if (sha256Hex(row.record) !== row.hash) add('edited', row.seq, `record ${row.seq} was modified: its content no longer matches its hash`);
    if (rec.seq !== row.seq) add('reordered', row.seq, `position ${row.seq} holds record ${rec.seq}: records were reordered`);
    entries.push({ seq: rec.seq, col: row.seq, rec, hash: row.hash });
  }

  // 2. The chain, in the order the records were hashed with.
  entries.sort((a, b) => a.seq - b.seq || a.col - b.col);
  const chain: Entry[] = [];
  for (const e of entries) {
    const last = chain[chain.length - 1];
    if (last && last.seq === e.seq) {
      add('inserted', e.col, `position ${e.col} holds a second copy of record ${e.seq}`);
      continue;
    }
    chain.push(e);
  }
  let expected = 1;
  let prev: Entry | null = null;
  for (const e of chain) {
    let linked = true;
    if (e.seq > expected) {
      add('deleted', expected, `${range(expected, e.seq - 1)} ${expected === e.seq - 1 ? 'is' : 'are'} missing (deleted)`, e.seq - 1);
      linked = false;
    }
    if (linked && e.rec && (prev === null || prev.rec !== null)) {
      const want = prev ? prev.hash : GENESIS_HASH;
      if (e.rec.prev !== want) {
        if (prev === null) add('edited', e.seq, `record ${e.seq} does not start from the genesis hash`);
        else add('edited', prev.seq, `record ${prev.seq} was rewritten: record ${e.seq} chains to a different hash (record ${prev.seq} and its stored hash were changed, or record ${e.seq}'s link was)`);
      }
    }
    prev = e;
    expected = e.seq + 1;
  }
  const lastSeq = chain.length ? chain[chain.length - 1]!.seq : 0;
  const bySeq = new Map(chain.map((e) => [e.seq, e] as const));

  // 3. The head marker: written in the same transaction as every record.
  let claimedEnd = lastSeq;
  const truncationEvidence: string[] = [];
  if (head) {
    if (head.seq > lastSeq) {
      claimedEnd = head.seq;
      truncationEvidence.push(`the head marker names record ${head.seq}`);
    } else if (head.seq < lastSeq) {
      add('inserted', head.seq + 1, `${range(head.seq + 1, lastSeq)} come after the head marker (${head.seq}): written around the log`, lastSeq);
    } else if (bySeq.get(lastSeq)!.hash !== head.hash) {
      add('edited', lastSeq, `record ${lastSeq} (the last) does not match the head marker: it was rewritten`);
    }
  } else if (rows.length > 0) {
    add('head', lastSeq, 'the head marker is missing (it is written with every record): the log was tampered with');
  }

  // 4. Checkpoints: signed (seq, hash) pairs.
  const trusted = new Map(verifiers.map((v) => [v.keyId, v] as const));
  let verified = 0;
  let lastVerifiedSeq: number | null = null;
  let prevCheckpointSeq = 0;
  const cps = [...checkpoints].sort((a, b) => a.seq - b.seq);
  for (const cp of cps) {
    const parsed = parseCheckpoint(cp);
    if (typeof parsed === 'string') {
      add('checkpoint', cp.seq, `checkpoint at record ${cp.seq} ${parsed}`);
      continue;
    }
    const { payload, sigs } = parsed;
    if (payload.seq !== cp.seq) {
      add('checkpoint', cp.seq, `checkpoint stored at record ${cp.seq} signs record ${payload.seq}`);
      continue;
    }
    let authentic = false;
    if (trusted.size > 0) {
      const v = trusted.get(payload.keyId);
      if (!v) add('checkpoint', cp.seq, `checkpoint at record ${cp.seq} is signed by key ${payload.keyId.slice(0, 24)}..., which is not a trusted audit key`);
      else if (v.alg !== payload.alg) add('checkpoint', cp.seq, `checkpoint at record ${cp.seq} uses ${payload.alg}; the trusted key signs with ${v.alg}`);
      else if (!v.verify(checkpointMessage(cp.payload), sigs)) add('checkpoint', cp.seq, `checkpoint at record ${cp.seq}: the signature does not verify (the checkpoint was forged or edited)`);
      else {
        authentic = true;
        verified++;
        lastVerifiedSeq = cp.seq;
      }
    }
    if (payload.seq > lastSeq) {
      if (payload.seq > claimedEnd) claimedEnd = payload.seq;
      truncationEvidence.push(`${authentic ? 'a signed' : 'an unverified'} checkpoint names record ${payload.seq}`);
    } else {
      const e = bySeq.get(payload.seq);
      if (e && e.hash !== payload.hash) {
        add('edited', prevCheckpointSeq + 1, `record ${payload.seq} does not match the ${authentic ? 'signed' : 'unverified'} checkpoint: ${range(prevCheckpointSeq + 1, payload.seq)} were rewritten`, payload.seq);
      }
    }
    prevCheckpointSeq = payload.seq;
  }
  if (claimedEnd > lastSeq) {
    add('truncated', lastSeq + 1, `the log ends at record ${lastSeq} but ${truncationEvidence.join(' and ')}: ${range(lastSeq + 1, claimedEnd)} were removed (truncated)`, claimedEnd);
  }

  if (cps.length > 0 && trusted.size === 0) warnings.push(`${cps.length} checkpoint signature(s) not checked: no trusted audit key was given`);
  if (rows.length > 0 && cps.length === 0) warnings.push('the log has no signed checkpoints: only the hash chain and the head marker protect it (configure an audit key)');
  const coveredTo = lastVerifiedSeq ?? 0;
  if (trusted.size > 0 && lastSeq > coveredTo) warnings.push(`${range(coveredTo + 1, lastSeq)} ${coveredTo + 1 === lastSeq ? 'is' : 'are'} after the last verified checkpoint: a rewrite of them together with the head marker would not be detected`);

  issues.sort((a, b) => a.seq - b.seq);
  return { ok: issues.length === 0, records: rows.length, lastSeq, head, checkpoints: { total: cps.length, verified, lastVerifiedSeq }, issues, warnings };
}

/** Throws unless `r.ok`, for code paths that must refuse a damaged log. */
export function assertAuditIntact(r: AuditVerifyResult): void {
  if (r.ok) return;
  throw new BulwarkError('BULWARK_E_REGISTRY_INTEGRITY', `the audit log failed verification: ${r.issues.map((i) => i.message).join('; ')}`, { details: { issues: r.issues } });
}
