/**
 * A ZIP reader and writer (PKWARE APPNOTE 6.3), written for hostile input: every offset and size read from the
 * archive is bounds-checked before use, sizes are limited before anything is inflated, and inflation is capped
 * at the entry's declared size so a deflate bomb cannot allocate past it. Stored (0) and deflate (8) entries,
 * ZIP64 records, no encryption, no multi-disk archives.
 */
import { constants as bufferConstants } from 'node:buffer';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { BulwarkError } from './errors.js';

/** Safety limits for reading an archive; every field has a default (see {@link ZIP_DEFAULT_LIMITS}). */
export interface ZipLimits {
  /** Most entries the central directory may declare. */
  maxEntries?: number;
  /** Largest uncompressed size of one entry, in bytes. */
  maxEntryBytes?: number;
  /** Largest sum of the declared uncompressed sizes of all entries, in bytes. */
  maxTotalBytes?: number;
  /** Largest uncompressed / compressed size ratio of a deflated entry. */
  maxRatio?: number;
}

/** One entry of an archive's central directory. Sizes and offsets are the ZIP64 values when present. */
export interface ZipEntry {
  name: string;
  /** Compression method: 0 stored, 8 deflate (others are listed but cannot be read). */
  method: number;
  compressedSize: number;
  uncompressedSize: number;
  /** CRC-32 of the uncompressed bytes, as an unsigned 32-bit integer. */
  crc32: number;
  localHeaderOffset: number;
  isDirectory: boolean;
  isSymlink: boolean;
}

/** Default limits: 65536 entries, 4 GiB per entry, 16 GiB in total, compression ratio 1000. */
export const ZIP_DEFAULT_LIMITS: Readonly<Required<ZipLimits>> = Object.freeze({
  maxEntries: 65536,
  maxEntryBytes: 4 * 1024 ** 3,
  maxTotalBytes: 16 * 1024 ** 3,
  maxRatio: 1000,
});

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const LOCAL_LEN = 30;
const CENTRAL_LEN = 46;
const EOCD_LEN = 22;
const ZIP64_LOCATOR_LEN = 20;
const ZIP64_EOCD_LEN = 56;
const U16_MAX = 0xffff;
const U32_MAX = 0xffffffff;
const FLAG_ENCRYPTED = 0x1;
const FLAG_UTF8 = 0x800;
const HOST_UNIX = 3;
const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;
const S_IFDIR = 0o040000;

function formatError(message: string): never {
  throw new BulwarkError('BULWARK_E_DATA_FORMAT', `ZIP: ${message}`);
}

function limitError(message: string): never {
  throw new BulwarkError('BULWARK_E_LIMIT', `ZIP: ${message}`);
}

function resolveLimits(limits: ZipLimits | undefined): Required<ZipLimits> {
  return { ...ZIP_DEFAULT_LIMITS, ...stripUndefined(limits ?? {}) };
}

function stripUndefined(o: ZipLimits): ZipLimits {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as ZipLimits;
}

/** Bounds-checked little-endian reads over a byte array; a read past the end is a format error naming `what`. */
class ByteReader {
  private readonly view: DataView;
  readonly length: number;

  constructor(readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.length = bytes.byteLength;
  }

  need(offset: number, size: number, what: string): void {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + size > this.length) {
      formatError(`${what} at offset ${offset} (${size} bytes) lies outside the archive of ${this.length} bytes`);
    }
  }

  u16(offset: number, what: string): number {
    this.need(offset, 2, what);
    return this.view.getUint16(offset, true);
  }

  u32(offset: number, what: string): number {
    this.need(offset, 4, what);
    return this.view.getUint32(offset, true);
  }

  u64(offset: number, what: string): number {
    this.need(offset, 8, what);
    const v = this.view.getBigUint64(offset, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) formatError(`${what} is ${v}, larger than any real archive`);
    return Number(v);
  }
}

/**
 * Tells whether bytes start like a ZIP archive (a local file header, or the end record of an empty archive).
 * @param buf the bytes to test
 * @returns true when the first four bytes are a ZIP signature
 */
