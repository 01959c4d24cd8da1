/**
 * The model registry: content-addressed model files with immutable versions, movable aliases (production,
 * staging, or any name) with recorded rollback, lineage per version, a signature policy enforced on push and on
 * load, and an audit record for every change.
 *
 * Crash safety: a push stages and fsyncs the blob, renames it to its address, and only then writes the version
 * row, the alias moves and the audit record in ONE database transaction. A process killed anywhere leaves either
 * nothing, an unreferenced blob (reported by verify, harmless), or the complete version; never a version without
 * its blob, an alias to a missing version, or a change without its audit record.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { BulwarkError } from '../../core/errors.js';
import { parseEnvelope, serializeEnvelope, type DsseEnvelope } from '../signing/dsse.js';
import { readSignature } from '../signing/sign.js';
import type { ScanResult } from '../scan/scanner.js';
import { canonicalJson, type JsonObject, type JsonValue } from '../audit/canonical.js';
import { AuditLog, auditDdl } from '../audit/log.js';
import type { AuditEvent, AuditRecord } from '../audit/record.js';
import { defaultActor } from '../audit/record.js';
import type { AuditVerifier } from '../audit/keys.js';
import { verifyAuditRows, type AuditVerifyResult } from '../audit/verify.js';
import { buildMlBom, type CycloneDxBom, type MlBomOptions } from '../bom/cyclonedx.js';
import { BlobStore } from './blobs.js';
import { resolvePolicy, type PolicyOverrides, type RegistryPolicy } from './policy.js';
import { assertSignatureValid, verifyBlobSignature } from './signature.js';
import { openSqlDb, type SqlDb, type SqlExecutor } from './sql.js';

/** Model names: letters, digits, `.`, `_`, `-` (no `@`, `/` or `:`), at most 128 characters. */
export const MODEL_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** Version and alias names: letters, digits, `.`, `_`, `+`, `-`, at most 64 characters. */
export const TAG_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/;
/** A reference that always means the most recently pushed version. */
export const LATEST = 'latest';
/** The schema version of the registry tables. */
export const REGISTRY_SCHEMA_VERSION = 1;

const MAX_JSON_BYTES = 1024 * 1024;
const MAX_SCAN_ITEMS = 100;

/** A dataset the model was trained or evaluated on. */
export interface DatasetRef {
  /** A name for it (a data spec like `mnist:train[0:1000]`, a file name, a dataset id). */
  name: string;
  /** Hex SHA-256 of its bytes, when known. */
  sha256?: string;
  /** Its size in bytes, when hashed. */
  size?: number;
  /** Where it lives (URL, path, or data spec). */
  uri?: string;
  /** Default "training". */
  role?: 'training' | 'validation' | 'test' | 'other';
}

/** What {@link PushOptions.data} accepts: a reference, or a local file to hash. */
export type DatasetInput = DatasetRef | { path: string; name?: string; role?: DatasetRef['role'] };

/** Training facts of a version. */
export interface TrainingInfo {
  /** Hyper-parameters, architecture and other settings. */
  config?: JsonObject;
  /** Final metrics (accuracy, loss, ...). */
  metrics?: Record<string, number>;
  /** The `format` of the training record these came from, if any (e.g. `bulwark.train-record/1`). */
  recordFormat?: string;
}

/** Where a version comes from. */
export interface Lineage {
  /** The version it was derived from (fine-tuned, retrained, hardened), with that version's digest. */
  parent: { name: string; version: string; digest: string } | null;
  /** Training and evaluation data, with hashes where known. */
  data: DatasetRef[];
  training: TrainingInfo | null;
  /** The scanner's report on the stored bytes (findings and items capped at 100), or null when not scanned. */
  scan: JsonObject | null;
  /** Who pushed it (an option, else $USER). */
  createdBy: string;
  /** When (ISO 8601 UTC). */
  createdAt: string;
}

/** A version as the registry describes it. */
export interface VersionInfo {
  name: string;
  version: string;
  /** 1 for the first push of this name, 2 for the second, ... */
  ordinal: number;
  /** Hex SHA-256 of the model bytes (its blob address). */
  digest: string;
  size: number;
  /** The file name it was pushed as. */
  filename: string;
  createdAt: string;
  createdBy: string;
  /** Aliases pointing at it now. */
  aliases: string[];
  lineage: Lineage;
  /** The signature stored with it: the key id that verified at push (null when it could not be checked). */
  signature: { keyId: string | null } | null;
  /** Sequence number of the audit record of its push. */
  auditSeq: number;
}

/** One registered model. */
export interface ModelSummary {
  name: string;
  versions: number;
  latest: string;
  aliases: Record<string, string>;
}

/** A recorded alias move. */
export interface AliasMove {
  name: string;
  alias: string;
  /** The version it pointed to before (null when it was created). */
  from: string | null;
  to: string;
  action: 'set' | 'rollback';
  at: string;
  by: string;
  auditSeq: number;
}

/** Options of {@link Registry.push}. */
export interface PushOptions {
  name: string;
  /** Default: the next ordinal ("1", "2", ...). */
  version?: string;
  /** The DSSE envelope or its file; default `<file>.sig` when that file exists. `null`: push unsigned. */
  signature?: string | DsseEnvelope | null;
  /** The parent: a version or alias of the same model, or `name@ref` of another. */
  parent?: string;
  data?: DatasetInput[];
  /** A training record (`bulwark train` writes `<model>.train.json`), file or object; default `<file>.train.json` when present. `null`: none. */
  trainingRecord?: string | JsonObject | null;
  /** Training settings (merged over the record's). */
  trainingConfig?: JsonObject;
  /** Metrics (merged over the record's). */
  metrics?: Record<string, number>;
  /** Who pushes; default the registry's actor ($USER). */
  by?: string;
  /** Aliases to point at the new version in the same transaction. */
  aliases?: string[];
  /** The file name to record; default the base name of the file. */
  filename?: string;
}

/** The result of a push. */
export interface PushResult {
  info: VersionInfo;
  /** Things that did not stop the push (an unverified signature, scan findings below the refusal threshold). */
  warnings: string[];
}

/** A problem {@link Registry.verify} found. */
export interface RegistryIssue {
  kind: 'blob-missing' | 'blob-corrupt' | 'signature' | 'alias' | 'metadata' | 'audit';
  /** `name@version`, `name#alias`, or `audit#seq`. */
  subject: string;
  message: string;
}

