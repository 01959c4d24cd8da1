/**
 * Encryption at rest for model artifacts.
 *
 * Each file gets a fresh random 256-bit data key. The data key is wrapped for the recipient with a hybrid key
 * encapsulation (X25519 + ML-KEM-768, combined with HKDF-SHA-256 over both shared secrets and the transcript),
 * and the content is encrypted with AES-256-GCM in fixed-size chunks following the STREAM construction
 * (Hoang, Reyhanitabar, Rogaway, Vizár 2015): chunk i uses the nonce `prefix(7) || u32be(i) || final(1)`, and
 * every chunk authenticates the whole header as associated data. So a modified byte anywhere, a truncated file,
 * reordered or swapped chunks and appended data all fail; the output is written atomically and only after the
 * last chunk has authenticated.
 *
 * The byte layout is specified in docs/SIGNING.md ("Encrypted file format").
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createCipheriv, createDecipheriv, createHash, generateKeyPairSync, hkdfSync, randomBytes, diffieHellman, createPublicKey, type KeyObject } from 'node:crypto';
import { ml_kem768 } from '@noble/post-quantum/ml-kem.js';
import { BulwarkError } from '../../core/errors.js';
import { AtomicFile } from '../../core/atomic.js';
import { constantTimeEqual, wipe } from './encoding.js';
import { KEY_LENGTHS, type BulwarkPrivateKey, type BulwarkPublicKey } from './keys.js';

/** The first 8 bytes of every encrypted file. */
export const ENC_MAGIC = Buffer.from('BULWKENC', 'ascii');
/** The format version this code writes and reads. */
export const ENC_VERSION = 1;
/** Suite 1: X25519 + ML-KEM-768, HKDF-SHA-256, AES-256-GCM, STREAM chunking. */
export const ENC_SUITE = 1;
/** Default plaintext bytes per chunk (1 MiB). */
export const DEFAULT_CHUNK_SIZE = 1024 * 1024;
/** Accepted chunk sizes, in plaintext bytes (checked before any allocation when decrypting). */
export const MIN_CHUNK_SIZE = 16;
export const MAX_CHUNK_SIZE = 64 * 1024 * 1024;
/** AES-GCM tag length. */
export const TAG_LENGTH = 16;

/** Byte offsets of the header fields (all integers big-endian). */
export const HEADER_LAYOUT = {
  magic: 0, // 8 bytes "BULWKENC"
  version: 8, // u8
  suite: 9, // u8
  reserved: 10, // u16, must be 0
  chunkSize: 12, // u32
  recipientKeyId: 16, // 32 bytes: SHA-256(x25519 public || ML-KEM-768 public)
  x25519Ephemeral: 48, // 32 bytes
  mlKemCipherText: 80, // 1088 bytes
  noncePrefix: 1168, // 7 bytes
  wrapNonce: 1175, // 12 bytes
  wrappedKey: 1187, // 32 bytes + 16-byte tag
  length: 1235,
} as const;

const WRAP_INFO_LABEL = Buffer.from('bulwark/enc/v1 X25519+ML-KEM-768 HKDF-SHA-256 wrap key\0', 'ascii');

/** Options of {@link encryptFile} and {@link decryptFile}. */
export interface CryptOptions {
  /** Plaintext bytes per chunk when encrypting (default 1 MiB; 16 B to 64 MiB). */
  chunkSize?: number;
  /** Called after each chunk with the bytes of input consumed so far and the input size. */
  onProgress?: (done: number, total: number) => void;
  /** Mode bits of the output file (default 0o644 for encrypt, 0o600 for decrypt). */
  mode?: number;
}

/** What {@link encryptFile} and {@link decryptFile} did. */
export interface CryptResult {
  input: string;
  output: string;
  /** Plaintext bytes. */
  plaintextBytes: number;
  /** Encrypted file bytes (header + chunks + tags). */
  encryptedBytes: number;
  chunks: number;
  chunkSize: number;
  /** The recipient's hybrid encryption key id (hex). */
  recipientKeyId: string;
}

