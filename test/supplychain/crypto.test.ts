import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { BulwarkError, type ErrorCode } from '../../src/core/errors.js';
import {
  DEFAULT_CHUNK_SIZE,
  ENC_MAGIC,
  HEADER_LAYOUT,
  TAG_LENGTH,
  decryptFile,
  encryptFile,
  generateKeyPair,
  parseEncryptedHeader,
  type BulwarkKeyPair,
} from '../../src/supplychain/index.js';

let tmp: string;
let A: BulwarkKeyPair;
let B: BulwarkKeyPair;
let n = 0;

function fresh(name: string): string {
  const d = path.join(tmp, `${++n}`);
  fs.mkdirSync(d);
  return path.join(d, name);
}

async function roundTrip(size: number, chunkSize?: number): Promise<{ enc: string; plain: Buffer }> {
  const f = fresh('model.bin');
  const plain = randomBytes(size);
  fs.writeFileSync(f, plain);
  const opts = chunkSize === undefined ? {} : { chunkSize };
  const er = await encryptFile(f, `${f}.enc`, A.publicKey, opts);
  const cs = chunkSize ?? DEFAULT_CHUNK_SIZE;
  const chunks = Math.max(1, Math.ceil(size / cs));
  assert.equal(er.chunks, chunks);
  assert.equal(fs.statSync(`${f}.enc`).size, HEADER_LAYOUT.length + size + chunks * TAG_LENGTH);
  const dr = await decryptFile(`${f}.enc`, `${f}.out`, A.privateKey);
  assert.equal(dr.chunks, chunks);
  assert.equal(dr.plaintextBytes, size);
  assert.ok(fs.readFileSync(`${f}.out`).equals(plain), `round trip of ${size} bytes`);
  if (process.platform !== 'win32') assert.equal(fs.statSync(`${f}.out`).mode & 0o777, 0o600);
  return { enc: `${f}.enc`, plain };
}

/** Decrypting `bytes` (a modified encrypted file) must fail with `code` and leave no output and no temp file. */
async function expectFailure(bytes: Buffer, code: ErrorCode, message: RegExp, key = A): Promise<void> {
  const f = fresh('tampered.enc');
  fs.writeFileSync(f, bytes);
  const out = path.join(path.dirname(f), 'plain.bin');
  await assert.rejects(decryptFile(f, out, key.privateKey), (e: unknown) => {
    assert.ok(e instanceof BulwarkError, String(e));
    assert.equal(e.code, code, e.message);
    assert.match(e.message, message);
    return true;
  });
  assert.equal(fs.existsSync(out), false, 'no output file');
  assert.deepEqual(fs.readdirSync(path.dirname(f)), ['tampered.enc'], 'no temporary file left');
}

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-crypto-test-'));
  A = generateKeyPair();
  B = generateKeyPair();
});

after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('encrypt/decrypt round trip', () => {
  test('empty file', async () => {
    await roundTrip(0);
  });
  test('1-byte file', async () => {
    await roundTrip(1);
  });
  test('exactly one chunk (1 MiB, the default chunk size)', async () => {
    await roundTrip(DEFAULT_CHUNK_SIZE);
  });
  test('one chunk plus one byte', async () => {
    await roundTrip(DEFAULT_CHUNK_SIZE + 1);
  });
  test('multi-chunk, default chunk size (3.5 MiB)', async () => {
    await roundTrip(3.5 * DEFAULT_CHUNK_SIZE);
  });
  test('multi-chunk with small chunks, exact multiple and remainder', async () => {
    await roundTrip(4 * 1024, 1024);
    await roundTrip(10 * 1000 + 7, 1000);
    await roundTrip(16, 16);
  });
  test('each encryption is fresh (new data key, nonces and encapsulation)', async () => {
    const f = fresh('x.bin');
    fs.writeFileSync(f, 'same content');
    await encryptFile(f, `${f}.1`, A.publicKey);
    await encryptFile(f, `${f}.2`, A.publicKey);
    const a = fs.readFileSync(`${f}.1`);
    const b = fs.readFileSync(`${f}.2`);
    assert.ok(!a.equals(b));
    assert.ok(!a.subarray(HEADER_LAYOUT.length).equals(b.subarray(HEADER_LAYOUT.length)));
  });
  test('header fields', async () => {
    const { enc } = await roundTrip(5000, 2048);
    const h = parseEncryptedHeader(fs.readFileSync(enc));
    assert.equal(h.version, 1);
    assert.equal(h.suite, 1);
    assert.equal(h.chunkSize, 2048);
    assert.equal(h.recipientKeyId, A.publicKey.encryption.keyId);
    assert.ok(fs.readFileSync(enc).subarray(0, 8).equals(ENC_MAGIC));
  });
  test('reports progress', async () => {
    const f = fresh('p.bin');
    fs.writeFileSync(f, randomBytes(5000));
    const seen: number[] = [];
    await encryptFile(f, `${f}.enc`, A.publicKey, { chunkSize: 1000, onProgress: (d) => seen.push(d) });
    assert.deepEqual(seen, [1000, 2000, 3000, 4000, 5000]);
  });
});