/** The result of {@link Registry.verify}. */
export interface RegistryVerifyResult {
  ok: boolean;
  versions: number;
  aliases: number;
  issues: RegistryIssue[];
  warnings: string[];
  audit: AuditVerifyResult;
}

/** Options of {@link openRegistry}. */
export interface RegistryOptions extends PolicyOverrides {
  /** The registry folder (blobs, the default SQLite database, the default policy file). */
  root: string;
  /** A SQLite path or `sqlite:PATH`, or `postgres://...`; default `<root>/registry.db`. */
  db?: string;
  /** PostgreSQL schema (or `?schema=` in the URL). */
  schema?: string;
  /** Table name prefix. */
  tablePrefix?: string;
  /** An explicit policy file; default `<root>/policy.json` when it exists. */
  policyFile?: string;
  /** Who is acting, for lineage and audit; default $USER. */
  actor?: string;
  /** false: fail instead of creating a new SQLite registry (read-only commands). Default true. */
  create?: boolean;
}

interface VersionRow {
  name: string;
  version: string;
  ordinal: unknown;
  digest: string;
  size: unknown;
  filename: string;
  created_at: string;
  created_by: string;
  lineage: string;
  signature: string | null;
  signer: string | null;
  audit_seq: unknown;
}

function registryDdl(db: SqlDb): string {
  const t = (n: Parameters<SqlDb['table']>[0]) => db.table(n);
  return [
    `CREATE TABLE IF NOT EXISTS ${t('versions')} (name TEXT NOT NULL, version TEXT NOT NULL, ordinal BIGINT NOT NULL, digest TEXT NOT NULL, size BIGINT NOT NULL, filename TEXT NOT NULL, created_at TEXT NOT NULL, created_by TEXT NOT NULL, lineage TEXT NOT NULL, signature TEXT, signer TEXT, audit_seq BIGINT NOT NULL, PRIMARY KEY (name, version), UNIQUE (name, ordinal))`,
    `CREATE TABLE IF NOT EXISTS ${t('aliases')} (name TEXT NOT NULL, alias TEXT NOT NULL, version TEXT NOT NULL, updated_at TEXT NOT NULL, updated_by TEXT NOT NULL, audit_seq BIGINT NOT NULL, PRIMARY KEY (name, alias), FOREIGN KEY (name, version) REFERENCES ${t('versions')} (name, version))`,
    `CREATE TABLE IF NOT EXISTS ${t('alias_moves')} (audit_seq BIGINT NOT NULL, name TEXT NOT NULL, alias TEXT NOT NULL, from_version TEXT, to_version TEXT NOT NULL, action TEXT NOT NULL, at TEXT NOT NULL, by_user TEXT NOT NULL, PRIMARY KEY (audit_seq, alias))`,
  ].join(';\n');
}

/**
 * Splits `name@ref` (ref: a version, an alias, or `latest`; absent means latest).
 * @throws BulwarkError BULWARK_E_ARG on a malformed reference
 */
export function parseModelRef(s: string, what = 'model reference'): { name: string; ref: string | undefined } {
  const at = s.indexOf('@');
  const name = at < 0 ? s : s.slice(0, at);
  const ref = at < 0 ? undefined : s.slice(at + 1);
  checkName(name, what);
  if (ref !== undefined) checkTag(ref, `${what} version or alias`);
  return { name, ref };
}

function checkName(name: string, what: string): void {
  if (typeof name !== 'string' || !MODEL_NAME_PATTERN.test(name)) {
    throw new BulwarkError('BULWARK_E_ARG', `${what}: model name ${JSON.stringify(name)} must be letters, digits, '.', '_' or '-' (at most 128, starting with a letter or digit)`);
  }
}

function checkTag(tag: string, what: string): void {
  if (typeof tag !== 'string' || !TAG_PATTERN.test(tag)) {
    throw new BulwarkError('BULWARK_E_ARG', `${what} ${JSON.stringify(tag)} must be letters, digits, '.', '_', '+' or '-' (at most 64, starting with a letter or digit)`);
  }
}

function checkActor(by: string): string {
  if (typeof by !== 'string' || by.length === 0 || by.length > 128 || /[\u0000-\u001f\u007f]/.test(by)) throw new BulwarkError('BULWARK_E_ARG', '--by must be 1 to 128 printable characters');
  return by;
}

function checkFilename(f: string): string {
  if (f.length === 0 || f.length > 255 || f === '.' || f === '..' || /[/\\\u0000-\u001f\u007f]/.test(f)) throw new BulwarkError('BULWARK_E_ARG', `file name ${JSON.stringify(f)} must be a plain file name`);
  return f;
}

function boundedJson(v: unknown, what: string): string {
  const text = canonicalJson(v, what);
  if (Buffer.byteLength(text) > MAX_JSON_BYTES) throw new BulwarkError('BULWARK_E_LIMIT', `${what} is ${Buffer.byteLength(text)} bytes of JSON; the limit is ${MAX_JSON_BYTES}`);
  return text;
}

function readJsonFile(file: string, what: string): JsonValue {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    throw new BulwarkError('BULWARK_E_FILE_NOT_FOUND', `${what}: no such file: ${file}`);
  }
  if (!st.isFile() || st.size > MAX_JSON_BYTES) throw new BulwarkError('BULWARK_E_FILE_READ', `${what}: ${file} is not a JSON file of at most 1 MiB`);
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as JsonValue;
  } catch {
    throw new BulwarkError('BULWARK_E_DATA_FORMAT', `${what}: ${file} is not valid JSON`);
  }
}

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

async function hashFile(file: string, what: string): Promise<{ sha256: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  try {
    const st = await fs.promises.stat(file);
    if (!st.isFile()) throw new BulwarkError('BULWARK_E_FILE_READ', `${what}: not a regular file: ${file}`);
    for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 })) {
      h.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
  } catch (e) {
    if (e instanceof BulwarkError) throw e;
    throw new BulwarkError('BULWARK_E_FILE_NOT_FOUND', `${what}: cannot read ${file}: ${(e as Error).message}`);
  }
  return { sha256: h.digest('hex'), size };
}

function checkMetrics(m: unknown, what: string): Record<string, number> {
  if (!isObject(m)) throw new BulwarkError('BULWARK_E_ARG', `${what} must be an object of name: number`);
  for (const [k, v] of Object.entries(m)) {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new BulwarkError('BULWARK_E_ARG', `${what}.${k} must be a finite number`);
  }
  return m as Record<string, number>;
}

