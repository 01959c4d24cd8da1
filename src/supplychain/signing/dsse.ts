/**
 * DSSE (Dead Simple Signing Envelope, https://github.com/secure-systems-lab/dsse, protocol v1): the
 * pre-authentication encoding and the JSON envelope.
 */
import { BulwarkError } from '../../core/errors.js';
import { decodeBase64Strict, encodeBase64 } from '../crypto/encoding.js';

/** The DSSE payload type of an in-toto statement. */
export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';
/** Largest signature file read (a manifest of ~300k files). */
export const MAX_SIGNATURE_FILE_BYTES = 64 * 1024 * 1024;
/** Most signatures accepted in one envelope. */
export const MAX_SIGNATURES = 16;

/** One signature of a DSSE envelope. */
export interface DsseSignature {
  /** Which key made the signature (Bulwark: `ed25519:<hex>` or `ml-dsa-65:<hex>`). */
  keyid: string;
  /** Base64 of the signature bytes. */
  sig: string;
}

/** A DSSE envelope (JSON serialization). */
export interface DsseEnvelope {
  payloadType: string;
  /** Base64 of the payload bytes. */
  payload: string;
  signatures: DsseSignature[];
}

/**
 * The DSSE v1 pre-authentication encoding, the bytes that are actually signed:
 * `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, with LEN the ASCII decimal byte length (UTF-8 for type).
 */
export function preAuthEncoding(payloadType: string, payload: Uint8Array): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `, 'ascii'), type, Buffer.from(` ${payload.byteLength} `, 'ascii'), payload]);
}

/** Builds an envelope from a payload and its signatures. */
export function makeEnvelope(payloadType: string, payload: Uint8Array, signatures: { keyid: string; sig: Uint8Array }[]): DsseEnvelope {
  return { payloadType, payload: encodeBase64(payload), signatures: signatures.map((s) => ({ keyid: s.keyid, sig: encodeBase64(s.sig) })) };
}

/** The text of a signature file: the envelope as JSON. */
export function serializeEnvelope(env: DsseEnvelope): string {
  return JSON.stringify(env, null, 2) + '\n';
}

/** A structurally valid envelope with its payload and signatures decoded. */
export interface ParsedEnvelope {
  envelope: DsseEnvelope;
  payload: Buffer;
  signatures: { keyid: string; sig: Buffer }[];
}

function fmt(what: string, msg: string): BulwarkError {
  return new BulwarkError('BULWARK_E_SIG_FORMAT', `${what}: ${msg}`);
}

/**
 * Checks the shape of a DSSE envelope (from JSON text or an object) and decodes its base64 fields strictly.
 * This does not verify any signature.
 * @throws BulwarkError BULWARK_E_SIG_FORMAT
 */
export function parseEnvelope(input: string | unknown, what = 'signature'): ParsedEnvelope {
  let j: unknown = input;
  if (typeof input === 'string') {
    try {
      j = JSON.parse(input);
    } catch {
      throw fmt(what, 'not a DSSE envelope (not JSON)');
    }
  }
  if (typeof j !== 'object' || j === null || Array.isArray(j)) throw fmt(what, 'not a DSSE envelope (not a JSON object)');
  const o = j as Record<string, unknown>;
  if (typeof o['payloadType'] !== 'string') throw fmt(what, 'payloadType must be a string');
  const payload = decodeBase64Strict(o['payload']);
  if (payload === null) throw fmt(what, 'payload must be base64');
  const sigs = o['signatures'];
  if (!Array.isArray(sigs) || sigs.length === 0) throw fmt(what, 'signatures must be a non-empty array');
  if (sigs.length > MAX_SIGNATURES) throw fmt(what, `too many signatures (${sigs.length} > ${MAX_SIGNATURES})`);
  const signatures = sigs.map((s, i) => {
    if (typeof s !== 'object' || s === null) throw fmt(what, `signatures[${i}] must be an object`);
    const so = s as Record<string, unknown>;
    const keyid = so['keyid'] === undefined ? '' : so['keyid'];
    if (typeof keyid !== 'string') throw fmt(what, `signatures[${i}].keyid must be a string`);
    const sig = decodeBase64Strict(so['sig']);
    if (sig === null || sig.length === 0) throw fmt(what, `signatures[${i}].sig must be non-empty base64`);
    return { keyid, sig };
  });
  const envelope: DsseEnvelope = {
    payloadType: o['payloadType'],
    payload: o['payload'] as string,
    signatures: signatures.map((s, i) => ({ keyid: s.keyid, sig: (sigs[i] as Record<string, string>)['sig']! })),
  };
  return { envelope, payload, signatures };
}
