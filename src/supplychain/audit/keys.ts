/**
 * Keys that sign and verify audit checkpoints: a Bulwark key (KEY / KEY.pub: both Ed25519 and ML-DSA-65 sign,
 * both must verify), or a dedicated Ed25519 key in PEM (PKCS#8 private, SPKI public), for deployments that keep a
 * separate audit key. The private halves stay inside node:crypto KeyObjects or BulwarkPrivateKey; nothing here
 * prints key bytes.
 */
import * as fs from 'node:fs';
import { createHash, createPrivateKey, createPublicKey, sign as nodeSign, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { ml_dsa65 } from '@noble/post-quantum/ml-dsa.js';
import { BulwarkError } from '../../core/errors.js';
import { decodeBase64Strict, encodeBase64 } from '../crypto/encoding.js';
import { KEY_LENGTHS, parsePrivateKey, parsePublicKey, type BulwarkPrivateKey, type BulwarkPublicKey } from '../crypto/keys.js';

/** Signature schemes of a checkpoint. */
export type CheckpointAlg = 'ed25519' | 'hybrid-ed25519-ml-dsa-65';

/** The signatures of one checkpoint (base64). */
export interface CheckpointSignatures {
  ed25519: string;
  /** Present for the hybrid scheme. */
  mlDsa65?: string;
}

/** Signs checkpoints. */
export interface AuditSigner {
  /** Hybrid: the Bulwark signing key id; Ed25519: `ed25519:` + hex SHA-256 of the raw public key. */
  readonly keyId: string;
  readonly alg: CheckpointAlg;
  sign(message: Uint8Array): CheckpointSignatures;
  /** The matching verifier (the public half). */
  verifier(): AuditVerifier;
}

/** Verifies checkpoints made by one key. */
export interface AuditVerifier {
  readonly keyId: string;
  readonly alg: CheckpointAlg;
  /** True only when every signature the scheme needs is present and verifies. */
  verify(message: Uint8Array, sigs: CheckpointSignatures): boolean;
}

const MAX_KEY_BYTES = 1024 * 1024;

function ed25519KeyId(pub: KeyObject): string {
  const jwk = pub.export({ format: 'jwk' }) as { x?: string };
  return `ed25519:${createHash('sha256').update(Buffer.from(jwk.x ?? '', 'base64url')).digest('hex')}`;
}

function verifyEd(pub: KeyObject, message: Uint8Array, b64: unknown): boolean {
  const sig = decodeBase64Strict(b64);
  if (!sig || sig.length !== KEY_LENGTHS.ed25519Signature) return false;
  try {
    return nodeVerify(null, message, pub, sig);
  } catch {
    return false;
  }
}

/** A checkpoint signer from a Bulwark private key: both Ed25519 and ML-DSA-65 sign. */
export function auditSignerFromKey(key: BulwarkPrivateKey): AuditSigner {
  return {
    keyId: key.publicKey.signing.keyId,
    alg: 'hybrid-ed25519-ml-dsa-65',
    sign: (m) => ({ ed25519: encodeBase64(key.signEd25519(m)), mlDsa65: encodeBase64(key.signMlDsa65(m)) }),
    verifier: () => auditVerifierFromKey(key.publicKey),
  };
}

/** A checkpoint verifier from a Bulwark public key: both signatures must verify. */
export function auditVerifierFromKey(pub: BulwarkPublicKey): AuditVerifier {
  return {
    keyId: pub.signing.keyId,
    alg: 'hybrid-ed25519-ml-dsa-65',
    verify(m, sigs) {
      if (!verifyEd(pub.signing.ed25519, m, sigs.ed25519)) return false;
      const pq = decodeBase64Strict(sigs.mlDsa65);
      if (!pq || pq.length !== KEY_LENGTHS.mlDsa65Signature) return false;
      try {
        return ml_dsa65.verify(pq, m, pub.signing.mlDsa65);
      } catch {
        return false;
      }
    },
  };
}

/**
 * A checkpoint signer from a dedicated Ed25519 private key.
 * @throws BulwarkError BULWARK_E_KEY when the key is not an Ed25519 private key
 */
export function auditSignerFromEd25519(key: KeyObject): AuditSigner {
  if (key.type !== 'private' || key.asymmetricKeyType !== 'ed25519') throw new BulwarkError('BULWARK_E_KEY', 'audit key: an Ed25519 private key is needed');
  const pub = createPublicKey(key);
  return { keyId: ed25519KeyId(pub), alg: 'ed25519', sign: (m) => ({ ed25519: encodeBase64(nodeSign(null, m, key)) }), verifier: () => auditVerifierFromEd25519(pub) };
}

/**
 * A checkpoint verifier from an Ed25519 public key.
 * @throws BulwarkError BULWARK_E_KEY when the key is not Ed25519
 */
export function auditVerifierFromEd25519(pub: KeyObject): AuditVerifier {
  const k = pub.type === 'private' ? createPublicKey(pub) : pub;
  if (k.asymmetricKeyType !== 'ed25519') throw new BulwarkError('BULWARK_E_KEY', 'audit key: an Ed25519 public key is needed');
  return { keyId: ed25519KeyId(k), alg: 'ed25519', verify: (m, sigs) => sigs.mlDsa65 === undefined && verifyEd(k, m, sigs.ed25519) };
}

function readKey(file: string, what: string): string {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    throw new BulwarkError('BULWARK_E_FILE_NOT_FOUND', `${what}: no such file: ${file}`);
  }
  if (!st.isFile() || st.size > MAX_KEY_BYTES) throw new BulwarkError('BULWARK_E_KEY', `${what}: ${file} is not a key file`);
  return fs.readFileSync(file, 'utf8');
}

/**
 * Reads an audit signing key: a Bulwark private key file (KEY) or an Ed25519 PKCS#8 PEM private key.
 * @throws BulwarkError BULWARK_E_KEY, BULWARK_E_FILE_NOT_FOUND
 */
export function loadAuditSigner(file: string, what = '--audit-key'): AuditSigner {
  const text = readKey(file, what);
  if (text.trimStart().startsWith('{')) return auditSignerFromKey(parsePrivateKey(text, what));
  let key: KeyObject;
  try {
    key = createPrivateKey(text);
  } catch {
    // The parser's message could quote key bytes: never echo it.
    throw new BulwarkError('BULWARK_E_KEY', `${what}: ${file} is neither a Bulwark key file nor a PEM private key`);
  }
  return auditSignerFromEd25519(key);
}

/**
 * Reads an audit verification key: a Bulwark key file (KEY.pub, or KEY whose public half is used) or an Ed25519
 * PEM public key (SPKI).
 * @throws BulwarkError BULWARK_E_KEY, BULWARK_E_FILE_NOT_FOUND
 */
export function loadAuditVerifier(file: string, what = '--key'): AuditVerifier {
  const text = readKey(file, what);
  if (text.trimStart().startsWith('{')) return auditVerifierFromKey(parsePublicKey(text, what));
  let key: KeyObject;
  try {
    key = createPublicKey(text);
  } catch {
    throw new BulwarkError('BULWARK_E_KEY', `${what}: ${file} is neither a Bulwark key file nor a PEM public key`);
  }
  return auditVerifierFromEd25519(key);
}
