/**
 * Pickle files and PyTorch checkpoint layouts: plain and stacked pickles, the legacy stacked-pickle format
 * (magic number, protocol, sys_info, main pickle, storage keys, raw storages), the legacy tar format
 * (sys_info / pickle / storages / tensors members) and the storage records of zip checkpoints.
 */
import { ScanContext, scanParseError } from './context.js';
import { intOf, item, looksLikeBinaryPickle, scanPickle, strOf, trialPickle, type PickleOutcome, type PV } from './pickle.js';

/** The magic number the legacy format writes as its first pickle. */
export const TORCH_LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;

const STORAGE_ELEMENT_BYTES: Record<string, number> = {
  DoubleStorage: 8, FloatStorage: 4, HalfStorage: 2, LongStorage: 8, IntStorage: 4, ShortStorage: 2, CharStorage: 1, ByteStorage: 1,
  BoolStorage: 1, BFloat16Storage: 2, ComplexDoubleStorage: 16, ComplexFloatStorage: 8, QUInt8Storage: 1, QInt8Storage: 1,
  QInt32Storage: 4, QUInt4x2Storage: 1, QUInt2x4Storage: 1, UntypedStorage: 1,
};

/** A storage referenced by a checkpoint pickle's persistent ids. */
export interface StorageRef {
  key: string;
  type: string;
  /** Bytes per element, when the storage type is known. */
  elementBytes: number | undefined;
  /** Elements declared by the persistent id. */
  numel: bigint | undefined;
}

/** Collects the ('storage', type, key, location, numel, ...) persistent ids of a torch pickle. */
export function storageRefs(persids: PV[]): Map<string, StorageRef> {
  const out = new Map<string, StorageRef>();
  for (const p of persids) {
    if (strOf(item(p, 0)) !== 'storage') continue;
    const t = item(p, 1);
    const key = strOf(item(p, 2));
    if (key === undefined) continue;
    const type = t && t.t === 'global' ? t.name : '?';
    out.set(key, { key, type, elementBytes: STORAGE_ELEMENT_BYTES[type], numel: intOf(item(p, 4)) });
  }
  return out;
}

function mismatch(ctx: ScanContext, detail: string, offset?: number): void {
  ctx.report('torch-storage-mismatch', { metric: 'torch.storage', value: detail, threshold: 'storage records match the pickle', detail, evidence: { format: 'torch', ...(offset !== undefined ? { offset } : {}) } }, detail);
}

/**
 * Scans a file that starts with a pickle: the pickle, any pickles stacked after it, and, for the legacy PyTorch
 * format, the storage records that follow the pickles.
 */
export function scanPickleStream(ctx: ScanContext, buf: Uint8Array): PickleOutcome {
  const first = scanPickle(ctx, buf, 0);
  const globals = new Set(first.globals);
  if (!first.ok) {
    record(ctx, buf, globals);
    return first;
  }
  if (intOf(first.result) === TORCH_LEGACY_MAGIC) {
    scanLegacyStream(ctx, buf, first.end, globals);
    record(ctx, buf, globals, 'torch-legacy');
    return first;
  }
  let pos = first.end;
  for (let idx = 1; pos < buf.length; idx++) {
    ctx.budget.tick();
    if (isPadding(buf, pos)) break;
    const trial = trialPickle(ctx, buf, pos, { pickleIndex: idx });
    if (!trial) {
      trailing(ctx, buf, pos);
      break;
    }
    for (const f of trial.sink.findings) ctx.sink.findings.push(f);
    for (const g of trial.outcome.globals) globals.add(g);
    pos = trial.outcome.end;
  }
  record(ctx, buf, globals);
  return first;
}

function isPadding(buf: Uint8Array, pos: number): boolean {
  for (let i = pos; i < buf.length; i++) if (buf[i] !== 0 && buf[i] !== 0x0a && buf[i] !== 0x20) return false;
  return true;
}

function trailing(ctx: ScanContext, buf: Uint8Array, pos: number): void {
  ctx.report('pickle-trailing-data', { metric: 'pickle.trailing_bytes', value: buf.length - pos, threshold: 0, evidence: { format: 'pickle', offset: pos } });
}

function record(ctx: ScanContext, buf: Uint8Array, globals: Set<string>, format = 'pickle'): void {
  ctx.record(format, buf.length, { globals: [...globals].slice(0, 200) });
}

