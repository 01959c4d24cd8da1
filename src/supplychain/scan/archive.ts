/**
 * Archives: zip (PyTorch checkpoints, .npz, .keras, anything zipped), tar (legacy PyTorch checkpoints) and gzip /
 * zlib streams. Limits are checked on the directory before anything is inflated; members are scanned with format
 * detection, one archive level deeper, up to the depth limit.
 */
import { constants as bufferConstants } from 'node:buffer';
import { gunzipSync, inflateSync } from 'node:zlib';
import { BulwarkError } from '../../core/errors.js';
import { listZip, readZipEntry, type ZipEntry } from '../../core/zip.js';
import { ScanContext, scanParseError } from './context.js';
import { scanKerasConfig } from './keras.js';
import { looksLikeBinaryPickle } from './pickle.js';
import { listTar } from './tar.js';
import { checkZipStorages, LEGACY_TAR_MEMBERS, scanLegacyTarMember, scanPickleStream, storageRefs, type StorageRef } from './torch.js';

const MIB = 1024 * 1024;
/** Local header size; overlapping data ranges are detected with it as a lower bound. */
const LOCAL_HEADER = 30;

/** True when an archive member name is absolute or climbs out with `..`. */
export function unsafeMemberPath(name: string): boolean {
  if (name.startsWith('/') || name.startsWith('\\') || /^[A-Za-z]:/.test(name)) return true;
  return name.split(/[\\/]/).some((s) => s === '..');
}

function bomb(ctx: ScanContext, detail: string, metric: string, value: number | string, threshold: number | string): void {
  ctx.report('archive-bomb', { metric, value, threshold, detail, evidence: { format: 'archive', message: detail } });
}

/** Reports the nesting limit and returns true when `ctx` is too deep to open another archive. */
function tooDeep(ctx: ScanContext, format: string): boolean {
  if (ctx.depth < ctx.opts.maxDepth) return false;
  ctx.report('archive-nesting-limit', { metric: 'archive.depth', value: ctx.depth + 1, threshold: ctx.opts.maxDepth, detail: `${format} not opened`, evidence: { format } });
  return true;
}

function memberChecks(ctx: ScanContext, name: string, symlink: boolean, format: string): void {
  if (unsafeMemberPath(name)) {
    ctx.report('archive-path-traversal', { metric: 'archive.member_path', value: name, threshold: 'relative, no ..', detail: name, evidence: { format, innerPath: [...ctx.inner, name].join('/') } }, name);
  }
  if (symlink) {
    ctx.report('archive-symlink', { metric: 'archive.member_type', value: name, threshold: 'regular files', detail: name, evidence: { format, innerPath: [...ctx.inner, name].join('/') } }, name);
  }
}

/** Looks for zip bombs in the central directory: sizes, ratios and overlapping data. Returns true when refused. */
function zipBombCheck(ctx: ScanContext, entries: ZipEntry[]): boolean {
  const o = ctx.opts;
  for (const e of entries) {
    if (e.uncompressedSize > o.maxEntryBytes) {
      bomb(ctx, `member ${JSON.stringify(e.name)} declares ${e.uncompressedSize} bytes`, 'zip.entry_bytes', e.uncompressedSize, o.maxEntryBytes);
      return true;
    }
    if (e.method === 8 && e.uncompressedSize > MIB && e.uncompressedSize > o.maxRatio * Math.max(1, e.compressedSize)) {
      const ratio = Math.round(e.uncompressedSize / Math.max(1, e.compressedSize));
      bomb(ctx, `member ${JSON.stringify(e.name)} inflates ${e.compressedSize} bytes to ${e.uncompressedSize} (ratio ${ratio})`, 'zip.compression_ratio', ratio, o.maxRatio);
      return true;
    }
  }
  const sorted = [...entries].sort((a, b) => a.localHeaderOffset - b.localHeaderOffset);
  for (let i = 1; i < sorted.length; i++) {
    const a = sorted[i - 1]!;
    const b = sorted[i]!;
    if (b.localHeaderOffset < a.localHeaderOffset + LOCAL_HEADER + a.compressedSize) {
      bomb(ctx, `members ${JSON.stringify(a.name)} and ${JSON.stringify(b.name)} share data (overlapping-entry zip bomb)`, 'zip.overlapping_entries', 2, 0);
      return true;
    }
  }
  return false;
}

/**
 * Scans a zip archive and every member in it.
 * @param name the archive's file or member name (a `.keras` name marks a Keras archive)
 */
