import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createDeflateRaw } from 'node:zlib';
import { BulwarkError } from '../../src/core/errors.js';
import { Rng } from '../../src/core/rng.js';
import { crc32, findOverlappingEntries, isZip, listZip, readZipEntry, writeZip, type ZipEntry } from '../../src/core/zip.js';
import { fails } from '../helpers.js';

const FIXTURES = new URL('../../../fixtures/npy/', import.meta.url);


function readAll(buf: Uint8Array): Map<string, Uint8Array> {
  return new Map(listZip(buf).map((e) => [e.name, readZipEntry(buf, e)]));
}

const FILES = [
  { name: 'a.txt', data: Buffer.from('hello, zip '.repeat(200)) },
  { name: 'dir/émoji-✓.bin', data: new Uint8Array([0, 1, 2, 253, 254, 255]) },
  { name: 'empty', data: new Uint8Array(0) },
];

/** Builds a one-entry archive by hand, so tests can declare any size, CRC or method. */
function rawZip(name: string, method: number, payload: Uint8Array, crc: number, declared: number): Buffer {
  const nameBytes = Buffer.from(name);
  const local = Buffer.alloc(30);
  local.writeUInt32LE(0x04034b50, 0);
  local.writeUInt16LE(20, 4);
  local.writeUInt16LE(method, 8);
  local.writeUInt32LE(crc, 14);
  local.writeUInt32LE(payload.length, 18);
  local.writeUInt32LE(declared, 22);
  local.writeUInt16LE(nameBytes.length, 26);
  const central = Buffer.alloc(46);
  central.writeUInt32LE(0x02014b50, 0);
  central.writeUInt16LE(20, 4);
  central.writeUInt16LE(20, 6);
  central.writeUInt16LE(method, 10);
  central.writeUInt32LE(crc, 16);
  central.writeUInt32LE(payload.length, 20);
  central.writeUInt32LE(declared, 24);
  central.writeUInt16LE(nameBytes.length, 28);
  const cdOffset = 30 + nameBytes.length + payload.length;
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(1, 8);
  eocd.writeUInt16LE(1, 10);
  eocd.writeUInt32LE(46 + nameBytes.length, 12);
  eocd.writeUInt32LE(cdOffset, 16);
  return Buffer.concat([local, nameBytes, payload, central, nameBytes, eocd]);
}

/** Deflates `total` zero bytes in 1 MiB chunks, so the test never holds the uncompressed data. */
async function deflatedZeros(total: number): Promise<Buffer> {
  const d = createDeflateRaw({ level: 9 });
  const chunks: Buffer[] = [];
  d.on('data', (c: Buffer) => chunks.push(c));
  const chunk = Buffer.alloc(1 << 20);
  for (let done = 0; done < total; done += chunk.length) if (!d.write(chunk)) await once(d, 'drain');
  d.end();
  await once(d, 'end');
  return Buffer.concat(chunks);
}

/** Offset of the central directory header of the first entry (from the end record). */
function cdOffsetOf(buf: Buffer): number {
  return buf.readUInt32LE(buf.length - 22 + 16);
}

test('crc32 matches the standard check value', () => {
  assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
  assert.equal(crc32(new Uint8Array(0)), 0);
});

for (const [label, opts] of [
  ['stored', {}],
  ['deflated', { deflate: true }],
  ['forced ZIP64', { deflate: true, zip64: true }],
] as const) {
  test(`round trip: ${label}`, () => {
    const zip = writeZip(FILES, opts);
    assert.ok(isZip(zip));
    const entries = listZip(zip);
    assert.deepEqual(entries.map((e) => e.name), FILES.map((f) => f.name));
    for (const [i, e] of entries.entries()) {
      assert.equal(e.uncompressedSize, FILES[i]!.data.length);
      assert.equal(e.crc32, crc32(FILES[i]!.data));
      assert.equal(e.isDirectory, false);
      assert.equal(e.isSymlink, false);
      assert.deepEqual(Buffer.from(readZipEntry(zip, e)), Buffer.from(FILES[i]!.data));
    }
    if ('deflate' in opts) assert.equal(entries[0]!.method, 8, 'compressible text is deflated');
    assert.deepEqual(writeZip(FILES, opts), zip, 'equal inputs give identical bytes');
  });
}

test('isZip', () => {
  assert.equal(isZip(new Uint8Array([0x50, 0x4b, 0x03, 0x04, 0])), true);
  assert.equal(isZip(writeZip([])), true);
  assert.equal(isZip(Buffer.from('\x93NUMPY')), false);
  assert.equal(isZip(new Uint8Array(2)), false);
  assert.deepEqual(listZip(writeZip([])), []);
});