/** The parsed, not yet authenticated, header of an encrypted file. */
export interface EncryptedHeader {
  version: number;
  suite: number;
  chunkSize: number;
  recipientKeyId: string;
  x25519Ephemeral: Buffer;
  mlKemCipherText: Buffer;
  noncePrefix: Buffer;
  wrapNonce: Buffer;
  wrappedKey: Buffer;
  /** The header bytes exactly as read (the associated data of every chunk). */
  bytes: Buffer;
}

function decErr(msg: string): BulwarkError {
  return new BulwarkError('BULWARK_E_DECRYPT', msg);
}

function rawX25519(k: KeyObject): Buffer {
  return Buffer.from((k.export({ format: 'jwk' }) as { x: string }).x, 'base64url');
}

/** Chunk nonce: prefix(7) || u32be(index) || final flag. */
function chunkNonce(prefix: Buffer, index: number, final: boolean): Buffer {
  const n = Buffer.alloc(12);
  prefix.copy(n, 0, 0, 7);
  n.writeUInt32BE(index, 7);
  n[11] = final ? 1 : 0;
  return n;
}

/** The wrapping key: HKDF-SHA-256(ss_mlkem || ss_x25519, salt = none, info = label || SHA-256(transcript)). */
function deriveWrapKey(ssKem: Uint8Array, ssX: Uint8Array, headerPrefix: Buffer, recipient: BulwarkPublicKey): Buffer {
  const transcript = createHash('sha256')
    .update(headerPrefix) // magic .. nonce prefix: includes the recipient key id, the X25519 ephemeral key, the ML-KEM ciphertext
    .update(recipient.encryption.x25519Raw)
    .update(recipient.encryption.mlKem768)
    .digest();
  const ikm = Buffer.concat([ssKem, ssX]);
  try {
    return Buffer.from(hkdfSync('sha256', ikm, Buffer.alloc(0), Buffer.concat([WRAP_INFO_LABEL, transcript]), 32));
  } finally {
    wipe(ikm);
  }
}

/**
 * Parses the header of an encrypted file (no authentication yet: that happens when the data key is unwrapped).
 * @throws BulwarkError BULWARK_E_ENC_FORMAT (not an encrypted file, unsupported version), BULWARK_E_DECRYPT (corrupt)
 */
export function parseEncryptedHeader(bytes: Buffer): EncryptedHeader {
  const H = HEADER_LAYOUT;
  if (bytes.length < 8 || !bytes.subarray(0, 8).equals(ENC_MAGIC)) {
    throw new BulwarkError('BULWARK_E_ENC_FORMAT', 'not a Bulwark encrypted file (bad magic bytes)');
  }
  if (bytes.length < H.length) throw decErr(`the file is truncated: its header is ${bytes.length} of ${H.length} bytes`);
  const version = bytes[H.version]!;
  const suite = bytes[H.suite]!;
  if (version !== ENC_VERSION) throw new BulwarkError('BULWARK_E_ENC_FORMAT', `unsupported encrypted file version ${version} (this Bulwark reads version ${ENC_VERSION})`);
  if (suite !== ENC_SUITE) throw new BulwarkError('BULWARK_E_ENC_FORMAT', `unsupported cipher suite ${suite} (this Bulwark reads suite ${ENC_SUITE})`);
  if (bytes.readUInt16BE(H.reserved) !== 0) throw decErr('the header is corrupt (reserved bytes are not zero)');
  const chunkSize = bytes.readUInt32BE(H.chunkSize);
  if (chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE) throw decErr(`the header is corrupt (chunk size ${chunkSize} out of range)`);
  const b = bytes.subarray(0, H.length);
  return {
    version,
    suite,
    chunkSize,
    recipientKeyId: b.subarray(H.recipientKeyId, H.recipientKeyId + 32).toString('hex'),
    x25519Ephemeral: Buffer.from(b.subarray(H.x25519Ephemeral, H.x25519Ephemeral + 32)),
    mlKemCipherText: Buffer.from(b.subarray(H.mlKemCipherText, H.mlKemCipherText + KEY_LENGTHS.mlKem768CipherText)),
    noncePrefix: Buffer.from(b.subarray(H.noncePrefix, H.noncePrefix + 7)),
    wrapNonce: Buffer.from(b.subarray(H.wrapNonce, H.wrapNonce + 12)),
    wrappedKey: Buffer.from(b.subarray(H.wrappedKey, H.wrappedKey + 32 + TAG_LENGTH)),
    bytes: Buffer.from(b),
  };
}