export function scanZip(ctx: ScanContext, buf: Uint8Array, name = ''): void {
  if (tooDeep(ctx, 'zip')) return;
  let entries: ZipEntry[];
  try {
    entries = listZip(buf, { maxEntries: ctx.opts.maxEntries, maxTotalBytes: ctx.opts.maxTotalBytes, maxEntryBytes: ctx.opts.maxEntryBytes, maxRatio: Number.MAX_SAFE_INTEGER });
  } catch (e) {
    if (e instanceof BulwarkError && e.code === 'BULWARK_E_LIMIT') {
      ctx.record('zip', buf.length);
      bomb(ctx, e.message, 'zip.directory', e.message, `${ctx.opts.maxEntries} entries, ${ctx.opts.maxTotalBytes} bytes`);
      return;
    }
    if (e instanceof BulwarkError) scanParseError('zip', e.message.replace(/^ZIP: /, ''));
    throw e;
  }
  ctx.budget.tick(entries.length);
  const names = new Set(entries.map((e) => e.name));
  const sizes = new Map(entries.map((e) => [e.name, e.uncompressedSize] as [string, number]));
  const torchPrefixes = entries.filter((e) => /(^|\/)data\.pkl$/.test(e.name)).map((e) => e.name.slice(0, -'data.pkl'.length));
  const isTorchScript = (p: string): boolean => entries.some((e) => e.name.startsWith(`${p}code/`)) || names.has(`${p}constants.pkl`);
  const keras = names.has('config.json') && (names.has('metadata.json') || names.has('model.weights.h5') || /\.keras$/i.test(name));
  const format = torchPrefixes.length > 0 ? 'torch-zip' : keras ? 'keras' : entries.length > 0 && entries.every((e) => e.name.endsWith('.npy')) ? 'npz' : 'zip';
  ctx.record(format, buf.length);
  if (zipBombCheck(ctx, entries)) return;

  const refs = new Map<string, Map<string, StorageRef>>();
  const prefixOf = (name: string): string | undefined => torchPrefixes.find((p) => name.startsWith(p));
  // Pickles first, so the storage references are known when the data records are reached.
  const ordered = [...entries].sort((a, b) => Number(!a.name.endsWith('.pkl')) - Number(!b.name.endsWith('.pkl')));
  for (const e of ordered) {
    ctx.budget.tick();
    memberChecks(ctx, e.name, e.isSymlink, 'zip');
    if (e.isDirectory || e.isSymlink) continue;
    const prefix = prefixOf(e.name);
    // Raw storage bytes that data.pkl references are never interpreted; skipping them keeps big checkpoints fast.
    if (prefix !== undefined && e.name.startsWith(`${prefix}data/`) && refs.get(prefix)?.has(e.name.slice(`${prefix}data/`.length))) continue;
    const child = ctx.child(e.name, true, prefix !== undefined && isTorchScript(prefix) ? { ...ctx.flags, torchscript: true } : ctx.flags);
    let data: Uint8Array | undefined;
    child.guard('zip', () => {
      if (e.method !== 0) ctx.budget.spend(e.uncompressedSize);
      data = readZipEntry(buf, e, { maxEntryBytes: ctx.opts.maxEntryBytes, maxRatio: Number.MAX_SAFE_INTEGER });
    });
    if (data === undefined) continue;
    const bytes = data;
    if (prefix !== undefined && e.name === `${prefix}data.pkl`) {
      child.guard('pickle', () => {
        const first = scanPickleStream(child, bytes);
        if (first.ok) refs.set(prefix, storageRefs(first.persids));
      });
      continue;
    }
    if (prefix !== undefined && e.name.startsWith(`${prefix}data/`)) {
      // Unreferenced storage bytes: only looked into when they carry a known magic.
      if (looksLikeBinaryPickle(bytes) || bytes[0] === 0x50 || bytes[0] === 0x93) child.dispatch(child, bytes, e.name);
      continue;
    }
    if (keras && e.name === 'config.json') {
      child.guard('keras', () => scanKerasConfig(child, bytes));
      continue;
    }
    child.dispatch(child, bytes, e.name);
  }
  for (const [prefix, r] of refs) checkZipStorages(ctx.withFlags({}), prefix, r, sizes);
}

/** Scans a tar archive; a legacy PyTorch tar checkpoint's members are read with their record layouts. */
export function scanTar(ctx: ScanContext, buf: Uint8Array): void {
  if (tooDeep(ctx, 'tar')) return;
  const entries = listTar(buf, ctx.opts.maxEntries, () => ctx.budget.tick());
  const legacy = entries.some((e) => e.name === 'pickle') && entries.some((e) => e.name === 'storages');
  ctx.record(legacy ? 'torch-legacy-tar' : 'tar', buf.length);
  for (const e of entries) {
    ctx.budget.tick();
    const link = e.type === '1' || e.type === '2';
    memberChecks(ctx, e.name, link, 'tar');
    if (e.type !== '0' && e.type !== '7') continue;
    const data = buf.subarray(e.dataOffset, e.dataOffset + e.size);
    const child = ctx.child(e.name, true);
    if (legacy && LEGACY_TAR_MEMBERS.has(e.name)) child.guard('torch', () => scanLegacyTarMember(child, e.name, data));
    else child.dispatch(child, data, e.name);
  }
}

/** Decompresses a gzip or zlib stream within the byte budget and scans what it holds. */
export function scanCompressed(ctx: ScanContext, buf: Uint8Array, name: string, kind: 'gzip' | 'zlib'): void {
  if (tooDeep(ctx, kind)) return;
  const room = Math.max(0, Math.min(ctx.opts.maxEntryBytes, ctx.budget.maxBytes - ctx.budget.bytes, bufferConstants.MAX_LENGTH));
  let out: Buffer;
  try {
    out = kind === 'gzip' ? gunzipSync(buf, { maxOutputLength: Math.max(1, room) }) : inflateSync(buf, { maxOutputLength: Math.max(1, room) });
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError) {
      bomb(ctx, `${kind} stream inflates past ${room} bytes`, `${kind}.inflated_bytes`, `>${room}`, room);
      return;
    }
    scanParseError(kind, `corrupt ${kind} stream (${(e as Error).message})`);
  }
  ctx.budget.spend(out.length);
  if (out.length > MIB && out.length > ctx.opts.maxRatio * Math.max(1, buf.length)) {
    bomb(ctx, `${kind} stream inflates ${buf.length} bytes to ${out.length}`, `${kind}.compression_ratio`, Math.round(out.length / Math.max(1, buf.length)), ctx.opts.maxRatio);
    return;
  }
  ctx.record(kind, buf.length);
  const base = name.split('/').pop() ?? name;
  const inner = base.replace(/\.(gz|gzip|z|zlib)$/i, '') || `${base}.decompressed`;
  ctx.dispatch(ctx.child(inner === base ? `${base}.decompressed` : inner, true), out, inner);
}

