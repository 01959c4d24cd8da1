import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DType, Tensor, TypedArray } from '../../src/core/tensor.js';
import { writeZip } from '../../src/core/zip.js';
import { encodeNpy, encodeNpz, readNpy, readNpz, readNpzArrays, writeNpy, writeNpz } from '../../src/data/npy.js';
import { fails } from '../helpers.js';

const FIXTURES = fileURLToPath(new URL('../../../fixtures/npy/', import.meta.url));
const TMP = mkdtempSync(join(tmpdir(), 'bulwark-npy-'));
after(() => rmSync(TMP, { recursive: true, force: true }));

interface Expected {
  dtype: string;
  shape: number[];
  values: (number | string)[];
}
const MANIFEST = JSON.parse(readFileSync(join(FIXTURES, 'manifest.json'), 'utf8')) as Record<string, Expected> & { npz: { x: Expected; y: Expected } };


/** Compares a tensor with manifest values: floats exactly (float32 after rounding), integers as decimal strings. */
function assertMatches(t: Tensor, exp: Expected, label: string): void {
  assert.deepEqual(t.shape, exp.shape, `${label} shape`);
  assert.equal(t.data.length, exp.values.length, `${label} size`);
  const data = t.data as ArrayLike<number | bigint>;
  exp.values.forEach((v, i) => {
    const got = data[i]!;
    if (typeof v === 'number') assert.equal(got, t.dtype === 'float32' ? Math.fround(v) : v, `${label}[${i}]`);
    else assert.equal(String(got), v, `${label}[${i}]`);
  });
}

const DTYPE_OF: Record<string, DType> = { f4: 'float32', f8: 'float64', i8: 'int64', i4: 'int32', i2: 'int16', u2: 'uint16', u1: 'uint8', i1: 'int8', b1: 'bool', u4: 'uint32', u8: 'uint64' };

test('reads every fixture written by NumPy (all dtypes, big-endian, Fortran order, v2/v3 headers)', () => {
  const names = Object.keys(MANIFEST).filter((k) => k.endsWith('.npy'));
  assert.ok(names.length >= 25, `${names.length} fixtures`);
  for (const name of names) {
    const exp = MANIFEST[name]!;
    const t = readNpy(join(FIXTURES, name));
    assert.equal(t.dtype, DTYPE_OF[exp.dtype.slice(1)], `${name} dtype`);
    assertMatches(t, exp, name);
  }
});

test('Fortran-ordered data comes back in C order', () => {
  const t = readNpy(join(FIXTURES, 'fortran_f4.npy'));
  assert.deepEqual(t.shape, [2, 3, 4]);
  // Element [1,2,3] of arange(24).reshape(2,3,4) * 0.5 is 23 * 0.5.
  assert.equal(t.data[1 * 12 + 2 * 4 + 3], 11.5);
  assert.deepEqual(Array.from(t.data.subarray(0, 4) as Float32Array), [0, 0.5, 1, 1.5]);
  const be = readNpy(join(FIXTURES, 'fortran_be_i2.npy'));
  assert.deepEqual(Array.from(be.data as Int16Array), Array.from({ length: 12 }, (_, i) => i - 6));
});

test('object, structured and float16 arrays are refused with a clear reason', () => {
  assert.throws(() => readNpy(join(FIXTURES, 'object.npy')), fails('BULWARK_E_NPY', /object arrays .* refused.*unpickle/));
  assert.throws(() => readNpy(join(FIXTURES, 'structured.npy')), fails('BULWARK_E_NPY', /structured/));
  assert.throws(() => readNpy(join(FIXTURES, 'float16.npy')), fails('BULWARK_E_NPY', /unsupported dtype "<f2"/));
});

const SAMPLES: Tensor[] = [
  { data: new Float32Array([1.5, -2, 3.25, 3.4e38, -0, 1e-40]), shape: [2, 3], dtype: 'float32' },
  { data: new Float64Array([Math.PI, -1e308, 5e-324, 0]), shape: [4], dtype: 'float64' },
  { data: new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n, 0n, -1n]), shape: [2, 2], dtype: 'int64' },
  { data: new BigUint64Array([0n, 2n ** 64n - 1n]), shape: [2], dtype: 'uint64' },
  { data: new Int32Array([-(2 ** 31), 2 ** 31 - 1, 5]), shape: [3], dtype: 'int32' },
  { data: new Uint32Array([0, 2 ** 32 - 1]), shape: [2, 1], dtype: 'uint32' },
  { data: new Int16Array([-32768, 32767]), shape: [2], dtype: 'int16' },
  { data: new Uint16Array([0, 65535, 258]), shape: [3], dtype: 'uint16' },
  { data: new Int8Array([-128, 127, 0]), shape: [1, 3], dtype: 'int8' },
  { data: new Uint8Array([0, 255, 9, 10]), shape: [2, 1, 2], dtype: 'uint8' },
  { data: new Uint8Array([1, 0, 1]), shape: [3], dtype: 'bool' },
  { data: new Float32Array([7]), shape: [], dtype: 'float32' },
  { data: new Float32Array(0), shape: [0, 5], dtype: 'float32' },
];