/** Lineage facts taken from a `bulwark.train-record/1` (what `bulwark train` writes beside a model). */
function fromTrainRecord(rec: JsonObject, digest: string, what: string): { training: TrainingInfo; data: DatasetRef[] } {
  const fmt = typeof rec['format'] === 'string' ? rec['format'] : undefined;
  if (fmt !== undefined && !fmt.startsWith('bulwark.train-record/')) throw new BulwarkError('BULWARK_E_DATA_FORMAT', `${what}: unknown training record format ${JSON.stringify(fmt)}`);
  const sha = rec['modelSha256'];
  if (typeof sha === 'string' && sha !== digest) {
    throw new BulwarkError('BULWARK_E_ARG', `${what}: the training record is for the model sha256:${sha.slice(0, 16)}..., not for this file (sha256:${digest.slice(0, 16)}...)`, {
      hint: 'Pass the record written with this model (bulwark train writes <model>.train.json), or --no-training-record.',
    });
  }
  const config: JsonObject = {};
  for (const k of ['arch', 'parameters', 'inputShape', 'numClasses', 'hyperparameters', 'seed']) if (rec[k] !== undefined) config[k] = rec[k]!;
  const metrics: Record<string, number> = {};
  const fin = rec['final'];
  if (isObject(fin)) for (const [k, v] of Object.entries(fin)) if (typeof v === 'number' && Number.isFinite(v)) metrics[k] = v;
  const data: DatasetRef[] = [];
  const d = rec['data'];
  if (isObject(d) && typeof d['spec'] === 'string') data.push({ name: d['spec'], uri: d['spec'], role: 'training' });
  const val = rec['validation'];
  if (isObject(val) && typeof val['spec'] === 'string') data.push({ name: val['spec'], uri: val['spec'], role: 'validation' });
  return { training: { config, metrics, ...(fmt ? { recordFormat: fmt } : {}) }, data };
}

async function scanSummary(r: ScanResult): Promise<JsonObject> {
  const { renderJson } = await import('../scan/report.js');
  const j = renderJson(r) as Record<string, unknown>;
  const findings = r.findings.slice(0, MAX_SCAN_ITEMS);
  const scanned = r.scanned.slice(0, MAX_SCAN_ITEMS);
  // Round-trip through JSON: the report is plain data, and this drops undefined fields canonical JSON refuses.
  return JSON.parse(
    JSON.stringify({
      ...j,
      findings,
      scanned,
      ...(r.findings.length > findings.length ? { findingsOmitted: r.findings.length - findings.length } : {}),
      ...(r.scanned.length > scanned.length ? { scannedOmitted: r.scanned.length - scanned.length } : {}),
    }),
  ) as JsonObject;
}

/**
 * Opens a registry: the blob folder, the metadata database (created and migrated when needed), the policy and
 * the audit log.
 * @throws BulwarkError BULWARK_E_DB, BULWARK_E_REGISTRY_CONFIG, BULWARK_E_KEY, BULWARK_E_REGISTRY_NOT_FOUND
 * @example
 * const reg = await openRegistry({ root: 'registry', requireSignature: true, trustedKeys: ['keys/release.pub'] });
 * const { info } = await reg.push('model.onnx', { name: 'mnist-cnn', aliases: ['staging'] });
 * await reg.close();
 */
export async function openRegistry(options: RegistryOptions): Promise<Registry> {
  if (typeof options.root !== 'string' || options.root.length === 0) throw new BulwarkError('BULWARK_E_USAGE', 'missing the registry root (--root DIR)');
  const root = path.resolve(options.root);
  if (options.create === false && !options.db && !fs.existsSync(root)) {
    throw new BulwarkError('BULWARK_E_REGISTRY_NOT_FOUND', `no registry at ${root}`, { hint: 'Check --root; a registry is created by its first `bulwark registry push`.' });
  }
  const policy = resolvePolicy(root, options.policyFile, options);
  const db = await openSqlDb({
    url: options.db ?? path.join(root, 'registry.db'),
    ...(options.schema ? { schema: options.schema } : {}),
    ...(options.tablePrefix ? { tablePrefix: options.tablePrefix } : {}),
    create: options.create !== false,
  });
  try {
    await db.write(async (tx) => {
      await tx.exec(auditDdl(db));
      await tx.exec(registryDdl(db));
      const v = await tx.all<{ value: string }>(`SELECT value FROM ${db.table('meta')} WHERE key = ?`, ['registry.schema']);
      if (v.length === 0) await tx.run(`INSERT INTO ${db.table('meta')} (key, value) VALUES (?, ?)`, ['registry.schema', String(REGISTRY_SCHEMA_VERSION)]);
      else if (Number(v[0]!.value) > REGISTRY_SCHEMA_VERSION) throw new BulwarkError('BULWARK_E_DB', `${db.location}: the registry schema is version ${v[0]!.value}; this Bulwark reads version ${REGISTRY_SCHEMA_VERSION}`);
    });
    const audit = await AuditLog.open(db, { ...(policy.auditSigner ? { signer: policy.auditSigner } : {}), checkpointEvery: policy.checkpointEvery, actor: options.actor ?? defaultActor() });
    return new Registry(root, db, policy, audit, options.actor ?? defaultActor());
  } catch (e) {
    await db.close().catch(() => undefined);
    throw e;
  }
}

/** Opens a registry, runs `fn` with it, and closes it whatever happens. */
export async function withRegistry<T>(options: RegistryOptions, fn: (r: Registry) => Promise<T>): Promise<T> {
  const reg = await openRegistry(options);
  try {
    return await fn(reg);
  } finally {
    await reg.close();
  }
}

/** An open registry. Close it when done. */
export class Registry {
  /** The blob folder. */
  readonly blobs: BlobStore;

  /** @internal use {@link openRegistry}. */
  constructor(
    /** The registry folder. */
    readonly root: string,
    /** The metadata database. */
    readonly db: SqlDb,
    /** The policy in force. */
    readonly policy: RegistryPolicy,
    /** The audit log (same database). */
    readonly audit: AuditLog,
    private readonly actor: string,
  ) {
    this.blobs = new BlobStore(root);
  }

  private t(name: Parameters<SqlDb['table']>[0]): string {
    return this.db.table(name);
  }

  /**
   * Appends an event to the registry's audit log (for components that record their own decisions).
   * @throws BulwarkError BULWARK_E_ARG, BULWARK_E_LIMIT, BULWARK_E_DB
   */
  appendAudit(event: AuditEvent): Promise<AuditRecord> {
    return this.audit.append(event);
  }

