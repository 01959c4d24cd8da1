/**
 * The scanner's entry points: format detection, the dispatcher that routes bytes to a format scanner, and
 * scanFile / scanBytes / scanPaths, which return one ScanResult.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BulwarkError } from '../../core/errors.js';
import { isZip } from '../../core/zip.js';
import { scanCompressed, scanTar, scanZip } from './archive.js';
import { Budget, BudgetExceeded, resolveOptions, ScanContext, type ResolvedScanOptions, type ScanOptions, type ScannedItem } from './context.js';
import { FindingSink, SEVERITIES, severityRank, type ScanFinding, type Severity } from './findings.js';
import { isHdf5, scanHdf5 } from './keras.js';
import { scanNpy } from './npy.js';
import { scanOnnx } from './onnx.js';
import { looksLikeBinaryPickle, PICKLE_OPCODES, trialPickle } from './pickle.js';
import { looksLikeSafetensors, scanSafetensors } from './safetensors.js';
import { isTar } from './tar.js';
import { scanPickleStream } from './torch.js';

/** Formats the scanner recognizes. */
export type ScanFormat = 'zip' | 'tar' | 'gzip' | 'zlib' | 'compressed-unsupported' | 'npy' | 'hdf5' | 'safetensors' | 'onnx' | 'pickle' | 'unknown';

const PICKLE_EXTENSIONS = new Set(['.pkl', '.pickle', '.pt', '.pth', '.bin', '.ckpt', '.joblib', '.jl', '.p', '.sav', '.dat', '.data', '.mar', '.model', '.npkl', '.dill']);
const COMPRESSED_EXTENSIONS = /\.(joblib|pkl|pickle|z|zlib|gz|jl)$/i;

function startsWith(buf: Uint8Array, bytes: number[], at = 0): boolean {
  if (buf.length < at + bytes.length) return false;
  for (let i = 0; i < bytes.length; i++) if (buf[at + i] !== bytes[i]) return false;
  return true;
}