async function openInput(file: string, what: string): Promise<{ fh: fs.promises.FileHandle; size: number }> {
  let fh: fs.promises.FileHandle;
  try {
    fh = await fs.promises.open(file, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new BulwarkError('BULWARK_E_FILE_NOT_FOUND', `${what}: no such file: ${file}`);
    throw new BulwarkError('BULWARK_E_FILE_READ', `${what}: cannot open ${file}: ${(e as Error).message}`);
  }
  const st = await fh.stat();
  if (!st.isFile()) {
    await fh.close();
    throw new BulwarkError('BULWARK_E_FILE_READ', `${what}: not a regular file: ${file}`);
  }
  return { fh, size: st.size };
}

/** Reads up to `len` bytes (fewer only at end of file). */
async function readFull(fh: fs.promises.FileHandle, len: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(len);
  let off = 0;
  while (off < len) {
    const { bytesRead } = await fh.read(buf, off, len - off, null);
    if (bytesRead === 0) break;
    off += bytesRead;
  }
  return off === len ? buf : buf.subarray(0, off);
}

/**
 * Yields the file's consecutive blocks of `len` bytes (the last one shorter, or empty for an empty file), each
 * flagged when it is the last. The next block is read while the caller works on the current one.
 */
async function* readBlocks(fh: fs.promises.FileHandle, len: number): AsyncGenerator<{ data: Buffer; final: boolean }> {
  const start = (): Promise<Buffer> => {
    const p = readFull(fh, len);
    p.catch(() => undefined); // handled when awaited; never an unhandled rejection if the caller stops early
    return p;
  };
  let cur = await readFull(fh, len);
  let nextP: Promise<Buffer> | null = cur.length === len ? start() : null;
  for (;;) {
    if (nextP === null) {
      yield { data: cur, final: true };
      return;
    }
    const next = await nextP;
    if (next.length === 0) {
      yield { data: cur, final: true };
      return;
    }
    nextP = next.length === len ? start() : null;
    yield { data: cur, final: false };
    cur = next;
  }
}

function sameFile(a: string, b: string): boolean {
  const ra = path.resolve(a);
  const rb = path.resolve(b);
  if (ra === rb) return true;
  try {
    const sa = fs.statSync(ra);
    const sb = fs.statSync(rb);
    return sa.dev === sb.dev && sa.ino === sb.ino;
  } catch {
    return false;
  }
}

/**
 * Encrypts `input` for `recipient` into `output`, streaming (memory use is about two chunks, whatever the file
 * size). The output is written to a temporary file and renamed into place only when complete.
 * @param input the plaintext file
 * @param output the encrypted file to write (conventionally `<input>.enc`)
 * @param recipient the public key (KEY.pub) whose private key will decrypt
 * @throws BulwarkError BULWARK_E_FILE_NOT_FOUND / BULWARK_E_FILE_READ / BULWARK_E_FILE_WRITE / BULWARK_E_ARG
 */
export async function encryptFile(input: string, output: string, recipient: BulwarkPublicKey, options: CryptOptions = {}): Promise<CryptResult> {
  const cs = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (!Number.isInteger(cs) || cs < MIN_CHUNK_SIZE || cs > MAX_CHUNK_SIZE) {
    throw new BulwarkError('BULWARK_E_ARG', `chunkSize must be an integer in [${MIN_CHUNK_SIZE}, ${MAX_CHUNK_SIZE}], got ${cs}`);
  }
  if (sameFile(input, output)) throw new BulwarkError('BULWARK_E_ARG', '--out must differ from the input file');
  const { fh, size } = await openInput(input, 'input');
  let out: AtomicFile | undefined;
  let pending: Promise<void> | null = null;
  const dataKey = randomBytes(32);
  let wrapKey: Buffer | undefined;
  let ssX: Buffer | undefined;
  let ssKem: Uint8Array | undefined;
  try {
    // Hybrid key encapsulation.
    const eph = generateKeyPairSync('x25519');
    ssX = diffieHellman({ privateKey: eph.privateKey, publicKey: recipient.encryption.x25519 });
    const kem = ml_kem768.encapsulate(recipient.encryption.mlKem768);
    ssKem = kem.sharedSecret;

    const H = HEADER_LAYOUT;
    const header = Buffer.alloc(H.length);
    ENC_MAGIC.copy(header, H.magic);
    header[H.version] = ENC_VERSION;
    header[H.suite] = ENC_SUITE;
    header.writeUInt16BE(0, H.reserved);
    header.writeUInt32BE(cs, H.chunkSize);
    Buffer.from(recipient.encryption.keyId, 'hex').copy(header, H.recipientKeyId);
    rawX25519(eph.publicKey).copy(header, H.x25519Ephemeral);
    Buffer.from(kem.cipherText).copy(header, H.mlKemCipherText);
    randomBytes(7).copy(header, H.noncePrefix);
    const wrapNonce = randomBytes(12);
    wrapNonce.copy(header, H.wrapNonce);
    const prefix = header.subarray(0, H.wrapNonce);

    wrapKey = deriveWrapKey(ssKem, ssX, prefix, recipient);
    const w = createCipheriv('aes-256-gcm', wrapKey, wrapNonce);
    w.setAAD(prefix);
    const wrapped = Buffer.concat([w.update(dataKey), w.final(), w.getAuthTag()]);
    wrapped.copy(header, H.wrappedKey);
    const noncePrefix = Buffer.from(header.subarray(H.noncePrefix, H.noncePrefix + 7));

    out = await AtomicFile.create(output, options.mode ?? 0o644, '--out');
    await out.write(header);
    let written = header.length;
    let done = 0;
    let index = 0;
    for await (const { data, final } of readBlocks(fh, cs)) {
      if (index > 0xffffffff) throw new BulwarkError('BULWARK_E_LIMIT', 'input too large for the chunk counter; use a larger chunk size');
      const c = createCipheriv('aes-256-gcm', dataKey, chunkNonce(noncePrefix, index, final));
      c.setAAD(header);
      const ct = Buffer.concat([c.update(data), c.final(), c.getAuthTag()]);
      done += data.length;
      wipe(data);
      if (pending) await pending; // at most one write in flight, in order
      pending = out.write(ct);
      pending.catch(() => undefined);
      written += ct.length;
      options.onProgress?.(done, size);
      if (final) break;
      index++;
    }
    if (pending) await pending;
    await out.commit();
    return { input, output, plaintextBytes: done, encryptedBytes: written, chunks: index + 1, chunkSize: cs, recipientKeyId: recipient.encryption.keyId };
  } catch (e) {
    if (pending) await pending.catch(() => undefined);
    await out?.abort();
    throw e;
  } finally {
    wipe(dataKey, wrapKey, ssX, ssKem);
    await fh.close().catch(() => undefined);
  }
}

/** Recovers the data key from a parsed header, or throws BULWARK_E_DECRYPT. */
function unwrapDataKey(h: EncryptedHeader, key: BulwarkPrivateKey): Buffer {
  const ours = key.publicKey.encryption.keyId;
  if (!constantTimeEqual(Buffer.from(h.recipientKeyId), Buffer.from(ours))) {
    throw decErr(`the file was encrypted for key ${h.recipientKeyId.slice(0, 16)}…, not for this key (${ours.slice(0, 16)}…), or its header was modified`);
  }
  let ssX: Buffer | undefined;
  let ssKem: Uint8Array | undefined;
  let wrapKey: Buffer | undefined;
  try {
    try {
      const eph = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: h.x25519Ephemeral.toString('base64url') }, format: 'jwk' });
      ssX = key.x25519SharedSecret(eph);
    } catch {
      throw decErr('the header is corrupt (invalid X25519 ephemeral key)');
    }
    ssKem = key.mlKem768Decapsulate(h.mlKemCipherText);
    wrapKey = deriveWrapKey(ssKem, ssX, h.bytes.subarray(0, HEADER_LAYOUT.wrapNonce), key.publicKey);
    const d = createDecipheriv('aes-256-gcm', wrapKey, h.wrapNonce);
    d.setAAD(h.bytes.subarray(0, HEADER_LAYOUT.wrapNonce));
    d.setAuthTag(h.wrappedKey.subarray(32));
    try {
      return Buffer.concat([d.update(h.wrappedKey.subarray(0, 32)), d.final()]);
    } catch {
      throw decErr('cannot unwrap the data key: the header was modified, or the file was not encrypted for this key');
    }
  } finally {
    wipe(ssX, ssKem, wrapKey);
  }
}

