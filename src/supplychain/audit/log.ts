/**
 * The append-only, hash-chained audit log, stored in the registry's database (tables `audit`,
 * `audit_checkpoints` and the head marker in `meta`).
 *
 * Each append runs inside a write transaction (the caller's, for registry changes, so the change and its record
 * commit together), links to the head marker's hash, moves the marker, and every `checkpointEvery` records signs
 * a checkpoint `(seq, hash)` with the audit key.
 */
import { BulwarkError } from '../../core/errors.js';
import type { SqlDb, SqlExecutor } from '../registry/sql.js';
import { canonicalJson, sha256Hex } from './canonical.js';
import type { AuditSigner, AuditVerifier } from './keys.js';
import { AUDIT_RECORD_VERSION, GENESIS_HASH, checkEvent, defaultActor, recordText, type AuditEvent, type AuditRecord } from './record.js';
import { CHECKPOINT_TYPE, checkpointMessage, checkpointText, verifyAuditRows, type AuditHead, type AuditVerifyResult, type CheckpointPayload, type StoredAuditRow, type StoredCheckpoint } from './verify.js';

/** Default number of records between two signed checkpoints. */
export const DEFAULT_CHECKPOINT_EVERY = 100;
const HEAD_KEY = 'audit.head';

/** Options of {@link AuditLog}. */
export interface AuditLogOptions {
  /** Signs checkpoints; without it no checkpoint is written (verification warns). */
  signer?: AuditSigner;
  /** Records between checkpoints (1 signs every record). Default 100. */
  checkpointEvery?: number;
  /** The actor of events that name none. Default $USER. */
  actor?: string;
}

/** DDL of the audit tables (and the shared `meta` table). */
export function auditDdl(db: SqlDb): string {
  return [
    `CREATE TABLE IF NOT EXISTS ${db.table('meta')} (key TEXT PRIMARY KEY, value TEXT NOT NULL)`,
    `CREATE TABLE IF NOT EXISTS ${db.table('audit')} (seq BIGINT PRIMARY KEY, record TEXT NOT NULL, hash TEXT NOT NULL)`,
    `CREATE TABLE IF NOT EXISTS ${db.table('audit_checkpoints')} (seq BIGINT PRIMARY KEY, payload TEXT NOT NULL, signatures TEXT NOT NULL)`,
  ].join(';\n');
}

/** A line of an audit export (JSON lines): a record's canonical JSON, a checkpoint, or the head marker. */
export type AuditExportLine = AuditRecord | { checkpoint: CheckpointPayload; signatures: unknown } | { head: AuditHead };

/**
 * The audit log of one database.
 * @example
 * const log = await AuditLog.open(db, { signer: loadAuditSigner('audit.key'), checkpointEvery: 50 });
 * await log.append({ action: 'gateway.decision', subject: 'req-42', data: { allowed: false, rule: 'rate' } });
 */
export class AuditLog {
  /** Records between checkpoints. */
  readonly checkpointEvery: number;
  private readonly signer: AuditSigner | undefined;
  private readonly actor: string;

  private constructor(
    /** The database the log lives in. */
    readonly db: SqlDb,
    options: AuditLogOptions,
  ) {
    const every = options.checkpointEvery ?? DEFAULT_CHECKPOINT_EVERY;
    if (!Number.isSafeInteger(every) || every < 1 || every > 1_000_000) throw new BulwarkError('BULWARK_E_ARG', `checkpointEvery must be an integer in [1, 1000000], got ${every}`);
    this.checkpointEvery = every;
    this.signer = options.signer;
    this.actor = options.actor ?? defaultActor();
  }

  /**
   * Opens the log in a database, creating its tables when missing.
   * @throws BulwarkError BULWARK_E_DB, BULWARK_E_ARG (bad options)
   */
  static async open(db: SqlDb, options: AuditLogOptions = {}): Promise<AuditLog> {
    const log = new AuditLog(db, options);
    await db.write((tx) => tx.exec(auditDdl(db)));
    return log;
  }

  /** Whether checkpoints are being signed. */
  get signing(): boolean {
    return this.signer !== undefined;
  }

  /**
   * Appends one event in its own transaction.
   * @returns the record as stored
   * @throws BulwarkError BULWARK_E_ARG (malformed event), BULWARK_E_LIMIT (data too large), BULWARK_E_DB
   */
  async append(event: AuditEvent): Promise<AuditRecord> {
    checkEvent(event);
    return this.db.write((tx) => this.appendIn(tx, event));
  }