test('encode/read round trip for every dtype, scalars and empty arrays', () => {
  for (const t of SAMPLES) {
    const bytes = encodeNpy(t);
    const headerLen = bytes.readUInt16LE(8);
    assert.equal((10 + headerLen) % 64, 0, `${t.dtype}: data is 64-byte aligned`);
    const back = readNpy(bytes);
    assert.equal(back.dtype, t.dtype);
    assert.deepEqual(back.shape, t.shape);
    assert.deepEqual(back.data, t.data, t.dtype);
  }
});

test('writeNpy writes a file readNpy reads back', () => {
  const file = join(TMP, 'sub', 'a.npy');
  writeNpy(file, SAMPLES[0]!);
  assert.deepEqual(readNpy(file).data, SAMPLES[0]!.data);
});

test('reads format 2.0 with a header past 64 KiB; writes 1.0 for ordinary headers', () => {
  const shape = Array.from({ length: 64 }, () => 1);
  const t: Tensor = { data: new Float32Array([1]), shape, dtype: 'float32' };
  assert.equal(encodeNpy(t)[6], 1, 'short headers stay at 1.0');
  // Build a v2 file by hand around a header padded past 65535 bytes.
  const dict = `{'descr': '<i2', 'fortran_order': False, 'shape': (2,), }`;
  const header = dict + ' '.repeat(70000 - dict.length) + '\n';
  const head = Buffer.alloc(12);
  Buffer.from('\x93NUMPY', 'latin1').copy(head);
  head[6] = 2;
  head.writeUInt32LE(header.length, 8);
  const file = Buffer.concat([head, Buffer.from(header), Buffer.from(new Int16Array([3, -4]).buffer)]);
  assert.deepEqual(Array.from(readNpy(file).data as Int16Array), [3, -4]);
});

function npyWithHeader(dict: string, data: Uint8Array = new Uint8Array(0), version = 1): Buffer {
  const head = Buffer.alloc(version === 1 ? 10 : 12);
  Buffer.from('\x93NUMPY', 'latin1').copy(head);
  head[6] = version;
  if (version === 1) head.writeUInt16LE(dict.length, 8);
  else head.writeUInt32LE(dict.length, 8);
  return Buffer.concat([head, Buffer.from(dict, 'latin1'), data]);
}