/** Protocol 0/1 pickles have no magic: a leading GLOBAL line or a container opcode followed by a memo PUT. */
function looksLikeTextPickle(buf: Uint8Array): boolean {
  const head = Buffer.from(buf.subarray(0, 256)).toString('latin1');
  return /^c[A-Za-z_][\w.]*\n[A-Za-z_][\w.]*\n/.test(head) || /^\((dp|lp|tp|i[A-Za-z_]|c[A-Za-z_]|S'|V|I\d|N)/.test(head) || /^[\]})]q\x00/.test(head) || /^(\(|\]|\}|\))(X|K|J|U|h|c|\()/.test(head);
}

/**
 * Detects a file's format from its bytes (and, where there is no magic number, its name).
 * @param buf the bytes
 * @param name the file or member name
 */
export function sniffFormat(buf: Uint8Array, name: string): ScanFormat {
  const ext = path.extname(name).toLowerCase();
  if (isZip(buf)) return 'zip';
  if (startsWith(buf, [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59])) return 'npy';
  if (isHdf5(buf)) return 'hdf5';
  if (startsWith(buf, [0x1f, 0x8b])) return 'gzip';
  if (startsWith(buf, [0x42, 0x5a, 0x68]) || startsWith(buf, [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]) || startsWith(buf, [0x04, 0x22, 0x4d, 0x18]) || startsWith(buf, [0x28, 0xb5, 0x2f, 0xfd])) {
    return 'compressed-unsupported';
  }
  if (isTar(buf)) return 'tar';
  if (ext === '.safetensors' || looksLikeSafetensors(buf)) return 'safetensors';
  if (ext === '.onnx') return 'onnx';
  if (looksLikeBinaryPickle(buf)) return 'pickle';
  if (buf.length >= 2 && buf[0] === 0x78 && ((buf[0] << 8) | buf[1]!) % 31 === 0 && COMPRESSED_EXTENSIONS.test(name)) return 'zlib';
  if (PICKLE_EXTENSIONS.has(ext) && buf.length > 0 && PICKLE_OPCODES.has(buf[0]!)) return 'pickle';
  if (buf.length > 0 && PICKLE_OPCODES.has(buf[0]!) && looksLikeTextPickle(buf)) return 'pickle';
  return 'unknown';
}

/** Routes bytes to the scanner of their format; every failure becomes a finding. */
function dispatch(ctx: ScanContext, bytes: Uint8Array, name: string): void {
  ctx.budget.tick();
  let fmt = sniffFormat(bytes, name);
  if (fmt === 'unknown' && bytes.length > 1 && bytes[bytes.length - 1] === 0x2e && PICKLE_OPCODES.has(bytes[0]!)) {
    // A stream that parses to STOP is a pickle whatever its name.
    if (trialPickle(ctx, bytes, 0, {})) fmt = 'pickle';
  }
  ctx.guard(fmt, () => {
    switch (fmt) {
      case 'zip':
        return scanZip(ctx, bytes, name);
      case 'tar':
        return scanTar(ctx, bytes);
      case 'gzip':
      case 'zlib':
        return scanCompressed(ctx, bytes, name, fmt);
      case 'compressed-unsupported':
        ctx.record(fmt, bytes.length);
        ctx.report('compressed-unsupported', { metric: 'compression', value: name, threshold: 'gzip, zlib, zip', evidence: { format: fmt } });
        return;
      case 'npy':
        return scanNpy(ctx, bytes);
      case 'hdf5':
        return scanHdf5(ctx, bytes);
      case 'safetensors':
        return scanSafetensors(ctx, bytes);
      case 'onnx':
        return scanOnnx(ctx, bytes);
      case 'pickle':
        scanPickleStream(ctx, bytes);
        return;
      default:
        ctx.record('unknown', bytes.length);
    }
  });
}

/** The outcome of a scan. */
export interface ScanResult {
  /** Every file and archive member looked at, with its detected format. */
  scanned: ScannedItem[];
  findings: ScanFinding[];
  /** Findings per severity. */
  counts: Record<Severity, number>;
  /** The most severe finding, or null when there is none. */
  maxSeverity: Severity | null;
  /** The severity threshold used for `unsafe`. */
  failOn: Severity;
  /** True when some finding is at or above `failOn`. */
  unsafe: boolean;
  /** Findings dropped past the per-scan cap. */
  droppedFindings: number;
}

function summarize(items: ScannedItem[], sink: FindingSink, failOn: Severity): ScanResult {
  const counts = Object.fromEntries(SEVERITIES.map((s) => [s, 0])) as Record<Severity, number>;
  for (const f of sink.findings) counts[f.severity]++;
  const order = (f: ScanFinding): number => -severityRank(f.severity);
  const findings = [...sink.findings].sort((a, b) => order(a) - order(b) || a.evidence.file.localeCompare(b.evidence.file));
  const max = SEVERITIES.find((s) => counts[s] > 0) ?? null;
  return {
    scanned: items,
    findings,
    counts,
    maxSeverity: max,
    failOn,
    unsafe: findings.some((f) => severityRank(f.severity) >= severityRank(failOn)),
    droppedFindings: sink.dropped,
  };
}

/** Scans one buffer as a top-level file into `sink`, with its own budget. */
function scanTop(bytes: Uint8Array, name: string, dir: string | undefined, opts: ResolvedScanOptions, sink: FindingSink, items: ScannedItem[]): void {
  const budget = new Budget(opts.maxSteps, opts.maxTotalBytes);
  const ctx = new ScanContext(name, [], 0, opts, budget, sink, items, dir, dispatch);
  try {
    dispatch(ctx, bytes, name);
  } catch (e) {
    if (!(e instanceof BudgetExceeded)) throw e;
    ctx.report('scan-limit-exceeded', { metric: `scan.${e.limit.replace(/ /g, '_')}`, value: e.max, threshold: e.max, detail: `${e.limit} limit`, evidence: { message: e.message } });
  }
}

/**
 * Scans bytes held in memory. External references (ONNX external data) are only checked lexically.
 * @param bytes the file's bytes
 * @param name a name for evidence and for format detection by extension
 * @param options limits and policy
 * @returns the findings and what was scanned
 * @example const r = scanBytes(fs.readFileSync('model.pt'), 'model.pt'); if (r.unsafe) ...
 */
export function scanBytes(bytes: Uint8Array, name: string, options: ScanOptions = {}): ScanResult {
  const opts = resolveOptions(options);
  const sink = new FindingSink();
  const items: ScannedItem[] = [];
  scanTop(bytes, name, undefined, opts, sink, items);
  return summarize(items, sink, opts.failOn);
}

/** Lists the regular files under a folder, never following links out of it (links out are findings). */
function walkFolder(root: string, opts: ResolvedScanOptions, sink: FindingSink, shown: (p: string) => string): string[] {
  const rootReal = fs.realpathSync(root);
  const out: string[] = [];
  const seen = new Set<string>();
  const visit = (dir: string, depth: number): void => {
    if (depth > 64) return;
    let ents: fs.Dirent[];
    try {
      ents = fs.readdirSync(dir, { withFileTypes: true });
    } catch (e) {
      throw new BulwarkError('BULWARK_E_FILE_READ', `cannot list ${dir}: ${(e as Error).message}`);
    }
    ents.sort((a, b) => a.name.localeCompare(b.name));
    for (const ent of ents) {
      const p = path.join(dir, ent.name);
      if (ent.isSymbolicLink()) {
        let real: string;
        try {
          real = fs.realpathSync(p);
        } catch {
          continue; // dangling link
        }
        const rel = path.relative(rootReal, real);
        if (rel.startsWith('..') || path.isAbsolute(rel)) {
          sink.add('symlink-escape', shown(p), { metric: 'path.link_target', value: real, threshold: rootReal, detail: shown(p), evidence: { format: 'folder' } });
          continue;
        }
        if (fs.statSync(real).isFile() && !seen.has(real)) {
          seen.add(real);
          out.push(p);
        }
        continue;
      }
      if (ent.isDirectory()) visit(p, depth + 1);
      else if (ent.isFile()) {
        if (out.length >= opts.maxFiles) throw new BulwarkError('BULWARK_E_LIMIT', `more than ${opts.maxFiles} files under ${root}`);
        const real = fs.realpathSync(p);
        if (!seen.has(real)) {
          seen.add(real);
          out.push(p);
        }
      }
    }
  };
  visit(root, 0);
  return out;
}

function scanOneFile(file: string, shownName: string, opts: ResolvedScanOptions, sink: FindingSink, items: ScannedItem[]): void {
  const st = fs.statSync(file);
  if (st.size > opts.maxFileBytes) {
    sink.add('scan-limit-exceeded', shownName, { metric: 'file.bytes', value: st.size, threshold: opts.maxFileBytes, detail: 'file too large, not scanned', evidence: {} });
    items.push({ file: shownName, format: 'not-scanned', bytes: st.size });
    return;
  }
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw new BulwarkError('BULWARK_E_FILE_READ', `cannot read ${file}: ${(e as Error).message}`);
  }
  scanTop(bytes, shownName, path.dirname(path.resolve(file)), opts, sink, items);
}

/**
 * Scans files and folders on disk (folders recursively, without following links out of them).
 * @param paths files or folders
 * @param options limits and policy
 * @returns one result over all of them
 * @throws BulwarkError BULWARK_E_FILE_NOT_FOUND when a path does not exist (checked before anything is scanned)
 * @example const r = await scanPaths(['models/']); process.exitCode = r.unsafe ? 1 : 0;
 */
export async function scanPaths(paths: string[], options: ScanOptions = {}): Promise<ScanResult> {
  const opts = resolveOptions(options);
  const stats = paths.map((p) => {
    try {
      return fs.statSync(p);
    } catch {
      throw new BulwarkError('BULWARK_E_FILE_NOT_FOUND', `no such file or folder: ${p}`);
    }
  });
  const sink = new FindingSink();
  const items: ScannedItem[] = [];
  for (let i = 0; i < paths.length; i++) {
    const p = paths[i]!;
    const st = stats[i]!;
    if (st.isDirectory()) {
      const files = walkFolder(p, opts, sink, (f) => f);
      for (const f of files) {
        scanOneFile(f, f, opts, sink, items);
        await new Promise<void>((r) => setImmediate(r));
      }
    } else if (st.isFile()) {
      scanOneFile(p, p, opts, sink, items);
    } else {
      throw new BulwarkError('BULWARK_E_FILE_READ', `not a regular file or folder: ${p}`);
    }
  }
  return summarize(items, sink, opts.failOn);
}

/**
 * Scans one file or folder on disk.
 * @param file a model file, or a folder (scanned recursively, links out of it reported and not followed)
 * @param options limits and policy
 * @returns the findings and what was scanned
 * @throws BulwarkError BULWARK_E_FILE_NOT_FOUND when the path does not exist
 * @example
 * const r = await scanFile('checkpoint.pt');
 * for (const f of r.findings) console.log(f.severity, f.id, f.evidence.innerPath, f.evidence.offset);
 */
export function scanFile(file: string, options: ScanOptions = {}): Promise<ScanResult> {
  return scanPaths([file], options);
}