test('reads an archive with ZIP64 records written by Python zipfile', () => {
  const buf = readFileSync(new URL('zip64.npz', FIXTURES));
  const entries = listZip(buf);
  assert.deepEqual(entries.map((e) => e.name), ['x.npy', 'y.npy']);
  assert.ok(entries[1]!.localHeaderOffset > 0);
  for (const e of entries) assert.equal(readZipEntry(buf, e).length, e.uncompressedSize);
});

test('more than 65535 entries go through the ZIP64 end record; maxEntries is enforced', () => {
  const files = Array.from({ length: 70000 }, (_, i) => ({ name: `f${i}`, data: new Uint8Array([i & 255]) }));
  const zip = writeZip(files);
  const entries = listZip(zip, { maxEntries: 100000 });
  assert.equal(entries.length, 70000);
  assert.deepEqual([...readZipEntry(zip, entries[69999]!)], [69999 & 255]);
  assert.throws(() => listZip(zip), fails('BULWARK_E_LIMIT', /70000 entries/));
});

test('recognises directories and symbolic links from the central directory', () => {
  const zip = writeZip([{ name: 'folder/', data: new Uint8Array(0) }, { name: 'link', data: Buffer.from('/etc/passwd') }]);
  const linkHeader = zip.indexOf(Buffer.from('PK\x01\x02'), cdOffsetOf(zip) + 1);
  zip.writeUInt32LE((0o120777 << 16) >>> 0, linkHeader + 38);
  const [dir, link] = listZip(zip);
  assert.equal(dir!.isDirectory, true);
  assert.equal(link!.isSymlink, true);
  assert.equal(link!.isDirectory, false);
});

test('a corrupted byte is caught by the CRC-32 check', () => {
  const zip = writeZip([{ name: 'data.bin', data: new Uint8Array(64).fill(7) }]);
  const entry = listZip(zip)[0]!;
  zip[30 + 'data.bin'.length + 10] ^= 0xff;
  assert.throws(() => readZipEntry(zip, entry), fails('BULWARK_E_DATA_FORMAT', /CRC-32 mismatch in entry "data.bin"/));
});

test('every truncation of an archive is a format error, never a crash', () => {
  const zip = writeZip(FILES, { deflate: true });
  for (let len = 0; len < zip.length; len++) {
    assert.throws(() => readAll(zip.subarray(0, len)), fails('BULWARK_E_DATA_FORMAT'), `truncated to ${len} bytes`);
  }
});

test('random corruption gives a result or a BulwarkError, never another exception', () => {
  const rng = new Rng(1234);
  const zip = writeZip(FILES, { deflate: true, zip64: true });
  let rejected = 0;
  for (let trial = 0; trial < 3000; trial++) {
    const bad = Buffer.from(zip);
    for (let k = 1 + rng.int(4); k > 0; k--) bad[rng.int(bad.length)] = rng.int(256);
    try {
      readAll(bad);
    } catch (e) {
      assert.ok(e instanceof BulwarkError, `trial ${trial}: ${String(e)}`);
      rejected++;
    }
  }
  assert.ok(rejected > 1000, `most corruptions are detected (${rejected})`);
});

test('offsets and sizes pointing outside the archive are refused', () => {
  const base = writeZip([{ name: 'a', data: Buffer.from('abc') }]);
  const cd = cdOffsetOf(base);
  const patched = (at: number, value: number, width: 2 | 4 = 4): Buffer => {
    const b = Buffer.from(base);
    if (width === 4) b.writeUInt32LE(value, at);
    else b.writeUInt16LE(value, at);
    return b;
  };
  const eocd = base.length - 22;
  assert.throws(() => listZip(patched(cd + 42, 0x7ffffff0)), fails('BULWARK_E_DATA_FORMAT', /local header/));
  assert.throws(() => listZip(patched(cd + 20, 0xfffffff0)), fails('BULWARK_E_DATA_FORMAT', /runs past/));
  assert.throws(() => listZip(patched(eocd + 16, base.length + 100)), fails('BULWARK_E_DATA_FORMAT', /central directory/));
  assert.throws(() => listZip(patched(eocd + 10, 5000, 2)), fails('BULWARK_E_DATA_FORMAT', /5000 entries declared/));
  assert.throws(() => listZip(patched(cd + 28, 60000, 2)), fails('BULWARK_E_DATA_FORMAT', /runs past the directory/));
  const entry = listZip(base)[0]!;
  const forged = (p: Partial<ZipEntry>): ZipEntry => ({ ...entry, ...p });
  assert.throws(() => readZipEntry(base, forged({ localHeaderOffset: 1e12 })), fails('BULWARK_E_DATA_FORMAT', /outside the archive/));
  assert.throws(() => readZipEntry(base, forged({ compressedSize: -5 })), fails('BULWARK_E_DATA_FORMAT', /invalid compressedSize/));
  assert.throws(() => readZipEntry(base, forged({ compressedSize: 2 ** 40, uncompressedSize: 2 ** 40 })), fails('BULWARK_E_DATA_FORMAT', /runs past/));
  assert.throws(() => readZipEntry(base, forged({ compressedSize: 2 ** 60 })), fails('BULWARK_E_DATA_FORMAT', /invalid compressedSize/));
});