  /**
   * Appends one event inside the caller's write transaction, so the change it records and the record commit
   * (or roll back) together. Call only from within {@link SqlDb.write}.
   */
  async appendIn(tx: SqlExecutor, event: AuditEvent): Promise<AuditRecord> {
    checkEvent(event);
    const head = await this.headIn(tx);
    const rec: AuditRecord = {
      v: AUDIT_RECORD_VERSION,
      seq: head.seq + 1,
      at: new Date().toISOString(),
      actor: event.actor ?? this.actor,
      action: event.action,
      subject: event.subject ?? '',
      data: event.data ?? null,
      prev: head.hash,
    };
    const text = recordText(rec);
    const hash = sha256Hex(text);
    await tx.run(`INSERT INTO ${this.db.table('audit')} (seq, record, hash) VALUES (?, ?, ?)`, [rec.seq, text, hash]);
    await this.setHead(tx, { seq: rec.seq, hash });
    if (this.signer) {
      const rows = await tx.all<{ m: unknown }>(`SELECT MAX(seq) AS m FROM ${this.db.table('audit_checkpoints')}`);
      const last = rows[0]?.m == null ? 0 : Number(rows[0].m);
      if (rec.seq - last >= this.checkpointEvery) await this.writeCheckpoint(tx, rec.seq, hash);
    }
    return rec;
  }

  /**
   * Signs a checkpoint of the current head now (at shutdown, or before handing an export over).
   * @returns the checkpoint, or null when the log is empty or the head already has one
   * @throws BulwarkError BULWARK_E_KEY when the log has no signer
   */
  checkpoint(): Promise<CheckpointPayload | null> {
    const signer = this.signer;
    if (!signer) throw new BulwarkError('BULWARK_E_KEY', 'no audit key: pass --audit-key (or set audit.signingKey in the policy) to sign checkpoints');
    return this.db.write(async (tx) => {
      const head = await this.headIn(tx);
      if (head.seq === 0) return null;
      const have = await tx.all(`SELECT seq FROM ${this.db.table('audit_checkpoints')} WHERE seq = ?`, [head.seq]);
      if (have.length > 0) return null;
      return this.writeCheckpoint(tx, head.seq, head.hash);
    });
  }

  private async writeCheckpoint(tx: SqlExecutor, seq: number, hash: string): Promise<CheckpointPayload> {
    const signer = this.signer!;
    const payload: CheckpointPayload = { type: CHECKPOINT_TYPE, v: 1, seq, hash, at: new Date().toISOString(), keyId: signer.keyId, alg: signer.alg };
    const text = checkpointText(payload);
    const sigs = signer.sign(checkpointMessage(text));
    await tx.run(`INSERT INTO ${this.db.table('audit_checkpoints')} (seq, payload, signatures) VALUES (?, ?, ?)`, [seq, text, canonicalJson(sigs)]);
    return payload;
  }

  /** The head marker, falling back to the last row and then to the genesis state. */
  private async headIn(tx: SqlExecutor): Promise<AuditHead> {
    const h = await this.readHead(tx);
    if (h) return h;
    const last = await tx.all<{ seq: unknown; hash: string }>(`SELECT seq, hash FROM ${this.db.table('audit')} ORDER BY seq DESC LIMIT 1`);
    if (last.length > 0) return { seq: Number(last[0]!.seq), hash: last[0]!.hash };
    return { seq: 0, hash: GENESIS_HASH };
  }

  private async readHead(tx: SqlExecutor): Promise<AuditHead | null> {
    const rows = await tx.all<{ value: string }>(`SELECT value FROM ${this.db.table('meta')} WHERE key = ?`, [HEAD_KEY]);
    if (rows.length === 0) return null;
    try {
      const j = JSON.parse(rows[0]!.value) as AuditHead;
      if (Number.isSafeInteger(j.seq) && typeof j.hash === 'string') return { seq: j.seq, hash: j.hash };
    } catch {
      // a damaged marker reads as missing; verification reports it
    }
    return null;
  }