  /**
   * Pushes a model file as a new, immutable version.
   *
   * Order of work: stage the bytes (hashing them), check the signature against the staged digest, scan the staged
   * bytes, commit the blob, then one transaction: version row, aliases, audit record. A refusal leaves nothing.
   * @param file the model file
   * @throws BulwarkError BULWARK_E_REGISTRY_POLICY (unsigned / untrusted / tampered / unsafe; exit 1),
   *   BULWARK_E_REGISTRY_CONFLICT (the version exists), BULWARK_E_REGISTRY_NOT_FOUND (parent), file and DB errors
   */
  async push(file: string, opts: PushOptions): Promise<PushResult> {
    checkName(opts.name, 'push');
    if (opts.version !== undefined) {
      checkTag(opts.version, 'version');
      if (opts.version === LATEST) throw new BulwarkError('BULWARK_E_ARG', `"${LATEST}" is reserved; choose another version name`);
    }
    for (const a of opts.aliases ?? []) {
      checkTag(a, 'alias');
      if (a === LATEST) throw new BulwarkError('BULWARK_E_ARG', `"${LATEST}" is reserved; choose another alias`);
    }
    const by = checkActor(opts.by ?? this.actor);
    const filename = checkFilename(opts.filename ?? path.basename(file));
    const warnings: string[] = [];

    // Signature envelope (read before staging so a malformed one fails fast).
    let envelope: DsseEnvelope | null = null;
    if (opts.signature === undefined) {
      if (fs.existsSync(`${file}.sig`)) envelope = readSignature(`${file}.sig`).envelope;
    } else if (typeof opts.signature === 'string') envelope = readSignature(opts.signature).envelope;
    else if (opts.signature !== null) envelope = parseEnvelope(opts.signature).envelope;

    // Lineage inputs that do not depend on the bytes.
    const data: DatasetRef[] = [];
    for (const d of opts.data ?? []) {
      if ('path' in d && typeof d.path === 'string') {
        const h = await hashFile(d.path, '--data');
        data.push({ name: d.name ?? path.basename(d.path), sha256: h.sha256, size: h.size, uri: d.path, role: d.role ?? 'training' });
      } else {
        const r = d as DatasetRef;
        if (typeof r.name !== 'string' || r.name.length === 0 || r.name.length > 512) throw new BulwarkError('BULWARK_E_ARG', 'a dataset needs a name of 1 to 512 characters');
        if (r.sha256 !== undefined && !/^[0-9a-f]{64}$/.test(r.sha256)) throw new BulwarkError('BULWARK_E_ARG', `dataset ${r.name}: sha256 must be 64 lowercase hex characters`);
        data.push({ ...r, role: r.role ?? 'training' });
      }
    }
    let record: JsonObject | null = null;
    let recordWhat = '--training-record';
    if (opts.trainingRecord === undefined) {
      if (fs.existsSync(`${file}.train.json`)) {
        recordWhat = `${file}.train.json`;
        const j = readJsonFile(`${file}.train.json`, recordWhat);
        if (isObject(j)) record = j;
      }
    } else if (typeof opts.trainingRecord === 'string') {
      const j = readJsonFile(opts.trainingRecord, '--training-record');
      if (!isObject(j)) throw new BulwarkError('BULWARK_E_DATA_FORMAT', '--training-record must hold a JSON object');
      record = j;
    } else if (opts.trainingRecord !== null) record = opts.trainingRecord;
    if (opts.trainingConfig !== undefined && !isObject(opts.trainingConfig)) throw new BulwarkError('BULWARK_E_ARG', '--training-config must hold a JSON object');
    const metrics = opts.metrics === undefined ? undefined : checkMetrics(opts.metrics, '--metrics');

    const staged = await this.blobs.stage(file, 'model');
    try {
      const digest = staged.digest;
      const subject = `${opts.name}${opts.version ? '@' + opts.version : ''}`;

      // Signature policy, checked on the staged bytes' digest.
      let signer: string | null = null;
      if (envelope) {
        if (this.policy.trustedKeys.length > 0) {
          const c = verifyBlobSignature(envelope, digest, this.policy.trustedKeys);
          assertSignatureValid(c, subject);
          signer = c.keyId;
          if (c.signedName !== undefined && c.signedName !== filename) warnings.push(`the model was signed as ${JSON.stringify(c.signedName)}; stored as ${JSON.stringify(filename)}`);
        } else {
          warnings.push('the signature was stored unverified: no trusted key is configured (--trusted-key or policy trustedKeys)');
        }
      } else if (this.policy.requireSignature) {
        throw new BulwarkError('BULWARK_E_REGISTRY_POLICY', `${subject}: the policy requires a signature and none was given`, { hint: 'Sign the model with `bulwark sign MODEL --key KEY` (the registry reads MODEL.sig) or pass --sig.' });
      }

      // Scan the exact bytes that will be stored.
      let scan: JsonObject | null = null;
      if (this.policy.scan !== 'off') {
        // Loaded on first use: the scanner (and its protobuf schema) is the heaviest import of the registry.
        const { scanBytes } = await import('../scan/scanner.js');
        const bytes = await fs.promises.readFile(staged.tempPath);
        const r = scanBytes(bytes, filename, { failOn: this.policy.scanFailOn });
        scan = await scanSummary(r);
        if (r.unsafe && this.policy.scan === 'enforce') {
          const top = r.findings.slice(0, 3).map((f) => `${f.severity} ${f.id}`).join(', ');
          throw new BulwarkError('BULWARK_E_REGISTRY_POLICY', `${subject}: the scanner found ${r.findings.length} issue(s) at or above ${r.failOn} (${top}); refusing to store an unsafe model`, {
            hint: 'Inspect it with `bulwark scan-file`; the policy field scan ("record") or scanFailOn changes what is refused.',
            details: { counts: r.counts },
          });
        }
        if (r.findings.length > 0) warnings.push(`the scanner found ${r.findings.length} issue(s) (highest: ${r.maxSeverity}); recorded in the lineage`);
      }

      let training: TrainingInfo | null = null;
      if (record) {
        const t = fromTrainRecord(record, digest, recordWhat);
        training = t.training;
        for (const d of t.data) if (!data.some((x) => x.name === d.name && x.role === d.role)) data.push(d);
      }
      if (opts.trainingConfig || metrics) {
        training = training ?? {};
        if (opts.trainingConfig) training.config = { ...(training.config ?? {}), ...opts.trainingConfig };
        if (metrics) training.metrics = { ...(training.metrics ?? {}), ...metrics };
      }

      // The blob is durable at its address before any row can reference it.
      await staged.commit();

      const info = await this.db.write(async (tx) => {
        let version = opts.version;
        const ord = await tx.all<{ m: unknown }>(`SELECT MAX(ordinal) AS m FROM ${this.t('versions')} WHERE name = ?`, [opts.name]);
        const ordinal = ord[0]?.m == null ? 1 : Number(ord[0].m) + 1;
        if (version === undefined) {
          let n = ordinal;
          while ((await this.versionRowIn(tx, opts.name, String(n))) || (await this.aliasTargetIn(tx, opts.name, String(n))) !== null) n++;
          version = String(n);
        } else {
          if (await this.versionRowIn(tx, opts.name, version)) throw new BulwarkError('BULWARK_E_REGISTRY_CONFLICT', `${opts.name}@${version} already exists; versions are immutable`);
          if ((await this.aliasTargetIn(tx, opts.name, version)) !== null) throw new BulwarkError('BULWARK_E_REGISTRY_CONFLICT', `${opts.name} has an alias named ${version}; a version cannot share its name`);
        }
        let parent: Lineage['parent'] = null;
        if (opts.parent !== undefined) {
          const p = opts.parent.includes('@') ? parseModelRef(opts.parent, '--parent') : { name: opts.name, ref: opts.parent };
          if (p.ref === undefined) throw new BulwarkError('BULWARK_E_ARG', '--parent needs a version or alias');
          checkTag(p.ref, '--parent');
          const row = await this.resolveIn(tx, p.name, p.ref);
          parent = { name: row.name, version: row.version, digest: row.digest };
        }
        const createdAt = new Date().toISOString();
        const lineage: Lineage = { parent, data, training, scan, createdBy: by, createdAt };
        const lineageText = boundedJson(lineage, 'lineage');
        const aliasMoves: { alias: string; from: string | null }[] = [];
        for (const a of opts.aliases ?? []) {
          if (await this.versionRowIn(tx, opts.name, a)) throw new BulwarkError('BULWARK_E_REGISTRY_CONFLICT', `${opts.name} has a version named ${a}; an alias cannot share its name`);
          aliasMoves.push({ alias: a, from: await this.aliasTargetIn(tx, opts.name, a) });
        }
        const rec = await this.audit.appendIn(tx, {
          action: 'registry.push',
          subject: `${opts.name}@${version}`,
          actor: by,
          data: {
            name: opts.name,
            version,
            digest,
            size: staged.size,
            filename,
            parent: parent ? `${parent.name}@${parent.version}` : null,
            signer,
            scan: scan ? { unsafe: scan['unsafe'] ?? null, maxSeverity: scan['maxSeverity'] ?? null } : null,
            aliases: aliasMoves.map((m) => ({ alias: m.alias, from: m.from, to: version! })),
          },
        });
        await tx.run(
          `INSERT INTO ${this.t('versions')} (name, version, ordinal, digest, size, filename, created_at, created_by, lineage, signature, signer, audit_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          [opts.name, version, ordinal, digest, staged.size, filename, createdAt, by, lineageText, envelope ? serializeEnvelope(envelope) : null, signer, rec.seq],
        );
        for (const m of aliasMoves) await this.writeAliasIn(tx, opts.name, m.alias, m.from, version, 'set', by, rec.seq, rec.at);
        return this.infoIn(tx, (await this.versionRowIn(tx, opts.name, version))!);
      });
      return { info, warnings };
    } finally {
      await staged.discard();
    }
  }

  private async versionRowIn(tx: SqlExecutor, name: string, version: string): Promise<VersionRow | null> {
    const r = await tx.all<VersionRow>(`SELECT * FROM ${this.t('versions')} WHERE name = ? AND version = ?`, [name, version]);
    return r[0] ?? null;
  }

  private async aliasTargetIn(tx: SqlExecutor, name: string, alias: string): Promise<string | null> {
    const r = await tx.all<{ version: string }>(`SELECT version FROM ${this.t('aliases')} WHERE name = ? AND alias = ?`, [name, alias]);
    return r[0]?.version ?? null;
  }

  private async writeAliasIn(tx: SqlExecutor, name: string, alias: string, from: string | null, to: string, action: 'set' | 'rollback', by: string, seq: number, at: string): Promise<void> {
    if (from === null) {
      await tx.run(`INSERT INTO ${this.t('aliases')} (name, alias, version, updated_at, updated_by, audit_seq) VALUES (?, ?, ?, ?, ?, ?)`, [name, alias, to, at, by, seq]);
    } else {
      await tx.run(`UPDATE ${this.t('aliases')} SET version = ?, updated_at = ?, updated_by = ?, audit_seq = ? WHERE name = ? AND alias = ?`, [to, at, by, seq, name, alias]);
    }
    await tx.run(`INSERT INTO ${this.t('alias_moves')} (audit_seq, name, alias, from_version, to_version, action, at, by_user) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, [seq, name, alias, from, to, action, at, by]);
  }

  private async resolveIn(tx: SqlExecutor, name: string, ref: string | undefined): Promise<VersionRow> {
    if (ref === undefined || ref === LATEST) {
      const r = await tx.all<VersionRow>(`SELECT * FROM ${this.t('versions')} WHERE name = ? ORDER BY ordinal DESC LIMIT 1`, [name]);
      if (!r[0]) throw new BulwarkError('BULWARK_E_REGISTRY_NOT_FOUND', `no model named ${name} in the registry`);
      return r[0];
    }
    const v = await this.versionRowIn(tx, name, ref);
    if (v) return v;
    const target = await this.aliasTargetIn(tx, name, ref);
    if (target !== null) {
      const row = await this.versionRowIn(tx, name, target);
      if (!row) throw new BulwarkError('BULWARK_E_REGISTRY_INTEGRITY', `${name}#${ref} points to version ${target}, which does not exist`);
      return row;
    }
    const any = await tx.all(`SELECT 1 FROM ${this.t('versions')} WHERE name = ? LIMIT 1`, [name]);
    if (any.length === 0) throw new BulwarkError('BULWARK_E_REGISTRY_NOT_FOUND', `no model named ${name} in the registry`);
    throw new BulwarkError('BULWARK_E_REGISTRY_NOT_FOUND', `${name} has no version or alias named ${ref}`, { hint: `List them with \`bulwark registry list ${name}\`.` });
  }

  private async infoIn(tx: SqlExecutor, row: VersionRow): Promise<VersionInfo> {
    const aliases = (await tx.all<{ alias: string }>(`SELECT alias FROM ${this.t('aliases')} WHERE name = ? AND version = ? ORDER BY alias`, [row.name, row.version])).map((a) => a.alias);
    let lineage: Lineage;
    try {
      lineage = JSON.parse(row.lineage) as Lineage;
    } catch {
      throw new BulwarkError('BULWARK_E_REGISTRY_INTEGRITY', `${row.name}@${row.version}: stored lineage is not valid JSON`);
    }
    return {
      name: row.name,
      version: row.version,
      ordinal: Number(row.ordinal),
      digest: row.digest,
      size: Number(row.size),
      filename: row.filename,
      createdAt: row.created_at,
      createdBy: row.created_by,
      aliases,
      lineage,
      signature: row.signature === null ? null : { keyId: row.signer },
      auditSeq: Number(row.audit_seq),
    };
  }

  /**
   * Looks up a version by `name@ref` (a version, an alias, `latest`, or no ref for the latest).
   * @throws BulwarkError BULWARK_E_REGISTRY_NOT_FOUND
   */
  async show(ref: string): Promise<VersionInfo> {
    const r = parseModelRef(ref);
    return this.db.read(async (tx) => this.infoIn(tx, await this.resolveIn(tx, r.name, r.ref)));
  }

  /** The enforcement done on every load: the signature policy (re-verified against the stored envelope). */
  private checkLoadPolicy(row: VersionRow): void {
    if (!this.policy.requireSignature) return;
    const subject = `${row.name}@${row.version}`;
    if (row.signature === null) throw new BulwarkError('BULWARK_E_REGISTRY_POLICY', `${subject}: the policy requires a signature and this version has none`);
    assertSignatureValid(verifyBlobSignature(row.signature, row.digest, this.policy.trustedKeys), subject);
  }

  private async rowFor(ref: string): Promise<VersionRow> {
    const r = parseModelRef(ref);
    return this.db.read((tx) => this.resolveIn(tx, r.name, r.ref));
  }

  /**
   * Loads a version's bytes, checking their digest and (when the policy requires signatures) the signature.
   * @returns the version and its verified bytes
   * @throws BulwarkError BULWARK_E_REGISTRY_INTEGRITY (missing or modified blob), BULWARK_E_REGISTRY_POLICY,
   *   BULWARK_E_REGISTRY_NOT_FOUND
   */
  async load(ref: string): Promise<{ info: VersionInfo; bytes: Buffer }> {
    const row = await this.rowFor(ref);
    this.checkLoadPolicy(row);
    const bytes = await this.blobs.read(row.digest, `${row.name}@${row.version}`);
    const info = await this.db.read((tx) => this.infoIn(tx, row));
    return { info, bytes };
  }

  /**
   * Writes a version to a file, atomically, after the same checks as {@link load}; on a digest mismatch nothing is
   * written.
   * @param out the output file (default: the stored file name in the current folder)
   */
  async pull(ref: string, out?: string): Promise<{ info: VersionInfo; path: string }> {
    const row = await this.rowFor(ref);
    this.checkLoadPolicy(row);
    const dest = out ?? checkFilename(row.filename);
    await this.blobs.copyTo(row.digest, dest, `${row.name}@${row.version}`);
    const info = await this.db.read((tx) => this.infoIn(tx, row));
    return { info, path: dest };
  }

  /** Every model with its version count, latest version and aliases. */
  async list(): Promise<ModelSummary[]> {
    return this.db.read(async (tx) => {
      const rows = await tx.all<{ name: string; n: unknown; m: unknown }>(`SELECT name, COUNT(*) AS n, MAX(ordinal) AS m FROM ${this.t('versions')} GROUP BY name ORDER BY name`);
      const out: ModelSummary[] = [];
      for (const r of rows) {
        const latest = await tx.all<{ version: string }>(`SELECT version FROM ${this.t('versions')} WHERE name = ? AND ordinal = ?`, [r.name, Number(r.m)]);
        const al = await tx.all<{ alias: string; version: string }>(`SELECT alias, version FROM ${this.t('aliases')} WHERE name = ? ORDER BY alias`, [r.name]);
        out.push({ name: r.name, versions: Number(r.n), latest: latest[0]?.version ?? '', aliases: Object.fromEntries(al.map((a) => [a.alias, a.version])) });
      }
      return out;
    });
  }

  /**
   * The versions of one model, oldest first.
   * @throws BulwarkError BULWARK_E_REGISTRY_NOT_FOUND
   */
  async versions(name: string): Promise<VersionInfo[]> {
    checkName(name, 'list');
    return this.db.read(async (tx) => {
      const rows = await tx.all<VersionRow>(`SELECT * FROM ${this.t('versions')} WHERE name = ? ORDER BY ordinal`, [name]);
      if (rows.length === 0) throw new BulwarkError('BULWARK_E_REGISTRY_NOT_FOUND', `no model named ${name} in the registry`);
      const out: VersionInfo[] = [];
      for (const r of rows) out.push(await this.infoIn(tx, r));
      return out;
    });
  }

  /**
   * Every recorded move of a model's aliases, oldest first.
   * @param alias only this alias
   */
  async aliasHistory(name: string, alias?: string): Promise<AliasMove[]> {
    checkName(name, 'alias history');
    return this.db.read((tx) => this.movesIn(tx, name, alias));
  }

  private async movesIn(tx: SqlExecutor, name: string, alias?: string): Promise<AliasMove[]> {
    const rows = await tx.all<{ audit_seq: unknown; name: string; alias: string; from_version: string | null; to_version: string; action: string; at: string; by_user: string }>(
      `SELECT * FROM ${this.t('alias_moves')} WHERE name = ?${alias === undefined ? '' : ' AND alias = ?'} ORDER BY audit_seq, alias`,
      alias === undefined ? [name] : [name, alias],
    );
    return rows.map((r) => ({ name: r.name, alias: r.alias, from: r.from_version, to: r.to_version, action: r.action as AliasMove['action'], at: r.at, by: r.by_user, auditSeq: Number(r.audit_seq) }));
  }

  /** Checks that a version may be served (blob intact, signature policy) before an alias points to it. */
  private async checkServable(row: VersionRow): Promise<void> {
    this.checkLoadPolicy(row);
    const st = await this.blobs.check(row.digest, Number(row.size));
    if (st !== 'ok') throw new BulwarkError('BULWARK_E_REGISTRY_INTEGRITY', `${row.name}@${row.version}: its blob is ${st}; refusing to point an alias at it`);
  }

  private async moveAlias(name: string, alias: string, target: string | undefined, action: 'set' | 'rollback', by: string): Promise<AliasMove & { changed: boolean }> {
    checkName(name, action === 'set' ? 'alias' : 'rollback');
    checkTag(alias, 'alias');
    if (alias === LATEST) throw new BulwarkError('BULWARK_E_ARG', `"${LATEST}" is reserved; choose another alias`);
    checkActor(by);
    if (target !== undefined) checkTag(target, 'version');
    // Check the target's blob and signature before taking the write lock (hashing can take a while) ...
    const pre = await this.db.read(async (tx) => (target === undefined ? this.rollbackTargetIn(tx, name, alias) : this.resolveIn(tx, name, target)));
    await this.checkServable(pre);
    // ... and re-resolve under the lock, so the move is computed from the state it commits on.
    return this.db.write(async (tx) => {
      const row = target === undefined ? await this.rollbackTargetIn(tx, name, alias) : await this.resolveIn(tx, name, target);
      if (row.digest !== pre.digest) throw new BulwarkError('BULWARK_E_REGISTRY_CONFLICT', `${name}#${alias} changed while it was being moved; retry`);
      if (await this.versionRowIn(tx, name, alias)) throw new BulwarkError('BULWARK_E_REGISTRY_CONFLICT', `${name} has a version named ${alias}; an alias cannot share its name`);
      const from = await this.aliasTargetIn(tx, name, alias);
      if (action === 'rollback' && from === null) throw new BulwarkError('BULWARK_E_REGISTRY_NOT_FOUND', `${name} has no alias ${alias} to roll back`);
      if (from === row.version) {
        const moves = await this.movesIn(tx, name, alias);
        const last = moves[moves.length - 1];
        return { name, alias, from, to: row.version, action, at: last?.at ?? '', by: last?.by ?? by, auditSeq: last?.auditSeq ?? 0, changed: false };
      }
      const rec = await this.audit.appendIn(tx, { action: action === 'set' ? 'registry.alias' : 'registry.rollback', subject: `${name}#${alias}`, actor: by, data: { name, alias, from, to: row.version } });
      await this.writeAliasIn(tx, name, alias, from, row.version, action, by, rec.seq, rec.at);
      return { name, alias, from, to: row.version, action, at: rec.at, by, auditSeq: rec.seq, changed: true };
    });
  }

  /**
   * Points an alias at a version (creating the alias if needed). The move is recorded (alias history and audit).
   * The version's blob is re-hashed and, under a signature policy, its signature re-verified first.
   * @param version a version, or another alias (resolved now)
   * @returns the move; `changed` is false when the alias already pointed there (nothing is recorded)
   * @throws BulwarkError BULWARK_E_REGISTRY_NOT_FOUND, BULWARK_E_REGISTRY_CONFLICT, BULWARK_E_REGISTRY_INTEGRITY,
   *   BULWARK_E_REGISTRY_POLICY
   */
  setAlias(name: string, alias: string, version: string, options: { by?: string } = {}): Promise<AliasMove & { changed: boolean }> {
    return this.moveAlias(name, alias, version, 'set', options.by ?? this.actor);
  }

  /**
   * Rolls an alias back: moves it to the version it pointed to before its current one (or to `to`). Rollbacks are
   * alias moves and recorded as such; rolling back twice goes two steps back (history is a stack: a `set` pushes,
   * a rollback pops).
   * @throws BulwarkError BULWARK_E_REGISTRY_NOT_FOUND (no alias, or nothing earlier), and as {@link setAlias}
   */
  rollback(name: string, alias: string, options: { to?: string; by?: string } = {}): Promise<AliasMove & { changed: boolean }> {
    return this.moveAlias(name, alias, options.to, 'rollback', options.by ?? this.actor);
  }

  private async rollbackTargetIn(tx: SqlExecutor, name: string, alias: string): Promise<VersionRow> {
    const stack = aliasStack(await this.movesIn(tx, name, alias));
    if (stack.length === 0) throw new BulwarkError('BULWARK_E_REGISTRY_NOT_FOUND', `${name} has no alias ${alias} to roll back`);
    const prev = stack[stack.length - 2];
    if (prev === undefined) throw new BulwarkError('BULWARK_E_REGISTRY_NOT_FOUND', `${name}#${alias} has no earlier version to roll back to`, { hint: 'Name the version with --to.' });
    const row = await this.versionRowIn(tx, name, prev);
    if (!row) throw new BulwarkError('BULWARK_E_REGISTRY_INTEGRITY', `${name}#${alias}: the earlier version ${prev} does not exist`);
    return row;
  }

  /**
   * Checks the whole registry (or one model): every blob re-hashed, signatures re-verified against the trusted
   * keys, aliases resolved, the audit chain and checkpoints verified, and the metadata compared with what the audit
   * log recorded (a version or alias changed around the registry shows up here).
   * @param options.name only this model (the audit log is always checked whole)
   * @param options.auditVerifiers trusted checkpoint keys, added to the policy's
   */
  async verify(options: { name?: string; auditVerifiers?: readonly AuditVerifier[] } = {}): Promise<RegistryVerifyResult> {
    if (options.name !== undefined) checkName(options.name, 'verify');
    const issues: RegistryIssue[] = [];
    const warnings: string[] = [];
    const snap = await this.db.read(async (tx) => ({
      versions: await tx.all<VersionRow>(`SELECT * FROM ${this.t('versions')} ORDER BY name, ordinal`),
      aliases: await tx.all<{ name: string; alias: string; version: string }>(`SELECT name, alias, version FROM ${this.t('aliases')} ORDER BY name, alias`),
      audit: await this.audit.snapshot(tx),
    }));
    const inScope = (n: string): boolean => options.name === undefined || n === options.name;
    const versions = snap.versions.filter((v) => inScope(v.name));
    const aliases = snap.aliases.filter((a) => inScope(a.name));

    let unchecked = 0;
    for (const v of versions) {
      const subject = `${v.name}@${v.version}`;
      let st: 'ok' | 'missing' | 'corrupt';
      try {
        st = await this.blobs.check(v.digest, Number(v.size));
      } catch (e) {
        issues.push({ kind: 'metadata', subject, message: (e as Error).message });
        continue;
      }
      if (st === 'missing') issues.push({ kind: 'blob-missing', subject, message: `${subject}: blob sha256:${v.digest} is missing` });
      else if (st === 'corrupt') issues.push({ kind: 'blob-corrupt', subject, message: `${subject}: blob sha256:${v.digest} was modified (its bytes no longer hash to its address)` });
      if (v.signature !== null) {
        if (this.policy.trustedKeys.length > 0) {
          try {
            const c = verifyBlobSignature(v.signature, v.digest, this.policy.trustedKeys);
            if (!c.valid) issues.push({ kind: 'signature', subject, message: `${subject}: ${c.reasons.join('; ')}` });
          } catch (e) {
            issues.push({ kind: 'signature', subject, message: `${subject}: stored signature is malformed: ${(e as Error).message}` });
          }
        } else unchecked++;
      } else if (this.policy.requireSignature) {
        issues.push({ kind: 'signature', subject, message: `${subject}: unsigned, but the policy requires signatures` });
      }
    }
    if (unchecked > 0) warnings.push(`${unchecked} stored signature(s) not checked: no trusted key is configured (--trusted-key or policy trustedKeys)`);
    const have = new Set(snap.versions.map((v) => `${v.name}@${v.version}`));
    for (const a of aliases) {
      if (!have.has(`${a.name}@${a.version}`)) issues.push({ kind: 'alias', subject: `${a.name}#${a.alias}`, message: `${a.name}#${a.alias} points to version ${a.version}, which does not exist` });
    }

    const verifiers = [...this.policy.auditVerifiers, ...(options.auditVerifiers ?? [])];
    const audit = verifyAuditRows(snap.audit.rows, snap.audit.checkpoints, snap.audit.head, verifiers);
    for (const i of audit.issues) issues.push({ kind: 'audit', subject: `audit#${i.seq}${i.toSeq !== undefined ? '..' + i.toSeq : ''}`, message: i.message });
    warnings.push(...audit.warnings);

    // Replay the registry's audit records and compare with the tables.
    const expectVersions = new Map<string, { digest: string; size: number }>();
    const expectAliases = new Map<string, string>();
    for (const row of snap.audit.rows) {
      let rec: AuditRecord;
      try {
        rec = JSON.parse(row.record) as AuditRecord;
      } catch {
        continue;
      }
      const d = rec.data as Record<string, unknown> | null;
      if (!d || typeof d !== 'object') continue;
      if (rec.action === 'registry.push') {
        expectVersions.set(`${String(d['name'])}@${String(d['version'])}`, { digest: String(d['digest']), size: Number(d['size']) });
        for (const m of (Array.isArray(d['aliases']) ? d['aliases'] : []) as { alias?: string; to?: string }[]) expectAliases.set(`${String(d['name'])}#${String(m.alias)}`, String(m.to));
      } else if (rec.action === 'registry.alias' || rec.action === 'registry.rollback') {
        expectAliases.set(`${String(d['name'])}#${String(d['alias'])}`, String(d['to']));
      }
    }
    for (const v of versions) {
      const key = `${v.name}@${v.version}`;
      const e = expectVersions.get(key);
      if (!e) issues.push({ kind: 'metadata', subject: key, message: `${key} has no push record in the audit log: it was written around the registry` });
      else if (e.digest !== v.digest || e.size !== Number(v.size)) issues.push({ kind: 'metadata', subject: key, message: `${key}: its digest or size differs from the audit record of its push (the version row was edited)` });
    }
    for (const key of expectVersions.keys()) {
      if (inScope(key.slice(0, key.indexOf('@'))) && !have.has(key)) issues.push({ kind: 'metadata', subject: key, message: `${key} was pushed (audit log) but its version row is gone (deleted around the registry)` });
    }
    const aliasNow = new Map<string, string>(snap.aliases.map((a) => [`${a.name}#${a.alias}`, a.version]));
    for (const [key, to] of expectAliases) {
      if (!inScope(key.slice(0, key.indexOf('#')))) continue;
      const now = aliasNow.get(key);
      if (now === undefined) issues.push({ kind: 'metadata', subject: key, message: `${key} should point to ${to} (audit log) but does not exist` });
      else if (now !== to) issues.push({ kind: 'metadata', subject: key, message: `${key} points to ${now}, but the audit log last moved it to ${to} (the alias was changed around the registry)` });
    }
    for (const a of aliases) {
      const key = `${a.name}#${a.alias}`;
      if (!expectAliases.has(key)) issues.push({ kind: 'metadata', subject: key, message: `${key} has no record in the audit log: it was created around the registry` });
    }

    if (options.name === undefined) {
      const referenced = new Set(snap.versions.map((v) => v.digest));
      const orphans = this.blobs.list().filter((d) => !referenced.has(d));
      if (orphans.length > 0) warnings.push(`${orphans.length} blob(s) not referenced by any version (left by interrupted or refused pushes; safe to delete): ${orphans.slice(0, 5).join(', ')}${orphans.length > 5 ? ', ...' : ''}`);
      const left = this.blobs.leftovers();
      if (left.length > 0) warnings.push(`${left.length} staging file(s) in ${this.blobs.tmpDir} (from interrupted pushes)`);
    }
    return { ok: issues.length === 0, versions: versions.length, aliases: aliases.length, issues, warnings, audit };
  }

  /**
   * The CycloneDX 1.6 ML-BOM of a version (model card, hashes, lineage datasets, parent as pedigree).
   * @throws BulwarkError BULWARK_E_REGISTRY_NOT_FOUND
   */
  async bom(ref: string, options: Omit<MlBomOptions, 'parent'> = {}): Promise<CycloneDxBom> {
    const info = await this.show(ref);
    const p = info.lineage.parent;
    const parent = p ? await this.show(`${p.name}@${p.version}`).catch(() => null) : null;
    return buildMlBom(info, { ...options, parent });
  }

  /** Closes the database. */
  async close(): Promise<void> {
    await this.db.close();
  }
}

/**
 * The version stack of an alias from its moves: a `set` pushes its target, a rollback pops back to its target
 * (a rollback to a version that is not on the stack pushes it, like a `set`).
 * @returns versions, the current one last
 */
export function aliasStack(moves: readonly Pick<AliasMove, 'action' | 'to'>[]): string[] {
  const stack: string[] = [];
  for (const m of moves) {
    if (m.action === 'set') {
      if (stack[stack.length - 1] !== m.to) stack.push(m.to);
    } else {
      const at = stack.lastIndexOf(m.to);
      if (at >= 0) stack.length = at + 1;
      else stack.push(m.to);
    }
  }
  return stack;
}
