/**
 * Scan options, the shared step / byte budget that bounds every scan, and the context handed to each format
 * scanner (which file, which member, how deep, where findings go).
 */
import { BulwarkError } from '../../core/errors.js';
import { FindingSink, type FindingInput, type ScanFinding, type ScanRuleId, type Severity } from './findings.js';

/** Options of a scan. Every limit has a default; all of them bound work on hostile input. */
export interface ScanOptions {
  /** Severity at or above which a result counts as unsafe (exit code 1). Default 'low'. */
  failOn?: Severity;
  /** Most archive levels opened (a zip in a zip in a zip is depth 3). Default 4. */
  maxDepth?: number;
  /** Most interpreter steps (pickle opcodes, archive entries, header records) per scanned file. Default 50 million. */
  maxSteps?: number;
  /** Largest file read from disk, in bytes. Default 4 GiB. */
  maxFileBytes?: number;
  /** Largest archive member, in bytes. Default 4 GiB. */
  maxEntryBytes?: number;
  /** Most bytes decompressed from all archives of one file together. Default 16 GiB. */
  maxTotalBytes?: number;
  /** Most entries of one archive. Default 65536. */
  maxEntries?: number;
  /** Highest compression ratio of a member larger than 1 MiB. Default 200. */
  maxRatio?: number;
  /** Most memo entries of a pickle. Default 1,000,000. */
  maxMemo?: number;
  /** Most values on a pickle's stack. Default 1,000,000. */
  maxStack?: number;
  /** Largest safetensors JSON header, in bytes (the format's own limit). Default 100,000,000. */
  maxHeaderBytes?: number;
  /** Most elements of one tensor before it counts as a denial-of-service dimension. Default 2^32. */
  maxTensorElements?: number;
  /** Most files scanned under one folder. Default 100,000. */
  maxFiles?: number;
  /** Extra `module.name` entries to allow in pickles (a site's own classes). */
  allow?: string[];
}

/** Options with every default filled in. */
export type ResolvedScanOptions = Required<Omit<ScanOptions, 'allow'>> & { allow: ReadonlySet<string> };

/** The defaults of {@link ScanOptions}. */
export const SCAN_DEFAULTS: Readonly<Required<Omit<ScanOptions, 'allow'>>> = Object.freeze({
  failOn: 'low',
  maxDepth: 4,
  maxSteps: 50_000_000,
  maxFileBytes: 4 * 1024 ** 3,
  maxEntryBytes: 4 * 1024 ** 3,
  maxTotalBytes: 16 * 1024 ** 3,
  maxEntries: 65536,
  maxRatio: 200,
  maxMemo: 1_000_000,
  maxStack: 1_000_000,
  maxHeaderBytes: 100_000_000,
  maxTensorElements: 2 ** 32,
  maxFiles: 100_000,
});

/** Fills in defaults. */
export function resolveOptions(o: ScanOptions = {}): ResolvedScanOptions {
  const def = Object.fromEntries(Object.entries(o).filter(([k, v]) => v !== undefined && k !== 'allow'));
  return { ...SCAN_DEFAULTS, ...def, allow: new Set(o.allow ?? []) } as ResolvedScanOptions;
}

/** Thrown when a scan runs out of budget; caught at the file level and turned into a finding. */
export class BudgetExceeded extends Error {
  constructor(readonly limit: string, readonly max: number) {
    super(`scan stopped: ${limit} limit of ${max} reached`);
    this.name = 'BudgetExceeded';
  }
}

/** The work budget of one scanned file, shared by every nested member. */
export class Budget {
  steps = 0;
  bytes = 0;
  constructor(readonly maxSteps: number, readonly maxBytes: number) {}

  /** Counts `n` steps; throws BudgetExceeded past the limit. */
  tick(n = 1): void {
    this.steps += n;
    if (this.steps > this.maxSteps) throw new BudgetExceeded('step', this.maxSteps);
  }

  /** Counts decompressed bytes; throws BudgetExceeded past the limit. */
  spend(n: number): void {
    this.bytes += n;
    if (this.bytes > this.maxBytes) throw new BudgetExceeded('decompressed-bytes', this.maxBytes);
  }
}

