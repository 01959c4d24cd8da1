/**
 * The metadata database of the registry and the audit log: one small interface over SQLite (better-sqlite3, the
 * embedded default) and PostgreSQL (pg). SQL is written once with `?` placeholders; table names come from
 * {@link SqlDb.table}, so one database can hold several registries (a PostgreSQL schema or a table prefix each).
 *
 * Every write runs in {@link SqlDb.write}: one transaction that holds the registry's write lock (SQLite
 * `BEGIN IMMEDIATE`; PostgreSQL a transaction-scoped advisory lock), so concurrent writers, in one process or many,
 * are serialized and a crash at any point leaves either the whole transaction or none of it.
 */
import { redactUrl } from '../../core/urls.js';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BulwarkError } from '../../core/errors.js';
import { makeDirs } from '../../core/fsio.js';

/** A value bound to a `?` placeholder. */
export type SqlParam = string | number | null;

/** Runs statements (inside a transaction, or on a read snapshot). */
export interface SqlExecutor {
  /** Rows of a query. */
  all<R = Record<string, unknown>>(sql: string, params?: readonly SqlParam[]): Promise<R[]>;
  /** Runs a statement; returns the number of rows changed. */
  run(sql: string, params?: readonly SqlParam[]): Promise<number>;
  /** Runs parameterless statements (DDL), possibly several separated by semicolons. */
  exec(sql: string): Promise<void>;
}

/** Tables Bulwark keeps; {@link SqlDb.table} gives their qualified names. */
export type TableName = 'meta' | 'versions' | 'aliases' | 'alias_moves' | 'audit' | 'audit_checkpoints';

/** An open metadata database. */
export interface SqlDb {
  readonly dialect: 'sqlite' | 'postgres';
  /** Where the database is, for messages (a PostgreSQL password is never shown). */
  readonly location: string;
  /** The qualified, quoted name of a table. */
  table(name: TableName): string;
  /**
   * Runs `fn` in one transaction holding the write lock: commits when it resolves, rolls back when it throws.
   * @throws BulwarkError BULWARK_E_DB when the database fails; whatever `fn` throws
   */
  write<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  /** Runs `fn` on one consistent snapshot (a read-only transaction). */
  read<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** Options of {@link openSqlDb}. */
export interface OpenSqlOptions {
  /**
   * `postgres://` or `postgresql://` URL (its query may hold `schema=NAME` and `prefix=NAME`, taken out before
   * connecting), `sqlite:PATH`, or a plain SQLite file path.
   */
  url: string;
  /** PostgreSQL schema for the tables (created when missing). Not for SQLite. */
  schema?: string;
  /** A prefix for every table name (letters, digits, underscore). */
  tablePrefix?: string;
  /** For SQLite: false refuses to create a missing database file (read-only commands). Default true. */
  create?: boolean;
}

const IDENT = /^[a-z_][a-z0-9_]{0,40}$/;

function checkIdent(v: string | undefined, what: string): string {
  if (v === undefined || v === '') return '';
  if (!IDENT.test(v)) throw new BulwarkError('BULWARK_E_REGISTRY_CONFIG', `${what} ${JSON.stringify(v)} must be lowercase letters, digits and underscores (at most 41, not starting with a digit)`);
  return v;
}

/** True when the string names a PostgreSQL database rather than a SQLite file. */
export function isPostgresUrl(url: string): boolean {
  return /^postgres(ql)?:\/\//i.test(url);
}

export { redactUrl };

/**
 * Opens (and, for SQLite, creates) a metadata database. Drivers are loaded on first use, so a SQLite user never
 * loads pg and a PostgreSQL user never loads the native SQLite module.
 * @throws BulwarkError BULWARK_E_DB (cannot open or connect), BULWARK_E_REGISTRY_CONFIG (malformed URL or names),
 *   BULWARK_E_REGISTRY_NOT_FOUND (a missing SQLite file with `create: false`)
 */
export async function openSqlDb(options: OpenSqlOptions): Promise<SqlDb> {
  const prefix = checkIdent(options.tablePrefix, 'table prefix');
  if (isPostgresUrl(options.url)) {
    let u: URL;
    try {
      u = new URL(options.url);
    } catch {
      throw new BulwarkError('BULWARK_E_REGISTRY_CONFIG', `--db: ${redactUrl(options.url)} is not a valid postgres:// URL`);
    }
    const schema = checkIdent(options.schema ?? u.searchParams.get('schema') ?? undefined, 'schema');
    const urlPrefix = checkIdent(u.searchParams.get('prefix') ?? undefined, 'table prefix');
    u.searchParams.delete('schema');
    u.searchParams.delete('prefix');
    return PgDb.connect(u.toString(), redactUrl(options.url), schema, prefix || urlPrefix);
  }
  if (options.schema) throw new BulwarkError('BULWARK_E_REGISTRY_CONFIG', 'a schema applies to PostgreSQL only; use a table prefix or another file for SQLite');
  const file = options.url.replace(/^sqlite:/i, '');
  if (file.length === 0) throw new BulwarkError('BULWARK_E_REGISTRY_CONFIG', '--db: empty SQLite path');
  return SqliteDb.open(file, prefix, options.create !== false);
}

/** Serializes async work on one connection (a transaction must not interleave with another). */
class Mutex {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => undefined);
    return next;
  }
}