export function isZip(buf: Uint8Array): boolean {
  if (buf.byteLength < 4) return false;
  const sig = new DataView(buf.buffer, buf.byteOffset, 4).getUint32(0, true);
  return sig === SIG_LOCAL || (sig === SIG_EOCD && buf.byteLength >= EOCD_LEN);
}

interface DirectoryLocation {
  entries: number;
  cdOffset: number;
  cdEnd: number;
}

/** Finds the end-of-central-directory record, scanning back over a trailing comment of up to 64 KiB. */
function findEocd(r: ByteReader): number {
  if (r.length < EOCD_LEN) formatError(`${r.length} bytes is too short for an archive (no end-of-central-directory record)`);
  const lowest = Math.max(0, r.length - EOCD_LEN - U16_MAX);
  for (let pos = r.length - EOCD_LEN; pos >= lowest; pos--) {
    if (r.u32(pos, 'signature') === SIG_EOCD && pos + EOCD_LEN + r.u16(pos + 20, 'comment length') <= r.length) return pos;
  }
  return formatError('no end-of-central-directory record (the archive is truncated or not a ZIP file)');
}

/** Reads where the central directory is and how many entries it declares, from the classic or ZIP64 end records. */
function locateDirectory(r: ByteReader): DirectoryLocation {
  const eocd = findEocd(r);
  const disk = r.u16(eocd + 4, 'disk number');
  const cdDisk = r.u16(eocd + 6, 'central directory disk');
  let entries = r.u16(eocd + 10, 'entry count');
  let cdSize = r.u32(eocd + 12, 'central directory size');
  let cdOffset = r.u32(eocd + 16, 'central directory offset');
  let cdEnd = eocd;
  const hasLocator = eocd >= ZIP64_LOCATOR_LEN && r.u32(eocd - ZIP64_LOCATOR_LEN, 'ZIP64 locator') === SIG_ZIP64_LOCATOR;
  if (hasLocator) {
    const z = zip64Directory(r, eocd - ZIP64_LOCATOR_LEN);
    ({ entries, cdSize, cdOffset } = z);
    cdEnd = z.recordOffset;
  } else {
    if (entries === U16_MAX || cdSize === U32_MAX || cdOffset === U32_MAX) formatError('end record needs ZIP64 values but there is no ZIP64 locator');
    if ((disk !== 0 && disk !== U16_MAX) || (cdDisk !== 0 && cdDisk !== U16_MAX)) formatError('multi-disk (spanned) archives are not supported');
  }
  if (cdOffset + cdSize > cdEnd) formatError(`central directory (offset ${cdOffset}, ${cdSize} bytes) runs past its end record at ${cdEnd}`);
  if (entries * CENTRAL_LEN > cdSize) formatError(`${entries} entries declared but the central directory holds only ${cdSize} bytes`);
  return { entries, cdOffset, cdEnd: cdOffset + cdSize };
}

function zip64Directory(r: ByteReader, locator: number): { entries: number; cdSize: number; cdOffset: number; recordOffset: number } {
  if (r.u32(locator + 16, 'ZIP64 disk count') > 1) formatError('multi-disk (spanned) archives are not supported');
  const rec = r.u64(locator + 8, 'ZIP64 end record offset');
  if (rec + ZIP64_EOCD_LEN > locator) formatError(`ZIP64 end record offset ${rec} does not precede its locator at ${locator}`);
  if (r.u32(rec, 'ZIP64 end record') !== SIG_ZIP64_EOCD) formatError(`no ZIP64 end record signature at offset ${rec}`);
  if (r.u32(rec + 16, 'ZIP64 disk number') !== 0 || r.u32(rec + 20, 'ZIP64 central directory disk') !== 0) {
    formatError('multi-disk (spanned) archives are not supported');
  }
  return {
    entries: r.u64(rec + 32, 'ZIP64 entry count'),
    cdSize: r.u64(rec + 40, 'ZIP64 central directory size'),
    cdOffset: r.u64(rec + 48, 'ZIP64 central directory offset'),
    recordOffset: rec,
  };
}