/** One file or member the scan looked at. */
export interface ScannedItem {
  /** The file as given (relative paths stay relative). */
  file: string;
  /** Member path inside archives, if any. */
  innerPath?: string;
  /** Detected format. */
  format: string;
  bytes: number;
  /** Distinct `module.name` globals a pickle referenced (capped). */
  globals?: string[];
}

/** What a format scanner needs: where it is, the limits, the budget, and where findings and members go. */
export class ScanContext {
  constructor(
    readonly file: string,
    readonly inner: readonly string[],
    readonly depth: number,
    readonly opts: ResolvedScanOptions,
    readonly budget: Budget,
    readonly sink: FindingSink,
    readonly items: ScannedItem[],
    /** Folder of the file on disk, when scanning a real file (external references are checked against it). */
    readonly dir: string | undefined,
    /** Scans nested bytes with format detection (set by the dispatcher). */
    readonly dispatch: (ctx: ScanContext, bytes: Uint8Array, name: string) => void,
    /** Extra flags for format scanners (e.g. torchscript archives). */
    readonly flags: Readonly<Record<string, boolean>> = {},
  ) {}

  /** The member path for evidence, or undefined at the top level. */
  get innerPath(): string | undefined {
    return this.inner.length === 0 ? undefined : this.inner.join('/');
  }

  /** A context for a member inside this one. `container` counts one more archive level. */
  child(name: string, container: boolean, flags?: Record<string, boolean>): ScanContext {
    return new ScanContext(this.file, [...this.inner, name], container ? this.depth + 1 : this.depth, this.opts, this.budget, this.sink, this.items, undefined, this.dispatch, flags ?? this.flags);
  }

  /** Context with extra flags, same place. */
  withFlags(flags: Record<string, boolean>): ScanContext {
    return new ScanContext(this.file, this.inner, this.depth, this.opts, this.budget, this.sink, this.items, this.dir, this.dispatch, { ...this.flags, ...flags });
  }

  /** Reports a finding at this location (innerPath filled in unless given). */
  report(id: ScanRuleId, input: FindingInput, mergeKey?: string): ScanFinding | undefined {
    const ev = { ...input.evidence };
    if (ev.innerPath === undefined && this.innerPath !== undefined) ev.innerPath = this.innerPath;
    return this.sink.add(id, this.file, { ...input, evidence: ev }, mergeKey);
  }

  /**
   * Runs a format scanner, turning a parse error into a `parse-error` finding and any other failure into a
   * `scanner-internal-error` finding. Budget exhaustion passes through to the file level.
   */
  guard(format: string, fn: () => void): void {
    try {
      fn();
    } catch (e) {
      if (e instanceof BudgetExceeded) throw e;
      if (e instanceof BulwarkError) {
        const d = e.details ?? {};
        const fmt = typeof d['format'] === 'string' ? (d['format'] as string) : format;
        const offset = typeof d['offset'] === 'number' ? { offset: d['offset'] as number } : {};
        this.report('parse-error', { metric: `${fmt}.parse`, value: e.message, threshold: null, detail: fmt, evidence: { format: fmt, ...offset, code: e.code, message: e.message } });
        return;
      }
      const err = e as Error;
      this.report('scanner-internal-error', {
        metric: 'scanner.error',
        value: String(err?.message ?? e),
        threshold: null,
        evidence: { format, message: String(err?.message ?? e), stack: String(err?.stack ?? '').split('\n').slice(0, 4).join(' | ') },
      });
    }
  }

  /** Records that a member was scanned. */
  record(format: string, bytes: number, extra: Partial<ScannedItem> = {}): void {
    if (this.items.length >= 100000) return;
    const it: ScannedItem = { file: this.file, format, bytes, ...extra };
    if (this.innerPath !== undefined) it.innerPath = this.innerPath;
    this.items.push(it);
  }
}

/**
 * Throws the scanner's parse error for a format; the dispatcher turns it into a `parse-error` finding.
 * @throws BulwarkError BULWARK_E_SCAN_PARSE always
 */
export function scanParseError(format: string, message: string, offset?: number): never {
  throw new BulwarkError('BULWARK_E_SCAN_PARSE', `${format}: ${message}`, { details: offset === undefined ? { format } : { format, offset } });
}