test('overlapping entries are found; a local/central name mismatch is refused on read', () => {
  const zip = writeZip([{ name: 'a', data: Buffer.from('first') }, { name: 'b', data: Buffer.from('second') }]);
  assert.equal(findOverlappingEntries(zip, listZip(zip)), undefined);
  const second = zip.indexOf(Buffer.from('PK\x01\x02'), cdOffsetOf(zip) + 1);
  const overlapped = Buffer.from(zip);
  overlapped.writeUInt32LE(0, second + 42);
  overlapped.write('a', second + 46);
  const pair = findOverlappingEntries(overlapped, listZip(overlapped));
  assert.deepEqual(pair?.map((e) => e.name), ['a', 'a']);
  const renamed = Buffer.from(zip);
  renamed.write('z', second + 46);
  const entries = listZip(renamed);
  assert.equal(entries[1]!.name, 'z', 'listing still works, so a scanner can report it');
  assert.throws(() => readZipEntry(renamed, entries[1]!), fails('BULWARK_E_DATA_FORMAT', /names "b" but the central directory says "z"/));
});

test('unsupported methods and encrypted entries are refused with a reason', () => {
  const data = Buffer.from('xyz');
  const zip = rawZip('m.bin', 12, data, crc32(data), 3);
  assert.throws(() => readZipEntry(zip, listZip(zip)[0]!), fails('BULWARK_E_DATA_FORMAT', /method 12/));
  const enc = writeZip([{ name: 'e', data }]);
  enc.writeUInt16LE(1, 6);
  assert.throws(() => readZipEntry(enc, listZip(enc)[0]!), fails('BULWARK_E_DATA_FORMAT', /encrypted/));
});

test('a deflate bomb (200 MB of zeros) is refused without inflating it', async () => {
  const total = 200 * 1024 * 1024;
  const packed = await deflatedZeros(total);
  assert.ok(packed.length < 300_000, `compressed to ${packed.length} bytes`);

  const honest = rawZip('zeros.bin', 8, packed, 0, total);
  const entry = listZip(honest)[0]!;
  assert.equal(entry.uncompressedSize, total);
  const before = process.memoryUsage().arrayBuffers;
  assert.throws(() => readZipEntry(honest, entry, { maxEntryBytes: 10 * 1024 * 1024 }), fails('BULWARK_E_LIMIT', /over the limit/));
  assert.throws(() => readZipEntry(honest, entry), fails('BULWARK_E_LIMIT', /ratio over 1000/));
  assert.throws(() => listZip(honest, { maxTotalBytes: 100 * 1024 * 1024 }), fails('BULWARK_E_LIMIT', /in total/));

  // An archive that lies about the size: inflation stops at the declared 1 MiB.
  const liar = rawZip('zeros.bin', 8, packed, 0, 1024 * 1024);
  assert.throws(() => readZipEntry(liar, listZip(liar)[0]!), fails('BULWARK_E_DATA_FORMAT', /inflates past its declared size/));
  const grown = process.memoryUsage().arrayBuffers - before;
  assert.ok(grown < 64 * 1024 * 1024, `no large allocation (${grown} bytes)`);
});

test('a declared size that disagrees with the data is refused', () => {
  const data = Buffer.from('some text that deflates, some text that deflates');
  const packed = writeZip([{ name: 'a', data }], { deflate: true });
  const entry = listZip(packed)[0]!;
  assert.throws(() => readZipEntry(packed, { ...entry, uncompressedSize: data.length + 10 }), fails('BULWARK_E_DATA_FORMAT', /holds \d+ bytes but declares/));
  const stored = rawZip('s', 0, data, crc32(data), data.length - 1);
  assert.throws(() => readZipEntry(stored, listZip(stored)[0]!), fails('BULWARK_E_DATA_FORMAT', /stored entry/));
});

test('writeZip refuses duplicate and empty names', () => {
  assert.throws(() => writeZip([{ name: 'a', data: new Uint8Array(1) }, { name: 'a', data: new Uint8Array(1) }]), fails('BULWARK_E_ARG', /duplicate/));
  assert.throws(() => writeZip([{ name: '', data: new Uint8Array(1) }]), fails('BULWARK_E_ARG', /invalid entry name/));
});
