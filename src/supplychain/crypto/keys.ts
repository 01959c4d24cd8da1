/**
 * Bulwark key pairs and key files.
 *
 * One key pair holds two hybrid keys:
 * - a signing key: Ed25519 (node:crypto) + ML-DSA-65 (FIPS 204, @noble/post-quantum); both sign every signature;
 * - an encryption key: X25519 (node:crypto) + ML-KEM-768 (FIPS 203, @noble/post-quantum); both wrap every data key.
 *
 * Key ids are SHA-256 over the raw public material (see docs/SIGNING.md for the exact bytes). Key files are
 * versioned JSON: `KEY` (private, mode 0600) and `KEY.pub` (public).
 */
import * as fs from 'node:fs';
import { createHash, createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, randomBytes, sign as nodeSign, type KeyObject } from 'node:crypto';
import { inspect } from 'node:util';
import { ml_dsa65 } from '@noble/post-quantum/ml-dsa.js';
import { ml_kem768 } from '@noble/post-quantum/ml-kem.js';
import { BulwarkError } from '../../core/errors.js';
import { constantTimeEqual, decodeBase64Strict, encodeBase64, isHex } from './encoding.js';
import { writeFileAtomicMode } from '../../core/atomic.js';

/** The `format` field of every Bulwark key file. */
export const KEY_FILE_FORMAT = 'bulwark-key';
/** The key file version this code writes and reads. */
export const KEY_FILE_VERSION = 1;
/** Largest key file accepted (a key file is about 10 KB). */
export const MAX_KEY_FILE_BYTES = 1024 * 1024;

/** Byte lengths of the raw key material. */
export const KEY_LENGTHS = {
  ed25519Public: 32,
  x25519Public: 32,
  mlDsa65Public: 1952,
  mlDsa65Seed: 32,
  mlDsa65Signature: 3309,
  ed25519Signature: 64,
  mlKem768Public: 1184,
  mlKem768Seed: 64,
  mlKem768CipherText: 1088,
} as const;

/** The public half of the hybrid signing key. */
export interface SigningPublicKey {
  /** Hex SHA-256 of ed25519Raw || mlDsa65 (the hybrid signing key id). */
  readonly keyId: string;
  readonly ed25519: KeyObject;
  /** The 32-byte raw Ed25519 public key. */
  readonly ed25519Raw: Buffer;
  /** DSSE keyid of the Ed25519 signature: `ed25519:` + hex SHA-256 of the raw key. */
  readonly ed25519KeyId: string;
  /** The 1952-byte ML-DSA-65 public key. */
  readonly mlDsa65: Uint8Array;
  /** DSSE keyid of the ML-DSA-65 signature: `ml-dsa-65:` + hex SHA-256 of the public key. */
  readonly mlDsa65KeyId: string;
}

/** The public half of the hybrid encryption (key encapsulation) key. */
export interface EncryptionPublicKey {
  /** Hex SHA-256 of x25519Raw || mlKem768 (the hybrid encryption key id). */
  readonly keyId: string;
  readonly x25519: KeyObject;
  /** The 32-byte raw X25519 public key. */
  readonly x25519Raw: Buffer;
  /** The 1184-byte ML-KEM-768 encapsulation key. */
  readonly mlKem768: Uint8Array;
}

/** A Bulwark public key: what `KEY.pub` holds. Safe to share. */
export interface BulwarkPublicKey {
  readonly kind: 'public';
  readonly signing: SigningPublicKey;
  readonly encryption: EncryptionPublicKey;
}

interface PrivateParts {
  ed25519: KeyObject;
  mlDsa65Seed: Buffer;
  mlDsa65Secret: Uint8Array;
  x25519: KeyObject;
  mlKem768Seed: Buffer;
  mlKem768Secret: Uint8Array;
}

/**
 * A Bulwark private key: what `KEY` holds. The secret material stays inside the object: it can sign, derive
 * shared secrets and decapsulate, and it prints and serializes to JSON as a redacted summary, so it cannot leak
 * into logs by accident. Only {@link serializePrivateKey} writes the secret out.
 */
