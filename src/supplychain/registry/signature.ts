/**
 * Checks a model signature (the DSSE envelope `bulwark sign` writes) against a stored blob: both hybrid
 * signatures by a trusted key, and a signed statement whose single resource has the blob's SHA-256. The check
 * uses the blob's digest, never a path, so what is verified is exactly what is stored.
 */
import { BulwarkError } from '../../core/errors.js';
import type { BulwarkPublicKey } from '../crypto/keys.js';
import { IN_TOTO_PAYLOAD_TYPE, parseEnvelope, type DsseEnvelope, type ParsedEnvelope } from '../signing/dsse.js';
import { parseStatement } from '../signing/manifest.js';
import { checkEnvelopeSignatures } from '../signing/sign.js';

/** The outcome of {@link verifyBlobSignature}. */
export interface BlobSignatureCheck {
  valid: boolean;
  /** The hybrid signing key id that verified, when valid. */
  keyId: string | null;
  /** Why it is not valid (empty when valid). */
  reasons: string[];
  /** The name the model was signed under, when the envelope verified. */
  signedName?: string;
}

/**
 * Verifies an envelope against a blob digest and a set of trusted keys. Valid when, for one trusted key, both the
 * Ed25519 and the ML-DSA-65 signature verify and the signed statement names exactly one file whose digest is
 * `digest`.
 * @param envelope the envelope (object or JSON text)
 * @param digest hex SHA-256 of the stored bytes
 * @param trusted trusted public keys
 * @throws BulwarkError BULWARK_E_SIG_FORMAT when the envelope is malformed
 */
export function verifyBlobSignature(envelope: DsseEnvelope | string, digest: string, trusted: readonly BulwarkPublicKey[]): BlobSignatureCheck {
  const parsed: ParsedEnvelope = parseEnvelope(envelope);
  if (trusted.length === 0) return { valid: false, keyId: null, reasons: ['no trusted key is configured to check the signature'] };
  const reasons: string[] = [];
  for (const key of trusted) {
    const sig = checkEnvelopeSignatures(parsed, key);
    if (sig.ed25519 !== 'valid' || sig.mlDsa65 !== 'valid') {
      if (sig.ed25519 !== 'missing' || sig.mlDsa65 !== 'missing') reasons.push(...sig.reasons.map((r) => `key ${key.signing.keyId.slice(0, 16)}: ${r}`));
      continue;
    }
    if (parsed.envelope.payloadType !== IN_TOTO_PAYLOAD_TYPE) return { valid: false, keyId: null, reasons: [`the payloadType is ${JSON.stringify(parsed.envelope.payloadType)}, not ${IN_TOTO_PAYLOAD_TYPE}`] };
    const st = parseStatement(parsed.payload);
    if ('error' in st) return { valid: false, keyId: null, reasons: [`the signed payload is not a model signing statement: ${st.error}`] };
    const res = st.statement.predicate.resources;
    if (res.length !== 1) return { valid: false, keyId: null, reasons: [`the signature covers ${res.length} files; the registry stores single-file models`] };
    if (res[0]!.digest !== digest) {
      return { valid: false, keyId: null, reasons: [`the signature is for sha256:${res[0]!.digest.slice(0, 16)}..., not for these bytes (sha256:${digest.slice(0, 16)}...): the model was modified after signing`] };
    }
    return { valid: true, keyId: key.signing.keyId, reasons: [], signedName: res[0]!.name };
  }
  if (reasons.length === 0) reasons.push('the model is not signed by any trusted key');
  return { valid: false, keyId: null, reasons };
}

/**
 * Throws unless a signature check passed.
 * @throws BulwarkError BULWARK_E_REGISTRY_POLICY (exit 1)
 */
export function assertSignatureValid(c: BlobSignatureCheck, subject: string): void {
  if (c.valid) return;
  throw new BulwarkError('BULWARK_E_REGISTRY_POLICY', `${subject}: signature refused: ${c.reasons.join('; ')}`, { details: { reasons: c.reasons } });
}