function dbError(location: string, e: unknown, doing: string): BulwarkError {
  if (e instanceof BulwarkError) return e;
  const msg = (e as Error)?.message ?? String(e);
  return new BulwarkError('BULWARK_E_DB', `${location}: ${doing} failed: ${msg}`, { cause: e });
}

// ---------------------------------------------------------------------------------------------------------------
// SQLite

interface SqliteStatement {
  reader: boolean;
  all(...params: unknown[]): unknown[];
  run(...params: unknown[]): { changes: number };
}
interface SqliteDatabase {
  prepare(sql: string): SqliteStatement;
  exec(sql: string): void;
  pragma(sql: string): unknown;
  close(): void;
  readonly inTransaction: boolean;
}

/**
 * One mutex per SQLite file in this process. better-sqlite3 is synchronous: a second connection waiting for the
 * write lock would block the event loop that the first one needs to commit, so connections of one process queue
 * here instead; other processes wait on SQLite's own lock (busy timeout).
 */
const FILE_MUTEXES = new Map<string, Mutex>();

function fileMutex(file: string): Mutex {
  const key = file === ':memory:' ? `:memory:${FILE_MUTEXES.size}` : path.resolve(file);
  let m = FILE_MUTEXES.get(key);
  if (!m) {
    m = new Mutex();
    FILE_MUTEXES.set(key, m);
  }
  return m;
}

class SqliteDb implements SqlDb {
  readonly dialect = 'sqlite' as const;
  private readonly mutex: Mutex;
  private readonly cache = new Map<string, SqliteStatement>();
  private closed = false;

  private constructor(
    private readonly db: SqliteDatabase,
    readonly location: string,
    private readonly prefix: string,
  ) {
    this.mutex = fileMutex(location);
  }

  static async open(file: string, prefix: string, create: boolean): Promise<SqliteDb> {
    const memory = file === ':memory:';
    if (!memory && !create && !fs.existsSync(file)) {
      throw new BulwarkError('BULWARK_E_REGISTRY_NOT_FOUND', `no registry database at ${file}`, { hint: 'Check --root/--db; a registry is created by its first `bulwark registry push`.' });
    }
    let Database: new (file: string, opts: { timeout: number }) => SqliteDatabase;
    try {
      Database = (await import('better-sqlite3')).default as unknown as typeof Database;
    } catch (e) {
      throw new BulwarkError('BULWARK_E_DB', `cannot load the SQLite driver (better-sqlite3): ${(e as Error).message}`, {
        hint: 'Its native module is built at install time; check that package.json approves its install script (allowScripts) and run `npm rebuild better-sqlite3`.',
      });
    }
    try {
      if (!memory) makeDirs(path.dirname(path.resolve(file)));
      // timeout: how long a writer waits for another process's lock before failing (SQLITE_BUSY).
      const db = new Database(file, { timeout: 15000 });
      db.pragma('journal_mode = WAL');
      // FULL: a committed transaction survives a power loss, not just a killed process.
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      return new SqliteDb(db, file, prefix);
    } catch (e) {
      throw dbError(file, e, 'opening the SQLite database');
    }
  }

  table(name: TableName): string {
    return `"${this.prefix}${name}"`;
  }