  private async setHead(tx: SqlExecutor, head: AuditHead): Promise<void> {
    await tx.run(`INSERT INTO ${this.db.table('meta')} (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, [HEAD_KEY, canonicalJson(head)]);
  }

  /** Everything verification needs, read from one snapshot. */
  async snapshot(tx?: SqlExecutor): Promise<{ rows: StoredAuditRow[]; checkpoints: StoredCheckpoint[]; head: AuditHead | null }> {
    const go = async (t: SqlExecutor) => {
      const rows = (await t.all<{ seq: unknown; record: string; hash: string }>(`SELECT seq, record, hash FROM ${this.db.table('audit')} ORDER BY seq`)).map((r) => ({ seq: Number(r.seq), record: r.record, hash: r.hash }));
      const checkpoints = (await t.all<{ seq: unknown; payload: string; signatures: string }>(`SELECT seq, payload, signatures FROM ${this.db.table('audit_checkpoints')} ORDER BY seq`)).map((r) => ({
        seq: Number(r.seq),
        payload: r.payload,
        signatures: r.signatures,
      }));
      return { rows, checkpoints, head: await this.readHead(t) };
    };
    return tx ? go(tx) : this.db.read(go);
  }

  /**
   * Parsed records in sequence order (well-formed ones only; run {@link verify} to judge them).
   * @param filter only records whose action starts with this prefix
   */
  async records(filter?: { actionPrefix?: string }, tx?: SqlExecutor): Promise<AuditRecord[]> {
    const { rows } = await this.snapshot(tx);
    const out: AuditRecord[] = [];
    for (const r of rows) {
      try {
        const rec = JSON.parse(r.record) as AuditRecord;
        if (!filter?.actionPrefix || (typeof rec.action === 'string' && rec.action.startsWith(filter.actionPrefix))) out.push(rec);
      } catch {
        // skipped here; verify() reports it
      }
    }
    return out;
  }

  /**
   * Verifies the chain, the head marker and the checkpoints.
   * @param verifiers trusted checkpoint keys (none: signatures are not checked, and a warning says so)
   */
  async verify(verifiers: readonly AuditVerifier[] = []): Promise<AuditVerifyResult> {
    const s = await this.snapshot();
    return verifyAuditRows(s.rows, s.checkpoints, s.head, verifiers);
  }

  /**
   * Exports the log as JSON lines: each record's canonical JSON (so `sha256(line)` is its hash and the next
   * record's `prev`), each checkpoint as `{"checkpoint":...,"signatures":...}` after the record it signs, and a
   * last `{"head":...}` line.
   * @param write receives each line, newline included
   * @returns the number of records written
   */
  async exportJsonl(write: (line: string) => void | Promise<void>): Promise<number> {
    const s = await this.snapshot();
    const cps = new Map(s.checkpoints.map((c) => [c.seq, c] as const));
    for (const r of s.rows) {
      await write(r.record + '\n');
      const c = cps.get(r.seq);
      if (c) await write(`{"checkpoint":${c.payload},"signatures":${c.signatures}}\n`);
    }
    for (const c of s.checkpoints) if (!s.rows.some((r) => r.seq === c.seq)) await write(`{"checkpoint":${c.payload},"signatures":${c.signatures}}\n`);
    if (s.head) await write(`{"head":${canonicalJson(s.head)}}\n`);
    return s.rows.length;
  }
}

/**
 * Verifies an export written by {@link AuditLog.exportJsonl}. Record lines are hashed byte for byte as exported;
 * a record line out of sequence order is reported as reordered.
 * @param text the JSON lines
 * @param verifiers trusted checkpoint keys
 * @throws BulwarkError BULWARK_E_DATA_FORMAT naming the first line that is not JSON
 */
export function verifyAuditExport(text: string, verifiers: readonly AuditVerifier[] = []): AuditVerifyResult {
  const rows: StoredAuditRow[] = [];
  const checkpoints: StoredCheckpoint[] = [];
  const order: AuditVerifyResult['issues'] = [];
  let head: AuditHead | null = null;
  let lastSeq = 0;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '') continue;
    let j: Record<string, unknown>;
    try {
      j = JSON.parse(line) as Record<string, unknown>;
    } catch {
      throw new BulwarkError('BULWARK_E_DATA_FORMAT', `audit export line ${i + 1} is not JSON`);
    }
    if (j !== null && typeof j === 'object' && 'checkpoint' in j) {
      let payload: string;
      try {
        payload = canonicalJson(j['checkpoint']);
      } catch {
        payload = '';
      }
      checkpoints.push({ seq: Number((j['checkpoint'] as { seq?: unknown } | null)?.seq), payload, signatures: JSON.stringify(j['signatures'] ?? null) });
    } else if (j !== null && typeof j === 'object' && 'head' in j) {
      const h = j['head'] as Partial<AuditHead> | null;
      head = { seq: Number(h?.seq), hash: String(h?.hash) };
    } else {
      const inner = (j as { seq?: unknown } | null)?.seq;
      const seq = Number.isSafeInteger(inner) && (inner as number) > 0 ? (inner as number) : lastSeq + 1;
      if (seq <= lastSeq) order.push({ kind: 'reordered', seq, message: `line ${i + 1} holds record ${seq} after record ${lastSeq}: records were reordered` });
      if (rows.some((r) => r.seq === seq)) {
        order.push({ kind: 'inserted', seq, message: `line ${i + 1} holds a second copy of record ${seq}` });
        continue;
      }
      rows.push({ seq, record: line, hash: sha256Hex(line) });
      lastSeq = Math.max(lastSeq, seq);
    }
  }
  const r = verifyAuditRows(rows, checkpoints, head, verifiers);
  const issues = [...r.issues, ...order].sort((a, b) => a.seq - b.seq);
  return { ...r, ok: issues.length === 0, issues };
}