export class BulwarkPrivateKey {
  readonly kind = 'private' as const;
  readonly #s: PrivateParts;

  /** @internal use {@link generateKeyPair} or {@link parsePrivateKey}. */
  constructor(
    /** The matching public key. */
    readonly publicKey: BulwarkPublicKey,
    parts: PrivateParts,
  ) {
    this.#s = parts;
  }

  /** Ed25519 signature (64 bytes) over `msg`. */
  signEd25519(msg: Uint8Array): Buffer {
    return nodeSign(null, msg, this.#s.ed25519);
  }

  /** ML-DSA-65 signature (3309 bytes, hedged/randomized per FIPS 204) over `msg`, with an empty context. */
  signMlDsa65(msg: Uint8Array): Uint8Array {
    return ml_dsa65.sign(msg, this.#s.mlDsa65Secret);
  }

  /** X25519 shared secret with a peer's public key (throws on a low-order peer key). */
  x25519SharedSecret(peer: KeyObject): Buffer {
    return diffieHellman({ privateKey: this.#s.x25519, publicKey: peer });
  }

  /** ML-KEM-768 decapsulation (implicit rejection: a wrong ciphertext gives an unrelated secret, not an error). */
  mlKem768Decapsulate(cipherText: Uint8Array): Uint8Array {
    return ml_kem768.decapsulate(cipherText, this.#s.mlKem768Secret);
  }

  /** @internal the secret fields of the key file. */
  exportSecrets(): { ed25519Pem: string; mlDsa65Seed: string; x25519Pem: string; mlKem768Seed: string } {
    return {
      ed25519Pem: this.#s.ed25519.export({ format: 'pem', type: 'pkcs8' }).toString(),
      mlDsa65Seed: encodeBase64(this.#s.mlDsa65Seed),
      x25519Pem: this.#s.x25519.export({ format: 'pem', type: 'pkcs8' }).toString(),
      mlKem768Seed: encodeBase64(this.#s.mlKem768Seed),
    };
  }

  /** Zeroes the secret buffers this object holds (KeyObjects and strings cannot be wiped from JavaScript). */
  destroy(): void {
    this.#s.mlDsa65Seed.fill(0);
    this.#s.mlDsa65Secret.fill(0);
    this.#s.mlKem768Seed.fill(0);
    this.#s.mlKem768Secret.fill(0);
  }

  /** A redacted summary: key ids only. */
  toJSON(): { kind: 'private'; signingKeyId: string; encryptionKeyId: string; secret: '[redacted]' } {
    return { kind: 'private', signingKeyId: this.publicKey.signing.keyId, encryptionKeyId: this.publicKey.encryption.keyId, secret: '[redacted]' };
  }

  toString(): string {
    return `BulwarkPrivateKey(signing ${this.publicKey.signing.keyId.slice(0, 16)}, encryption ${this.publicKey.encryption.keyId.slice(0, 16)}, secret redacted)`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

/** A freshly generated key pair. */
export interface BulwarkKeyPair {
  readonly privateKey: BulwarkPrivateKey;
  readonly publicKey: BulwarkPublicKey;
}

function sha256(...parts: Uint8Array[]): Buffer {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
}

function rawOkp(key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' }) as { x?: string };
  if (typeof jwk.x !== 'string') throw new BulwarkError('BULWARK_E_INTERNAL', 'OKP key without x');
  return Buffer.from(jwk.x, 'base64url');
}

function okpFromRaw(raw: Uint8Array, crv: 'Ed25519' | 'X25519'): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv, x: Buffer.from(raw).toString('base64url') }, format: 'jwk' });
}

/** Hex SHA-256 of `ed25519Raw || mlDsa65Public`: the id of a hybrid signing key. */
export function signingKeyId(ed25519Raw: Uint8Array, mlDsa65Public: Uint8Array): string {
  return sha256(ed25519Raw, mlDsa65Public).toString('hex');
}

/** Hex SHA-256 of `x25519Raw || mlKem768Public`: the id of a hybrid encryption key. */
export function encryptionKeyId(x25519Raw: Uint8Array, mlKem768Public: Uint8Array): string {
  return sha256(x25519Raw, mlKem768Public).toString('hex');
}

/**
 * Builds a public key from raw material, computing its key ids.
 * @throws BulwarkError BULWARK_E_KEY on wrong lengths or an invalid point
 */
export function makePublicKey(ed25519Raw: Uint8Array, mlDsa65Public: Uint8Array, x25519Raw: Uint8Array, mlKem768Public: Uint8Array): BulwarkPublicKey {
  const L = KEY_LENGTHS;
  if (ed25519Raw.byteLength !== L.ed25519Public || mlDsa65Public.byteLength !== L.mlDsa65Public || x25519Raw.byteLength !== L.x25519Public || mlKem768Public.byteLength !== L.mlKem768Public) {
    throw new BulwarkError('BULWARK_E_KEY', 'public key material has the wrong length');
  }
  let ed: KeyObject;
  let x: KeyObject;
  try {
    ed = okpFromRaw(ed25519Raw, 'Ed25519');
    x = okpFromRaw(x25519Raw, 'X25519');
  } catch (e) {
    throw new BulwarkError('BULWARK_E_KEY', `invalid Ed25519/X25519 public key: ${(e as Error).message}`);
  }
  const edRaw = Buffer.from(ed25519Raw);
  const xRaw = Buffer.from(x25519Raw);
  const dsa = Uint8Array.from(mlDsa65Public);
  const kem = Uint8Array.from(mlKem768Public);
  return Object.freeze({
    kind: 'public' as const,
    signing: Object.freeze({
      keyId: signingKeyId(edRaw, dsa),
      ed25519: ed,
      ed25519Raw: edRaw,
      ed25519KeyId: `ed25519:${sha256(edRaw).toString('hex')}`,
      mlDsa65: dsa,
      mlDsa65KeyId: `ml-dsa-65:${sha256(dsa).toString('hex')}`,
    }),
    encryption: Object.freeze({ keyId: encryptionKeyId(xRaw, kem), x25519: x, x25519Raw: xRaw, mlKem768: kem }),
  });
}

function privateFromParts(ed25519: KeyObject, mlDsa65Seed: Buffer, x25519: KeyObject, mlKem768Seed: Buffer): BulwarkPrivateKey {
  const dsa = ml_dsa65.keygen(mlDsa65Seed);
  const kem = ml_kem768.keygen(mlKem768Seed);
  const pub = makePublicKey(rawOkp(createPublicKey(ed25519)), dsa.publicKey, rawOkp(createPublicKey(x25519)), kem.publicKey);
  return new BulwarkPrivateKey(pub, { ed25519, mlDsa65Seed, mlDsa65Secret: dsa.secretKey, x25519, mlKem768Seed, mlKem768Secret: kem.secretKey });
}

/**
 * Generates a new hybrid key pair from the operating system's CSPRNG: Ed25519 + ML-DSA-65 for signing,
 * X25519 + ML-KEM-768 for encryption.
 */
export function generateKeyPair(): BulwarkKeyPair {
  const ed = generateKeyPairSync('ed25519').privateKey;
  const x = generateKeyPairSync('x25519').privateKey;
  const privateKey = privateFromParts(ed, randomBytes(KEY_LENGTHS.mlDsa65Seed), x, randomBytes(KEY_LENGTHS.mlKem768Seed));
  return { privateKey, publicKey: privateKey.publicKey };
}

interface PublicFileJson {
  format: string;
  version: number;
  kind: 'public' | 'private';
  signing: { keyId: string; ed25519: { keyId: string; publicKeyPem: string; privateKeyPem?: string }; mlDsa65: { keyId: string; publicKey: string; seed?: string } };
  encryption: { keyId: string; x25519: { publicKeyPem: string; privateKeyPem?: string }; mlKem768: { publicKey: string; seed?: string } };
}

function publicJson(pub: BulwarkPublicKey, kind: 'public' | 'private'): PublicFileJson {
  return {
    format: KEY_FILE_FORMAT,
    version: KEY_FILE_VERSION,
    kind,
    signing: {
      keyId: pub.signing.keyId,
      ed25519: { keyId: pub.signing.ed25519KeyId, publicKeyPem: pub.signing.ed25519.export({ format: 'pem', type: 'spki' }).toString() },
      mlDsa65: { keyId: pub.signing.mlDsa65KeyId, publicKey: encodeBase64(pub.signing.mlDsa65) },
    },
    encryption: {
      keyId: pub.encryption.keyId,
      x25519: { publicKeyPem: pub.encryption.x25519.export({ format: 'pem', type: 'spki' }).toString() },
      mlKem768: { publicKey: encodeBase64(pub.encryption.mlKem768) },
    },
  };
}

/** The text of a public key file (`KEY.pub`). */
export function serializePublicKey(pub: BulwarkPublicKey): string {
  return JSON.stringify(publicJson(pub, 'public'), null, 2) + '\n';
}

/** The text of a private key file (`KEY`). It holds secrets: write it with mode 0600 and never log it. */
export function serializePrivateKey(priv: BulwarkPrivateKey): string {
  const j = publicJson(priv.publicKey, 'private');
  const s = priv.exportSecrets();
  j.signing.ed25519.privateKeyPem = s.ed25519Pem;
  j.signing.mlDsa65.seed = s.mlDsa65Seed;
  j.encryption.x25519.privateKeyPem = s.x25519Pem;
  j.encryption.mlKem768.seed = s.mlKem768Seed;
  return JSON.stringify(j, null, 2) + '\n';
}

function keyErr(what: string, msg: string): BulwarkError {
  return new BulwarkError('BULWARK_E_KEY', `${what}: ${msg}`);
}

function obj(v: unknown, what: string, field: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw keyErr(what, `field ${field} must be an object`);
  return v as Record<string, unknown>;
}

function str(o: Record<string, unknown>, k: string, what: string, field: string): string {
  const v = o[k];
  if (typeof v !== 'string' || v.length === 0) throw keyErr(what, `field ${field}.${k} must be a non-empty string`);
  return v;
}

function b64(o: Record<string, unknown>, k: string, len: number, what: string, field: string): Buffer {
  const v = decodeBase64Strict(o[k]);
  if (!v || v.length !== len) throw keyErr(what, `field ${field}.${k} must be base64 of ${len} bytes`);
  return v;
}

function parseJsonKey(text: string, what: string): Record<string, unknown> {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch {
    throw keyErr(what, 'not a Bulwark key file (not JSON)');
  }
  const o = obj(j, what, '(root)');
  if (o['format'] !== KEY_FILE_FORMAT) throw keyErr(what, `not a Bulwark key file (format is not "${KEY_FILE_FORMAT}")`);
  if (o['version'] !== KEY_FILE_VERSION) throw keyErr(what, `unsupported key file version ${JSON.stringify(o['version'])} (this Bulwark reads version ${KEY_FILE_VERSION})`);
  if (o['kind'] !== 'public' && o['kind'] !== 'private') throw keyErr(what, 'field kind must be "public" or "private"');
  return o;
}

function checkIds(o: Record<string, unknown>, pub: BulwarkPublicKey, what: string): void {
  const s = obj(o['signing'], what, 'signing');
  const e = obj(o['encryption'], what, 'encryption');
  const claims: [unknown, string, string][] = [
    [s['keyId'], pub.signing.keyId, 'signing.keyId'],
    [obj(s['ed25519'], what, 'signing.ed25519')['keyId'], pub.signing.ed25519KeyId, 'signing.ed25519.keyId'],
    [obj(s['mlDsa65'], what, 'signing.mlDsa65')['keyId'], pub.signing.mlDsa65KeyId, 'signing.mlDsa65.keyId'],
    [e['keyId'], pub.encryption.keyId, 'encryption.keyId'],
  ];
  for (const [claimed, actual, field] of claims) {
    if (claimed !== undefined && claimed !== actual) throw keyErr(what, `${field} does not match the key material (the file is corrupt or was edited)`);
  }
}

function publicFromJson(o: Record<string, unknown>, what: string): BulwarkPublicKey {
  const s = obj(o['signing'], what, 'signing');
  const e = obj(o['encryption'], what, 'encryption');
  const sEd = obj(s['ed25519'], what, 'signing.ed25519');
  const sDsa = obj(s['mlDsa65'], what, 'signing.mlDsa65');
  const eX = obj(e['x25519'], what, 'encryption.x25519');
  const eKem = obj(e['mlKem768'], what, 'encryption.mlKem768');
  let ed: KeyObject;
  let x: KeyObject;
  try {
    ed = createPublicKey(str(sEd, 'publicKeyPem', what, 'signing.ed25519'));
    x = createPublicKey(str(eX, 'publicKeyPem', what, 'encryption.x25519'));
  } catch (err) {
    if (err instanceof BulwarkError) throw err;
    throw keyErr(what, `unreadable PEM public key: ${(err as Error).message}`);
  }
  if (ed.asymmetricKeyType !== 'ed25519') throw keyErr(what, 'signing.ed25519.publicKeyPem is not an Ed25519 key');
  if (x.asymmetricKeyType !== 'x25519') throw keyErr(what, 'encryption.x25519.publicKeyPem is not an X25519 key');
  const pub = makePublicKey(
    rawOkp(ed),
    b64(sDsa, 'publicKey', KEY_LENGTHS.mlDsa65Public, what, 'signing.mlDsa65'),
    rawOkp(x),
    b64(eKem, 'publicKey', KEY_LENGTHS.mlKem768Public, what, 'encryption.mlKem768'),
  );
  checkIds(o, pub, what);
  return pub;
}

function samePublic(a: BulwarkPublicKey, b: BulwarkPublicKey): boolean {
  // Key ids are SHA-256 over all public material, so equal ids mean equal keys.
  return constantTimeEqual(Buffer.from(a.signing.keyId), Buffer.from(b.signing.keyId)) && constantTimeEqual(Buffer.from(a.encryption.keyId), Buffer.from(b.encryption.keyId));
}

/**
 * Parses the text of a public key file. A private key file is accepted too (its public half is returned).
 * @param what the argument the text came from, for messages
 * @throws BulwarkError BULWARK_E_KEY
 */
export function parsePublicKey(text: string, what = 'key'): BulwarkPublicKey {
  const o = parseJsonKey(text, what);
  return publicFromJson(o, what);
}

/**
 * Parses the text of a private key file and checks that its secret and public halves match.
 * @throws BulwarkError BULWARK_E_KEY (also when given a public key file)
 */
export function parsePrivateKey(text: string, what = 'key'): BulwarkPrivateKey {
  const o = parseJsonKey(text, what);
  if (o['kind'] !== 'private') throw keyErr(what, 'this is a public key file; this operation needs the private key file written by `bulwark keygen --out KEY` (KEY, not KEY.pub)');
  const stated = publicFromJson(o, what);
  const s = obj(o['signing'], what, 'signing');
  const e = obj(o['encryption'], what, 'encryption');
  const sEd = obj(s['ed25519'], what, 'signing.ed25519');
  const eX = obj(e['x25519'], what, 'encryption.x25519');
  let ed: KeyObject;
  let x: KeyObject;
  try {
    ed = createPrivateKey(str(sEd, 'privateKeyPem', what, 'signing.ed25519'));
    x = createPrivateKey(str(eX, 'privateKeyPem', what, 'encryption.x25519'));
  } catch (err) {
    if (err instanceof BulwarkError) throw err;
    // Never echo the underlying parser message: it could quote key bytes.
    throw keyErr(what, 'unreadable PEM private key');
  }
  if (ed.asymmetricKeyType !== 'ed25519') throw keyErr(what, 'signing.ed25519.privateKeyPem is not an Ed25519 key');
  if (x.asymmetricKeyType !== 'x25519') throw keyErr(what, 'encryption.x25519.privateKeyPem is not an X25519 key');
  const priv = privateFromParts(
    ed,
    b64(obj(s['mlDsa65'], what, 'signing.mlDsa65'), 'seed', KEY_LENGTHS.mlDsa65Seed, what, 'signing.mlDsa65'),
    x,
    b64(obj(e['mlKem768'], what, 'encryption.mlKem768'), 'seed', KEY_LENGTHS.mlKem768Seed, what, 'encryption.mlKem768'),
  );
  if (!samePublic(priv.publicKey, stated)) {
    priv.destroy();
    throw keyErr(what, 'the private key does not match the public key stored beside it (the file is corrupt or was edited)');
  }
  return priv;
}

function readKeyText(file: string, what: string): string {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    throw new BulwarkError('BULWARK_E_FILE_NOT_FOUND', `${what}: no such file: ${file}`);
  }
  if (!st.isFile()) throw new BulwarkError('BULWARK_E_FILE_READ', `${what}: not a regular file: ${file}`);
  if (st.size > MAX_KEY_FILE_BYTES) throw keyErr(what, `${file} is ${st.size} bytes: too large to be a key file`);
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new BulwarkError('BULWARK_E_FILE_READ', `${what}: cannot read ${file}: ${(e as Error).message}`);
  }
}

/** Reads a public key file (or the public half of a private key file). */
export function loadPublicKey(file: string, what = '--key'): BulwarkPublicKey {
  return parsePublicKey(readKeyText(file, what), what);
}

/** Reads a private key file. */
export function loadPrivateKey(file: string, what = '--key'): BulwarkPrivateKey {
  return parsePrivateKey(readKeyText(file, what), what);
}

/**
 * Returns a warning when a private key file is readable or writable by group or others (POSIX only), or null.
 */
export function privateKeyPermissionWarning(file: string): string | null {
  if (process.platform === 'win32') return null;
  try {
    const mode = fs.statSync(file).mode & 0o777;
    if (mode & 0o077) return `private key file ${file} has mode ${mode.toString(8).padStart(4, '0')}; it should be 0600 (chmod 600 ${file})`;
  } catch {
    // reported by the loader
  }
  return null;
}

/** Where `keygen --out KEY` writes: the private key and the public key. */
export interface KeyFilePaths {
  privateKey: string;
  publicKey: string;
}

/**
 * Writes a key pair: `out` (private, mode 0600) and `out.pub` (public), each atomically. Refuses to replace
 * existing files unless `force` is set, so a private key is never overwritten by accident.
 * @throws BulwarkError BULWARK_E_FILE_WRITE, BULWARK_E_ARG (exists)
 */
export async function saveKeyPair(out: string, pair: BulwarkKeyPair, options: { force?: boolean } = {}): Promise<KeyFilePaths> {
  const paths = { privateKey: out, publicKey: `${out}.pub` };
  if (!options.force) {
    for (const p of [paths.privateKey, paths.publicKey]) {
      if (fs.existsSync(p)) throw new BulwarkError('BULWARK_E_ARG', `--out: ${p} already exists; refusing to overwrite a key`, { hint: 'Choose another --out path, or pass --force to replace the key pair.' });
    }
  }
  const overwrite = options.force === true;
  await writeFileAtomicMode(paths.privateKey, serializePrivateKey(pair.privateKey), 0o600, '--out', { overwrite });
  await writeFileAtomicMode(paths.publicKey, serializePublicKey(pair.publicKey), 0o644, '--out', { overwrite });
  return paths;
}

/** True when `s` looks like a hybrid key id (64 lowercase hex characters). */
export function isKeyId(s: unknown): s is string {
  return isHex(s, 32);
}