  private stmt(sql: string): SqliteStatement {
    let s = this.cache.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.cache.set(sql, s);
    }
    return s;
  }

  private executor(): SqlExecutor {
    return {
      all: async <R>(sql: string, params: readonly SqlParam[] = []) => this.stmt(sql).all(...params) as R[],
      run: async (sql: string, params: readonly SqlParam[] = []) => this.stmt(sql).run(...params).changes,
      exec: async (sql: string) => this.db.exec(sql),
    };
  }

  private tx<T>(begin: string, fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    return this.mutex.run(async () => {
      if (this.closed) throw new BulwarkError('BULWARK_E_INTERNAL', 'database used after close');
      try {
        this.db.exec(begin);
      } catch (e) {
        throw dbError(this.location, e, 'starting a transaction');
      }
      let result: T;
      try {
        result = await fn(this.executor());
      } catch (e) {
        if (this.db.inTransaction) this.db.exec('ROLLBACK');
        throw dbError(this.location, e, 'a transaction');
      }
      try {
        this.db.exec('COMMIT');
      } catch (e) {
        if (this.db.inTransaction) this.db.exec('ROLLBACK');
        throw dbError(this.location, e, 'committing');
      }
      return result;
    });
  }

  write<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    return this.tx('BEGIN IMMEDIATE', fn);
  }

  read<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    return this.tx('BEGIN', fn);
  }

  async close(): Promise<void> {
    await this.mutex.run(async () => {
      if (this.closed) return;
      this.closed = true;
      this.cache.clear();
      this.db.close();
    });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// PostgreSQL

interface PgClient {
  query(sql: string, params?: unknown[]): Promise<{ rows: unknown[]; rowCount: number | null }>;
  release(err?: boolean | Error): void;
}
interface PgPool {
  connect(): Promise<PgClient>;
  end(): Promise<void>;
  on(event: 'error', fn: (e: Error) => void): void;
}

/** `?` placeholders to PostgreSQL's `$1, $2, ...` (Bulwark's SQL has no `?` inside literals). */
function numbered(sql: string): string {
  let i = 0;
  return sql.replace(/\?/g, () => `$${++i}`);
}

class PgDb implements SqlDb {
  readonly dialect = 'postgres' as const;
  private closed = false;

  private constructor(
    private readonly pool: PgPool,
    readonly location: string,
    private readonly schema: string,
    private readonly prefix: string,
  ) {}

  static async connect(url: string, shown: string, schema: string, prefix: string): Promise<PgDb> {
    let Pool: new (cfg: Record<string, unknown>) => PgPool;
    try {
      Pool = ((await import('pg')).default as unknown as { Pool: typeof Pool }).Pool;
    } catch (e) {
      throw new BulwarkError('BULWARK_E_DB', `cannot load the PostgreSQL driver (pg): ${(e as Error).message}`);
    }
    const pool = new Pool({ connectionString: url, max: 4, connectionTimeoutMillis: 10000, idleTimeoutMillis: 5000, application_name: 'bulwark' });
    // An idle client's network error must not crash the process; the next query reports it.
    pool.on('error', () => undefined);
    const db = new PgDb(pool, shown, schema, prefix);
    try {
      const c = await pool.connect();
      c.release();
    } catch (e) {
      await pool.end().catch(() => undefined);
      throw new BulwarkError('BULWARK_E_DB', `${shown}: cannot connect to PostgreSQL: ${(e as Error).message}`);
    }
    if (schema) await db.write(async (tx) => tx.exec(`CREATE SCHEMA IF NOT EXISTS "${schema}"`));
    return db;
  }

  table(name: TableName): string {
    return this.schema ? `"${this.schema}"."${this.prefix}${name}"` : `"${this.prefix}${name}"`;
  }

  private executor(c: PgClient): SqlExecutor {
    return {
      all: async <R>(sql: string, params: readonly SqlParam[] = []) => (await c.query(numbered(sql), [...params])).rows as R[],
      run: async (sql: string, params: readonly SqlParam[] = []) => (await c.query(numbered(sql), [...params])).rowCount ?? 0,
      exec: async (sql: string) => {
        await c.query(sql);
      },
    };
  }

  private async tx<T>(begin: string, lock: boolean, fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    if (this.closed) throw new BulwarkError('BULWARK_E_INTERNAL', 'database used after close');
    let c: PgClient;
    try {
      c = await this.pool.connect();
    } catch (e) {
      throw dbError(this.location, e, 'connecting');
    }
    let broken = false;
    try {
      await c.query(begin);
      // One lock per registry (schema + prefix): every writer of this registry queues here.
      if (lock) await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`bulwark-registry:${this.schema}:${this.prefix}`]);
      const result = await fn(this.executor(c));
      await c.query('COMMIT');
      return result;
    } catch (e) {
      try {
        await c.query('ROLLBACK');
      } catch {
        broken = true;
      }
      throw dbError(this.location, e, 'a transaction');
    } finally {
      c.release(broken);
    }
  }

  write<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    return this.tx('BEGIN', true, fn);
  }

  read<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    return this.tx('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY', false, fn);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}