function decodeName(bytes: Uint8Array, utf8Flag: boolean): string {
  if (utf8Flag) return new TextDecoder('utf-8').decode(bytes);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    // Pre-UTF-8 archives use a code page; latin1 keeps every byte distinguishable.
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
  }
}

interface RawSizes {
  uncompressedSize: number;
  compressedSize: number;
  localHeaderOffset: number;
  disk: number;
}

/** Replaces the 0xFFFFFFFF placeholders of a central header with the values of its ZIP64 extra field (id 1). */
function applyZip64Extra(r: ByteReader, start: number, end: number, raw: RawSizes, name: string): RawSizes {
  const out = { ...raw };
  for (let p = start; p + 4 <= end; ) {
    const id = r.u16(p, 'extra field id');
    const size = r.u16(p + 2, 'extra field size');
    if (p + 4 + size > end) formatError(`extra field of entry ${JSON.stringify(name)} runs past its header`);
    if (id === 1) {
      let q = p + 4;
      const take = (): number => {
        if (q + 8 > p + 4 + size) formatError(`ZIP64 extra field of entry ${JSON.stringify(name)} is too short`);
        const v = r.u64(q, 'ZIP64 size');
        q += 8;
        return v;
      };
      if (raw.uncompressedSize === U32_MAX) out.uncompressedSize = take();
      if (raw.compressedSize === U32_MAX) out.compressedSize = take();
      if (raw.localHeaderOffset === U32_MAX) out.localHeaderOffset = take();
      if (raw.disk === U16_MAX && q + 4 <= p + 4 + size) out.disk = r.u32(q, 'ZIP64 disk');
      return out;
    }
    p += 4 + size;
  }
  return out;
}

interface DataRange {
  start: number;
  end: number;
  flags: number;
  method: number;
  localName: string;
}

/** Where an entry's compressed bytes are, read from (and bounds-checked against) its local header. */
function dataRange(r: ByteReader, entry: ZipEntry, dataLimit: number): DataRange {
  const lho = entry.localHeaderOffset;
  const what = JSON.stringify(entry.name);
  r.need(lho, LOCAL_LEN, `local header of ${what}`);
  if (r.u32(lho, 'local header') !== SIG_LOCAL) formatError(`no local header signature for ${what} at offset ${lho}`);
  const flags = r.u16(lho + 6, 'flags');
  const nameLen = r.u16(lho + 26, 'name length');
  r.need(lho + LOCAL_LEN, nameLen, `local name of ${what}`);
  const localName = decodeName(r.bytes.subarray(lho + LOCAL_LEN, lho + LOCAL_LEN + nameLen), (flags & FLAG_UTF8) !== 0);
  const start = lho + LOCAL_LEN + nameLen + r.u16(lho + 28, 'extra length');
  const end = start + entry.compressedSize;
  if (end > dataLimit) {
    formatError(`data of ${what} (offset ${start}, ${entry.compressedSize} bytes) runs past ${dataLimit === r.length ? 'the end of the archive' : 'the central directory'}`);
  }
  return { start, end, flags, method: r.u16(lho + 8, 'method'), localName };
}