/** The legacy stream after its magic-number pickle: protocol, sys_info, main pickle, keys, raw storages. */
function scanLegacyStream(ctx: ScanContext, buf: Uint8Array, start: number, globals: Set<string>): void {
  let pos = start;
  const outs = [];
  for (let i = 1; i <= 4; i++) {
    const o = scanPickle(ctx, buf, pos, { pickleIndex: i });
    for (const g of o.globals) globals.add(g);
    if (!o.ok) return;
    outs.push(o);
    pos = o.end;
  }
  const refs = storageRefs(outs[2]!.persids);
  const keys = outs[3]!.result;
  if (!keys || keys.t !== 'list' || keys.items.length !== keys.n) {
    mismatch(ctx, 'the storage key list after the main pickle is not a list of keys', outs[2]!.end);
    return;
  }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const seen = new Set<string>();
  for (const k of keys.items) {
    ctx.budget.tick();
    const key = strOf(k);
    if (key === undefined) return mismatch(ctx, 'a storage key is not a string', pos);
    seen.add(key);
    const ref = refs.get(key);
    if (!ref) return mismatch(ctx, `storage ${key} has a data record but no reference in the pickle`, pos);
    if (ref.elementBytes === undefined) return; // unknown storage type: the records cannot be sized
    if (pos + 8 > buf.length) return mismatch(ctx, `storage ${key}: record header runs past the end of the file`, pos);
    const numel = view.getBigUint64(pos, true);
    if (ref.numel !== undefined && ref.numel !== numel) mismatch(ctx, `storage ${key}: the pickle declares ${ref.numel} elements, the record ${numel}`, pos);
    const bytes = numel * BigInt(ref.elementBytes);
    if (bytes > BigInt(buf.length - pos - 8)) return mismatch(ctx, `storage ${key}: ${bytes} data bytes run past the end of the file`, pos);
    pos += 8 + Number(bytes);
  }
  for (const key of refs.keys()) if (!seen.has(key)) mismatch(ctx, `storage ${key} is referenced by the pickle but has no data record`);
  if (pos < buf.length) {
    const trial = looksLikeBinaryPickle(buf, pos) ? trialPickle(ctx, buf, pos, { pickleIndex: 5 }) : undefined;
    if (trial) for (const f of trial.sink.findings) ctx.sink.findings.push(f);
    trailing(ctx, buf, pos);
  }
}

/** Names of the members of a legacy PyTorch tar checkpoint. */
export const LEGACY_TAR_MEMBERS = new Set(['sys_info', 'pickle', 'storages', 'tensors']);

/**
 * Scans one member of a legacy tar checkpoint. `storages` and `tensors` interleave small pickles with raw
 * records; every pickle among them is scanned.
 */
export function scanLegacyTarMember(ctx: ScanContext, name: string, data: Uint8Array): void {
  if (name === 'sys_info' || name === 'pickle') {
    scanPickleStream(ctx, data);
    return;
  }
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const count = scanPickle(ctx, data, 0);
  if (!count.ok) return;
  const n = intOf(count.result);
  if (n === undefined || n < 0n) scanParseError('torch', `${name}: record count is not a non-negative integer`, 0);
  let pos = count.end;
  for (let i = 0n; i < n; i++) {
    ctx.budget.tick();
    const args = scanPickle(ctx, data, pos, { pickleIndex: Number(i) + 1 });
    if (!args.ok) return;
    pos = args.end;
    if (name === 'storages') {
      const t = item(args.result, 2);
      const size = t && t.t === 'global' ? STORAGE_ELEMENT_BYTES[t.name] : undefined;
      if (size === undefined) scanParseError('torch', 'storages: unknown storage type, records cannot be sized', pos);
      if (pos + 8 > data.length) scanParseError('torch', 'storages: record runs past the end', pos);
      const bytes = view.getBigUint64(pos, true) * BigInt(size);
      if (bytes > BigInt(data.length - pos - 8)) scanParseError('torch', 'storages: record data runs past the end', pos);
      pos += 8 + Number(bytes);
    } else {
      if (pos + 8 > data.length) scanParseError('torch', 'tensors: record runs past the end', pos);
      const ndim = view.getInt32(pos, true);
      if (ndim < 0 || ndim > 64) scanParseError('torch', `tensors: ${ndim} dimensions`, pos);
      const len = 8 + 16 * ndim + 8;
      if (pos + len > data.length) scanParseError('torch', 'tensors: record runs past the end', pos);
      pos += len;
    }
  }
  if (pos < data.length) trailing(ctx, data, pos);
  ctx.record('torch-legacy-tar-member', data.length);
}

/** Checks a zip checkpoint's data records against the storages its data.pkl references. */
export function checkZipStorages(ctx: ScanContext, prefix: string, refs: Map<string, StorageRef>, sizes: Map<string, number>): void {
  for (const ref of refs.values()) {
    const path = `${prefix}data/${ref.key}`;
    const size = sizes.get(path);
    if (size === undefined) {
      mismatch(ctx, `storage ${ref.key} is referenced by the pickle but ${path} is missing`);
      continue;
    }
    if (ref.elementBytes !== undefined && ref.numel !== undefined && BigInt(size) !== ref.numel * BigInt(ref.elementBytes)) {
      mismatch(ctx, `storage ${ref.key}: the pickle declares ${ref.numel} x ${ref.elementBytes} bytes, ${path} holds ${size}`);
    }
  }
}