function openChunk(dataKey: Buffer, h: EncryptedHeader, index: number, final: boolean, block: Buffer): Buffer | null {
  const d = createDecipheriv('aes-256-gcm', dataKey, chunkNonce(h.noncePrefix, index, final));
  d.setAAD(h.bytes);
  d.setAuthTag(block.subarray(block.length - TAG_LENGTH));
  const pt = d.update(block.subarray(0, block.length - TAG_LENGTH));
  try {
    d.final();
    return pt;
  } catch {
    wipe(pt);
    return null;
  }
}

/**
 * Decrypts a file written by {@link encryptFile}, streaming. Every chunk is authenticated before its plaintext
 * is written to the temporary output; the output appears (atomically) only after the final chunk authenticates,
 * so on any failure no output file is left.
 * @param input the encrypted file
 * @param output the plaintext file to write
 * @param key the recipient's private key (KEY)
 * @throws BulwarkError BULWARK_E_DECRYPT (exit 1: wrong key, modified, truncated, reordered),
 *   BULWARK_E_ENC_FORMAT (exit 2: not an encrypted file or unsupported version), file errors (exit 2)
 */
export async function decryptFile(input: string, output: string, key: BulwarkPrivateKey, options: CryptOptions = {}): Promise<CryptResult> {
  if (sameFile(input, output)) throw new BulwarkError('BULWARK_E_ARG', '--out must differ from the input file');
  const { fh, size } = await openInput(input, 'input');
  let out: AtomicFile | undefined;
  let pending: Promise<void> | null = null;
  let dataKey: Buffer | undefined;
  try {
    const h = parseEncryptedHeader(await readFull(fh, HEADER_LAYOUT.length));
    dataKey = unwrapDataKey(h, key);
    const block = h.chunkSize + TAG_LENGTH;
    out = await AtomicFile.create(output, options.mode ?? 0o600, '--out');
    let consumed = HEADER_LAYOUT.length;
    let plain = 0;
    let index = 0;
    for await (const { data, final } of readBlocks(fh, block)) {
      if (data.length < TAG_LENGTH) {
        throw decErr(index === 0 ? 'the file is truncated: it has no encrypted chunk after the header' : `the file is truncated: it ends after chunk ${index - 1} without a final chunk`);
      }
      if (index > 0xffffffff) throw decErr('too many chunks');
      const pt = openChunk(dataKey, h, index, final, data);
      if (pt === null) {
        const asNonFinal = final ? openChunk(dataKey, h, index, false, data) : null;
        if (asNonFinal !== null) {
          wipe(asNonFinal);
          throw decErr(`the file is truncated: chunk ${index} is not the final chunk, and the chunks after it are missing`);
        }
        throw decErr(`chunk ${index} failed authentication: the file was modified, or chunks were reordered, swapped or truncated`);
      }
      // Only authenticated plaintext reaches the (temporary) output.
      if (pending) await pending;
      pending = out.write(pt).finally(() => wipe(pt));
      pending.catch(() => undefined);
      plain += pt.length;
      consumed += data.length;
      options.onProgress?.(consumed, size);
      if (final) break;
      index++;
    }
    if (pending) await pending;
    await out.commit();
    return { input, output, plaintextBytes: plain, encryptedBytes: consumed, chunks: index + 1, chunkSize: h.chunkSize, recipientKeyId: h.recipientKeyId };
  } catch (e) {
    if (pending) await pending.catch(() => undefined);
    await out?.abort();
    throw e;
  } finally {
    wipe(dataKey);
    await fh.close().catch(() => undefined);
  }
}