function parseCentralHeader(r: ByteReader, p: number, cdEnd: number): { entry: ZipEntry; next: number } {
  if (p + CENTRAL_LEN > cdEnd) formatError(`central directory ends inside an entry header at offset ${p}`);
  if (r.u32(p, 'central header') !== SIG_CENTRAL) formatError(`bad central directory header signature at offset ${p}`);
  const madeBy = r.u16(p + 4, 'version made by');
  const flags = r.u16(p + 8, 'flags');
  const nameLen = r.u16(p + 28, 'name length');
  const extraLen = r.u16(p + 30, 'extra length');
  const next = p + CENTRAL_LEN + nameLen + extraLen + r.u16(p + 32, 'comment length');
  if (next > cdEnd) formatError(`central directory entry at offset ${p} runs past the directory`);
  const nameStart = p + CENTRAL_LEN;
  const name = decodeName(r.bytes.subarray(nameStart, nameStart + nameLen), (flags & FLAG_UTF8) !== 0);
  const raw: RawSizes = {
    compressedSize: r.u32(p + 20, 'compressed size'),
    uncompressedSize: r.u32(p + 24, 'uncompressed size'),
    localHeaderOffset: r.u32(p + 42, 'local header offset'),
    disk: r.u16(p + 34, 'disk number'),
  };
  const sizes = applyZip64Extra(r, nameStart + nameLen, nameStart + nameLen + extraLen, raw, name);
  if (sizes.disk !== 0) formatError(`entry ${JSON.stringify(name)} lives on disk ${sizes.disk}; spanned archives are not supported`);
  const mode = (madeBy >>> 8) === HOST_UNIX ? (r.u32(p + 38, 'attributes') >>> 16) & S_IFMT : 0;
  const entry: ZipEntry = {
    name,
    method: r.u16(p + 10, 'method'),
    compressedSize: sizes.compressedSize,
    uncompressedSize: sizes.uncompressedSize,
    crc32: r.u32(p + 16, 'crc32'),
    localHeaderOffset: sizes.localHeaderOffset,
    isDirectory: name.endsWith('/') || mode === S_IFDIR,
    isSymlink: mode === S_IFLNK,
  };
  return { entry, next };
}

/**
 * Lists an archive's entries from its central directory (ZIP64 included), checking that every header, name and
 * data range lies inside the archive. Nothing is decompressed.
 * @param buf the whole archive
 * @param limits maxEntries and maxTotalBytes (sum of declared uncompressed sizes) are enforced here
 * @returns the entries in central-directory order
 * @throws BulwarkError BULWARK_E_DATA_FORMAT for a malformed archive, BULWARK_E_LIMIT when a limit is exceeded
 */
export function listZip(buf: Uint8Array, limits?: ZipLimits): ZipEntry[] {
  const lim = resolveLimits(limits);
  const r = new ByteReader(buf);
  const loc = locateDirectory(r);
  if (loc.entries > lim.maxEntries) limitError(`${loc.entries} entries, over the limit of ${lim.maxEntries}`);
  const entries: ZipEntry[] = [];
  let total = 0;
  let p = loc.cdOffset;
  for (let i = 0; i < loc.entries; i++) {
    const { entry, next } = parseCentralHeader(r, p, loc.cdEnd);
    dataRange(r, entry, loc.cdOffset);
    total += entry.uncompressedSize;
    if (total > lim.maxTotalBytes) limitError(`entries declare more than ${lim.maxTotalBytes} uncompressed bytes in total`);
    entries.push(entry);
    p = next;
  }
  return entries;
}

/**
 * Finds two entries whose local records (header, name, extra field and data) overlap. Overlapping entries are the
 * construction of non-recursive zip bombs (many entries inflating the same bytes); no honest writer makes them.
 * listZip does not refuse them itself, so a scanner can report them as a finding.
 * @param buf the whole archive
 * @param entries the entries listZip returned for it
 * @returns the first overlapping pair in offset order, or undefined
 * @throws BulwarkError BULWARK_E_DATA_FORMAT when an entry's local header lies outside the archive
 */
export function findOverlappingEntries(buf: Uint8Array, entries: readonly ZipEntry[]): [ZipEntry, ZipEntry] | undefined {
  const r = new ByteReader(buf);
  const spans = entries.map((e) => ({ e, from: e.localHeaderOffset, to: dataRange(r, e, r.length).end })).sort((a, b) => a.from - b.from);
  for (let i = 1; i < spans.length; i++) if (spans[i]!.from < spans[i - 1]!.to) return [spans[i - 1]!.e, spans[i]!.e];
  return undefined;
}

function checkEntryShape(entry: ZipEntry): void {
  for (const k of ['compressedSize', 'uncompressedSize', 'localHeaderOffset', 'method', 'crc32'] as const) {
    const v = entry[k];
    if (!Number.isSafeInteger(v) || v < 0) formatError(`entry ${JSON.stringify(entry.name)} has an invalid ${k} (${v})`);
  }
}