test('hostile headers are errors, not allocations or code', () => {
  const four = new Uint8Array(4);
  const hdr = (shape: string, descr = '<f4'): string => `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  assert.throws(() => readNpy(npyWithHeader(hdr('(1000000000000,)'), four)), fails('BULWARK_E_NPY', /needs 4000000000000 data bytes but the file holds 4/));
  assert.throws(() => readNpy(npyWithHeader(hdr('(1099511627776, 1099511627776, 1099511627776)'), four)), fails('BULWARK_E_NPY', /data bytes/));
  assert.throws(() => readNpy(npyWithHeader(hdr('(99999999999999999999999,)'), four)), fails('BULWARK_E_NPY', /invalid dimension/));
  assert.throws(() => readNpy(npyWithHeader(hdr('(-1,)'), four)), fails('BULWARK_E_NPY', /invalid dimension/));
  assert.throws(() => readNpy(npyWithHeader(hdr('(2,)'), four)), fails('BULWARK_E_NPY', /needs 8 data bytes/));
  assert.throws(() => readNpy(npyWithHeader(`{'descr': __import__('os').system('id'), 'shape': (1,)}`, four)), fails('BULWARK_E_NPY', /malformed header/));
  assert.throws(() => readNpy(npyWithHeader(`{'descr': '<f4', 'shape': (1,)}`, four)), fails('BULWARK_E_NPY', /lacks 'fortran_order'/));
  assert.throws(() => readNpy(npyWithHeader(hdr('(1,)', '<c8'), four)), fails('BULWARK_E_NPY', /unsupported dtype/));
  assert.throws(() => readNpy(Buffer.from('not numpy at all')), fails('BULWARK_E_NPY', /magic/));
  assert.throws(() => readNpy(npyWithHeader(hdr('(1,)')).subarray(0, 9)), fails('BULWARK_E_NPY'));
  const lying = npyWithHeader(hdr('(1,)'), four);
  lying.writeUInt16LE(60000, 8);
  assert.throws(() => readNpy(lying), fails('BULWARK_E_NPY', /file ends first/));
  const huge = npyWithHeader(hdr('(1,)'), four, 2);
  huge.writeUInt32LE(0xfffffff0, 8);
  assert.throws(() => readNpy(huge), fails('BULWARK_E_LIMIT', /header/));
  assert.throws(() => readNpy(join(TMP, 'missing.npy')), fails('BULWARK_E_FILE_NOT_FOUND'));
});

test('every truncation of a .npy file is a BulwarkError', () => {
  const bytes = encodeNpy(SAMPLES[2]!);
  for (let len = 0; len < bytes.length; len++) assert.throws(() => readNpy(bytes.subarray(0, len)), fails('BULWARK_E_NPY'), `length ${len}`);
});

test('encodeNpy refuses a tensor whose data does not match its dtype or shape', () => {
  assert.throws(() => encodeNpy({ data: new Float32Array(3), shape: [2, 2], dtype: 'float32' }), fails('BULWARK_E_SHAPE'));
  assert.throws(() => encodeNpy({ data: new Float64Array(3), shape: [3], dtype: 'float32' }), fails('BULWARK_E_DTYPE'));
  assert.throws(() => encodeNpy({ data: new Uint16Array(3) as TypedArray, shape: [3], dtype: 'float16' }), fails('BULWARK_E_DTYPE'));
});

test('reads .npz archives written by NumPy (plain, compressed, positional, ZIP64)', () => {
  for (const name of ['xy.npz', 'xy_compressed.npz', 'zip64.npz']) {
    const arrays = readNpz(join(FIXTURES, name));
    assert.deepEqual(Object.keys(arrays), ['x', 'y'], name);
    assertMatches(arrays.x!, MANIFEST.npz.x, `${name}:x`);
    assertMatches(arrays.y!, MANIFEST.npz.y, `${name}:y`);
  }
  const positional = readNpzArrays(join(FIXTURES, 'positional.npz'));
  assert.deepEqual(positional.map((a) => [a.name, a.tensor.dtype]), [['arr_0', 'int32'], ['arr_1', 'float64']]);
});

test('writeNpz round trip, stored and compressed', () => {
  const arrays = { x: SAMPLES[0]!, labels: SAMPLES[4]!, big: { data: new Float32Array(10000), shape: [100, 100], dtype: 'float32' } as Tensor };
  for (const compress of [false, true]) {
    const file = join(TMP, `rt-${compress}.npz`);
    writeNpz(file, arrays, { compress });
    const back = readNpz(file);
    assert.deepEqual(Object.keys(back), ['x', 'labels', 'big']);
    for (const [k, t] of Object.entries(arrays)) assert.deepEqual(back[k]!.data, t.data, `${k} compress=${compress}`);
  }
  assert.ok(encodeNpz(arrays, { compress: true }).length < encodeNpz(arrays).length / 5);
});

test('hostile .npz archives: odd names are safe keys, non-array entries and non-ZIP input are refused', () => {
  const arr = encodeNpy(SAMPLES[4]!);
  const proto = readNpz(writeZip([{ name: '__proto__.npy', data: arr }]));
  assert.equal(Object.getPrototypeOf(proto), null);
  assert.deepEqual(Object.keys(proto), ['__proto__']);
  assert.throws(() => readNpz(writeZip([{ name: 'evil.pkl', data: arr }])), fails('BULWARK_E_NPY', /"evil.pkl" is not a .npy array/));
  assert.throws(() => readNpz(arr), fails('BULWARK_E_NPY', /not an .npz/));
  const two = writeZip([{ name: 'a.npy', data: arr }, { name: 'b.npy', data: arr }]);
  const second = two.indexOf(Buffer.from('PK\x01\x02'), two.readUInt32LE(two.length - 6) + 1);
  two.writeUInt32LE(0, second + 42); // b's central record now points at a's data
  assert.throws(() => readNpz(two), fails('BULWARK_E_NPY', /overlap/));
  assert.throws(() => readNpz(writeZip([{ name: 'x.npy', data: Buffer.from('garbage') }])), fails('BULWARK_E_NPY', /x\.npy.*magic/));
});

test('a header nested thousands of levels deep is a BULWARK_E_NPY, not a stack overflow', () => {
  const four = new Uint8Array(4);
  for (const depth of [40, 5000, 100_000]) {
    const shape = '('.repeat(depth) + '1,' + ')'.repeat(depth);
    const dict = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shape}, }`;
    assert.throws(() => readNpy(npyWithHeader(dict, four, 2)), fails('BULWARK_E_NPY', /nested deeper than 32 levels/), String(depth));
  }
});

test('untrusted header text is quoted with control characters escaped and cut to 200 characters', () => {
  const four = new Uint8Array(4);
  const hdr = (descr: string): string => `{'descr': '${descr}', 'fortran_order': False, 'shape': (1,), }`;
  const long = 'A'.repeat(1_000_000);
  let msg = '';
  assert.throws(() => readNpy(npyWithHeader(hdr(long), four, 2)), (e: Error) => ((msg = e.message), true));
  assert.ok(msg.length < 600, `message of ${msg.length} characters`);
  assert.match(msg, /"A{200}"\.\.\. \(1000000 characters\)/);
  assert.throws(() => readNpy(npyWithHeader(hdr('\x1b[31mRED\x1b]0;pwned\x07'), four)), (e: Error) => ((msg = e.message), true));
  assert.doesNotMatch(msg, /[\x00-\x1f\x7f]/);
  assert.match(msg, /"\\e\[31mRED\\e\]0;pwned\\u0007"/);
});