describe('tampering fails loudly and leaves no output', () => {
  const CS = 1024;
  let enc: Buffer;
  before(async () => {
    const f = fresh('victim.bin');
    fs.writeFileSync(f, randomBytes(3 * CS + 100)); // chunks: 3 full + 1 partial
    await encryptFile(f, `${f}.enc`, A.publicKey, { chunkSize: CS });
    enc = fs.readFileSync(`${f}.enc`);
  });
  const H = HEADER_LAYOUT;
  const chunkStart = (i: number) => H.length + i * (CS + TAG_LENGTH);
  const flip = (at: number): Buffer => {
    const b = Buffer.from(enc);
    b[at] = b[at]! ^ 0x01;
    return b;
  };

  test('the unmodified file decrypts', async () => {
    const f = fresh('ok.enc');
    fs.writeFileSync(f, enc);
    await decryptFile(f, `${f}.out`, A.privateKey);
  });

  test('header: magic, version, suite (format errors, exit 2)', async () => {
    await expectFailure(flip(H.magic + 3), 'BULWARK_E_ENC_FORMAT', /not a Bulwark encrypted file/);
    await expectFailure(flip(H.version), 'BULWARK_E_ENC_FORMAT', /unsupported encrypted file version/);
    await expectFailure(flip(H.suite), 'BULWARK_E_ENC_FORMAT', /unsupported cipher suite/);
    await expectFailure(Buffer.from('hello'), 'BULWARK_E_ENC_FORMAT', /not a Bulwark encrypted file/);
  });

  test('header: reserved bytes, chunk size, recipient key id', async () => {
    await expectFailure(flip(H.reserved + 1), 'BULWARK_E_DECRYPT', /header is corrupt/);
    await expectFailure(flip(H.chunkSize + 3), 'BULWARK_E_DECRYPT', /failed authentication|unwrap/);
    const big = Buffer.from(enc);
    big.writeUInt32BE(0xffffffff, H.chunkSize);
    await expectFailure(big, 'BULWARK_E_DECRYPT', /chunk size/);
    await expectFailure(flip(H.recipientKeyId + 5), 'BULWARK_E_DECRYPT', /encrypted for key/);
  });

  test('header: X25519 ephemeral key, ML-KEM ciphertext, nonce prefix, wrap nonce', async () => {
    await expectFailure(flip(H.x25519Ephemeral + 7), 'BULWARK_E_DECRYPT', /unwrap|X25519/);
    await expectFailure(flip(H.mlKemCipherText + 500), 'BULWARK_E_DECRYPT', /cannot unwrap the data key/);
    await expectFailure(flip(H.noncePrefix + 2), 'BULWARK_E_DECRYPT', /cannot unwrap the data key/);
    await expectFailure(flip(H.wrapNonce), 'BULWARK_E_DECRYPT', /cannot unwrap the data key/);
  });

  test('wrapped data key and its tag', async () => {
    await expectFailure(flip(H.wrappedKey + 3), 'BULWARK_E_DECRYPT', /cannot unwrap the data key/);
    await expectFailure(flip(H.wrappedKey + 32 + 5), 'BULWARK_E_DECRYPT', /cannot unwrap the data key/);
  });

  test('a byte of a chunk', async () => {
    await expectFailure(flip(chunkStart(0) + 10), 'BULWARK_E_DECRYPT', /chunk 0 failed authentication/);
    await expectFailure(flip(chunkStart(2) + CS - 1), 'BULWARK_E_DECRYPT', /chunk 2 failed authentication/);
    await expectFailure(flip(chunkStart(3) + 50), 'BULWARK_E_DECRYPT', /chunk 3 failed authentication/);
  });

  test("a chunk's tag", async () => {
    await expectFailure(flip(chunkStart(1) + CS + 3), 'BULWARK_E_DECRYPT', /chunk 1 failed authentication/);
    await expectFailure(flip(enc.length - 1), 'BULWARK_E_DECRYPT', /chunk 3 failed authentication/);
  });

  test('truncation of the last chunk, at a chunk boundary, or of everything after the header', async () => {
    await expectFailure(enc.subarray(0, enc.length - 1), 'BULWARK_E_DECRYPT', /chunk 3 failed authentication/);
    await expectFailure(enc.subarray(0, enc.length - 40), 'BULWARK_E_DECRYPT', /chunk 3 failed authentication/);
    await expectFailure(enc.subarray(0, chunkStart(3)), 'BULWARK_E_DECRYPT', /truncated: chunk 2 is not the final chunk/);
    await expectFailure(enc.subarray(0, chunkStart(3) + 5), 'BULWARK_E_DECRYPT', /truncated/);
    await expectFailure(enc.subarray(0, H.length), 'BULWARK_E_DECRYPT', /truncated/);
    await expectFailure(enc.subarray(0, H.length - 10), 'BULWARK_E_DECRYPT', /truncated/);
  });

  test('chunk swap, chunk duplication and appended data', async () => {
    const c0 = enc.subarray(chunkStart(0), chunkStart(1));
    const c1 = enc.subarray(chunkStart(1), chunkStart(2));
    const swapped = Buffer.concat([enc.subarray(0, chunkStart(0)), c1, c0, enc.subarray(chunkStart(2))]);
    await expectFailure(swapped, 'BULWARK_E_DECRYPT', /chunk 0 failed authentication/);
    const duplicated = Buffer.concat([enc.subarray(0, chunkStart(2)), c1, enc.subarray(chunkStart(2))]);
    await expectFailure(duplicated, 'BULWARK_E_DECRYPT', /chunk 2 failed authentication/);
    await expectFailure(Buffer.concat([enc, Buffer.from('x')]), 'BULWARK_E_DECRYPT', /failed authentication/);
    await expectFailure(Buffer.concat([enc, c1]), 'BULWARK_E_DECRYPT', /failed authentication/);
  });

  test('a chunk moved in from another file encrypted for the same key', async () => {
    const f = fresh('other.bin');
    fs.writeFileSync(f, randomBytes(3 * CS + 100));
    await encryptFile(f, `${f}.enc`, A.publicKey, { chunkSize: CS });
    const other = fs.readFileSync(`${f}.enc`);
    const mixed = Buffer.concat([enc.subarray(0, chunkStart(1)), other.subarray(chunkStart(1), chunkStart(2)), enc.subarray(chunkStart(2))]);
    await expectFailure(mixed, 'BULWARK_E_DECRYPT', /chunk 1 failed authentication/);
  });

  test('the wrong private key', async () => {
    await expectFailure(enc, 'BULWARK_E_DECRYPT', /encrypted for key/, B);
    // Even with the recipient key id rewritten to B's, B cannot unwrap.
    const b = Buffer.from(enc);
    Buffer.from(B.publicKey.encryption.keyId, 'hex').copy(b, H.recipientKeyId);
    await expectFailure(b, 'BULWARK_E_DECRYPT', /cannot unwrap the data key/, B);
  });

  test('a failed decryption keeps an existing output file untouched', async () => {
    const f = fresh('t.enc');
    fs.writeFileSync(f, flip(chunkStart(3) + 1));
    const out = path.join(path.dirname(f), 'existing.bin');
    fs.writeFileSync(out, 'previous content');
    await assert.rejects(decryptFile(f, out, A.privateKey), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_DECRYPT');
    assert.equal(fs.readFileSync(out, 'utf8'), 'previous content');
    assert.deepEqual(fs.readdirSync(path.dirname(f)).sort(), ['existing.bin', 't.enc']);
  });
});

describe('arguments', () => {
  test('input errors', async () => {
    const f = fresh('a.bin');
    fs.writeFileSync(f, 'x');
    const code = (c: ErrorCode) => (e: unknown) => e instanceof BulwarkError && e.code === c;
    await assert.rejects(encryptFile(path.join(tmp, 'missing'), f + '.enc', A.publicKey), code('BULWARK_E_FILE_NOT_FOUND'));
    await assert.rejects(encryptFile(f, f, A.publicKey), code('BULWARK_E_ARG'));
    await assert.rejects(encryptFile(f, f + '.enc', A.publicKey, { chunkSize: 3 }), code('BULWARK_E_ARG'));
    await assert.rejects(encryptFile(tmp, f + '.enc', A.publicKey), code('BULWARK_E_FILE_READ'));
    await encryptFile(f, f + '.enc', A.publicKey);
    await assert.rejects(decryptFile(f + '.enc', f + '.enc', A.privateKey), code('BULWARK_E_ARG'));
  });
});