function checkEntryLimits(entry: ZipEntry, lim: Required<ZipLimits>): void {
  const what = JSON.stringify(entry.name);
  if (entry.uncompressedSize > lim.maxEntryBytes) limitError(`entry ${what} declares ${entry.uncompressedSize} bytes, over the limit of ${lim.maxEntryBytes}`);
  if (entry.method === 8 && entry.uncompressedSize > lim.maxRatio * Math.max(entry.compressedSize, 1)) {
    limitError(`entry ${what} would inflate ${entry.compressedSize} bytes to ${entry.uncompressedSize} (ratio over ${lim.maxRatio})`);
  }
  if (entry.uncompressedSize > bufferConstants.MAX_LENGTH) limitError(`entry ${what} (${entry.uncompressedSize} bytes) is larger than a buffer can be`);
}

function inflateBounded(src: Uint8Array, declared: number, name: string): Uint8Array {
  try {
    // Capping the output at the declared size is what stops a bomb: zlib aborts instead of growing the buffer.
    return inflateRawSync(src, { maxOutputLength: Math.max(1, declared) });
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError) formatError(`entry ${JSON.stringify(name)} inflates past its declared size of ${declared} bytes`);
    return formatError(`entry ${JSON.stringify(name)} holds corrupt deflate data (${(e as Error).message})`);
  }
}

/**
 * Reads one entry's uncompressed bytes, verifying its declared size and CRC-32. Stored entries come back as a
 * view into `buf` (no copy); deflated ones as a new buffer.
 * @param buf the whole archive
 * @param entry an entry returned by {@link listZip} for this archive
 * @param limits maxEntryBytes and maxRatio are enforced before anything is inflated
 * @returns the entry's bytes
 * @throws BulwarkError BULWARK_E_DATA_FORMAT for corrupt data, a CRC or size mismatch, an encrypted entry or an
 *   unsupported method; BULWARK_E_LIMIT when the entry exceeds a limit
 */
export function readZipEntry(buf: Uint8Array, entry: ZipEntry, limits?: ZipLimits): Uint8Array {
  checkEntryShape(entry);
  const what = JSON.stringify(entry.name);
  const r = new ByteReader(buf);
  const range = dataRange(r, entry, r.length);
  // A local name that differs from the central one is how an archive shows different files to different tools.
  if (range.localName !== entry.name) formatError(`local header at offset ${entry.localHeaderOffset} names ${JSON.stringify(range.localName)} but the central directory says ${what}`);
  if ((range.flags & FLAG_ENCRYPTED) !== 0) formatError(`entry ${what} is encrypted; encrypted archives are not supported`);
  if (range.method !== entry.method) formatError(`entry ${what}: local header says method ${range.method}, central directory says ${entry.method}`);
  if (entry.method !== 0 && entry.method !== 8) formatError(`entry ${what} uses compression method ${entry.method}; only stored (0) and deflate (8) are supported`);
  checkEntryLimits(entry, resolveLimits(limits));
  const src = buf.subarray(range.start, range.end);
  let out: Uint8Array;
  if (entry.method === 0) {
    if (entry.compressedSize !== entry.uncompressedSize) formatError(`stored entry ${what} has compressed size ${entry.compressedSize} but uncompressed size ${entry.uncompressedSize}`);
    out = src;
  } else {
    out = inflateBounded(src, entry.uncompressedSize, entry.name);
  }
  if (out.byteLength !== entry.uncompressedSize) formatError(`entry ${what} holds ${out.byteLength} bytes but declares ${entry.uncompressedSize}`);
  const crc = crc32(out);
  if (crc !== entry.crc32) formatError(`CRC-32 mismatch in entry ${what} (stored ${hex(entry.crc32)}, computed ${hex(crc)}): the data is corrupt`);
  return out;
}

function hex(n: number): string {
  return '0x' + n.toString(16).padStart(8, '0');
}

const CRC_TABLE: Uint32Array = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/**
 * CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), as used by ZIP and gzip.
 * @param data the bytes
 * @returns the checksum as an unsigned 32-bit integer
 */
export function crc32(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

// --------------------------------------------------------------------------------------------------- writer

/** Options of {@link writeZip}. */
export interface ZipWriteOptions {
  /** Deflate entries (an entry that does not shrink is stored instead). Default false: all stored. */
  deflate?: boolean;
  /** Write ZIP64 records even when no size needs them (for tests and strict consumers). Default false. */
  zip64?: boolean;
}

interface PreparedEntry {
  nameBytes: Buffer;
  method: number;
  body: Uint8Array;
  size: number;
  crc: number;
  offset: number;
}

const DOS_DATE_1980 = 0x21; // 1980-01-01, a fixed timestamp so equal inputs give byte-identical archives

function prepare(files: { name: string; data: Uint8Array }[], deflate: boolean): PreparedEntry[] {
  const seen = new Set<string>();
  return files.map((f) => {
    if (f.name.length === 0 || f.name.includes('\0')) throw new BulwarkError('BULWARK_E_ARG', `writeZip: invalid entry name ${JSON.stringify(f.name)}`);
    if (seen.has(f.name)) throw new BulwarkError('BULWARK_E_ARG', `writeZip: duplicate entry name ${JSON.stringify(f.name)}`);
    seen.add(f.name);
    const nameBytes = Buffer.from(f.name, 'utf8');
    if (nameBytes.length > U16_MAX) throw new BulwarkError('BULWARK_E_ARG', `writeZip: entry name longer than 65535 bytes`);
    const packed = deflate ? deflateRawSync(f.data) : undefined;
    const useDeflate = packed !== undefined && packed.length < f.data.length;
    return { nameBytes, method: useDeflate ? 8 : 0, body: useDeflate ? packed : f.data, size: f.data.length, crc: crc32(f.data), offset: 0 };
  });
}

function flagsOf(e: PreparedEntry): number {
  return /^[\x20-\x7e]*$/.test(e.nameBytes.toString('latin1')) ? 0 : FLAG_UTF8;
}

function localHeader(e: PreparedEntry, zip64: boolean): Buffer {
  const extra = zip64 ? Buffer.alloc(20) : Buffer.alloc(0);
  if (zip64) {
    extra.writeUInt16LE(1, 0);
    extra.writeUInt16LE(16, 2);
    extra.writeBigUInt64LE(BigInt(e.size), 4);
    extra.writeBigUInt64LE(BigInt(e.body.length), 12);
  }
  const h = Buffer.alloc(LOCAL_LEN);
  h.writeUInt32LE(SIG_LOCAL, 0);
  h.writeUInt16LE(zip64 ? 45 : 20, 4);
  h.writeUInt16LE(flagsOf(e), 6);
  h.writeUInt16LE(e.method, 8);
  h.writeUInt16LE(0, 10);
  h.writeUInt16LE(DOS_DATE_1980, 12);
  h.writeUInt32LE(e.crc, 14);
  h.writeUInt32LE(zip64 ? U32_MAX : e.body.length, 18);
  h.writeUInt32LE(zip64 ? U32_MAX : e.size, 22);
  h.writeUInt16LE(e.nameBytes.length, 26);
  h.writeUInt16LE(extra.length, 28);
  return Buffer.concat([h, e.nameBytes, extra]);
}

function centralHeader(e: PreparedEntry, force: boolean): Buffer {
  const big = (v: number): boolean => force || v >= U32_MAX;
  const extraValues = [e.size, e.body.length, e.offset].filter(big);
  const extra = Buffer.alloc(extraValues.length > 0 ? 4 + 8 * extraValues.length : 0);
  if (extraValues.length > 0) {
    extra.writeUInt16LE(1, 0);
    extra.writeUInt16LE(8 * extraValues.length, 2);
    extraValues.forEach((v, i) => extra.writeBigUInt64LE(BigInt(v), 4 + 8 * i));
  }
  const h = Buffer.alloc(CENTRAL_LEN);
  h.writeUInt32LE(SIG_CENTRAL, 0);
  h.writeUInt16LE((HOST_UNIX << 8) | 45, 4);
  h.writeUInt16LE(extraValues.length > 0 ? 45 : 20, 6);
  h.writeUInt16LE(flagsOf(e), 8);
  h.writeUInt16LE(e.method, 10);
  h.writeUInt16LE(0, 12);
  h.writeUInt16LE(DOS_DATE_1980, 14);
  h.writeUInt32LE(e.crc, 16);
  h.writeUInt32LE(big(e.body.length) ? U32_MAX : e.body.length, 20);
  h.writeUInt32LE(big(e.size) ? U32_MAX : e.size, 24);
  h.writeUInt16LE(e.nameBytes.length, 28);
  h.writeUInt16LE(extra.length, 30);
  h.writeUInt32LE(((0o100644 << 16) >>> 0), 38);
  h.writeUInt32LE(big(e.offset) ? U32_MAX : e.offset, 42);
  return Buffer.concat([h, e.nameBytes, extra]);
}

function endRecords(count: number, cdOffset: number, cdSize: number, force: boolean): Buffer {
  const zip64 = force || count >= U16_MAX || cdOffset >= U32_MAX || cdSize >= U32_MAX;
  const eocd = Buffer.alloc(EOCD_LEN);
  eocd.writeUInt32LE(SIG_EOCD, 0);
  eocd.writeUInt16LE(zip64 ? U16_MAX : count, 8);
  eocd.writeUInt16LE(zip64 ? U16_MAX : count, 10);
  eocd.writeUInt32LE(zip64 ? U32_MAX : cdSize, 12);
  eocd.writeUInt32LE(zip64 ? U32_MAX : cdOffset, 16);
  if (!zip64) return eocd;
  const rec = Buffer.alloc(ZIP64_EOCD_LEN);
  rec.writeUInt32LE(SIG_ZIP64_EOCD, 0);
  rec.writeBigUInt64LE(BigInt(ZIP64_EOCD_LEN - 12), 4);
  rec.writeUInt16LE((HOST_UNIX << 8) | 45, 12);
  rec.writeUInt16LE(45, 14);
  rec.writeBigUInt64LE(BigInt(count), 24);
  rec.writeBigUInt64LE(BigInt(count), 32);
  rec.writeBigUInt64LE(BigInt(cdSize), 40);
  rec.writeBigUInt64LE(BigInt(cdOffset), 48);
  const locator = Buffer.alloc(ZIP64_LOCATOR_LEN);
  locator.writeUInt32LE(SIG_ZIP64_LOCATOR, 0);
  locator.writeBigUInt64LE(BigInt(cdOffset + cdSize), 8);
  locator.writeUInt32LE(1, 16);
  return Buffer.concat([rec, locator, eocd]);
}

/**
 * Writes a ZIP archive. Entries get a fixed 1980-01-01 timestamp, so equal inputs give identical bytes.
 * ZIP64 records are written where sizes, offsets or the entry count need them.
 * @param files entries in order; names must be unique, non-empty and free of NUL
 * @param opts deflate entries, or force ZIP64 records
 * @returns the archive bytes
 * @throws BulwarkError BULWARK_E_ARG for an empty, duplicate or over-long name
 */
export function writeZip(files: { name: string; data: Uint8Array }[], opts: ZipWriteOptions = {}): Buffer {
  const entries = prepare(files, opts.deflate === true);
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const e of entries) {
    e.offset = offset;
    const zip64 = opts.zip64 === true || e.size >= U32_MAX || e.body.length >= U32_MAX;
    const h = localHeader(e, zip64);
    parts.push(h, e.body);
    offset += h.length + e.body.length;
  }
  const central = entries.map((e) => centralHeader(e, opts.zip64 === true));
  const cdSize = central.reduce((a, c) => a + c.length, 0);
  return Buffer.concat([...parts, ...central, endRecords(entries.length, offset, cdSize, opts.zip64 === true)]);
}
