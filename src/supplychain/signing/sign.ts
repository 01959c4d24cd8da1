/**
 * Hybrid model signing and verification.
 *
 * `signPath` hashes a model file or folder, builds the OpenSSF Model Signing in-toto statement, and signs the DSSE
 * pre-authentication encoding of it twice: with Ed25519 and with ML-DSA-65. `verifyPath` requires BOTH signatures
 * to verify with the given public key, then re-hashes the model and compares it, file by file, with the signed
 * manifest (a modified, added, removed or renamed file fails, and is named).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { verify as nodeVerify } from 'node:crypto';
import { ml_dsa65 } from '@noble/post-quantum/ml-dsa.js';
import { BulwarkError, internal } from '../../core/errors.js';
import { writeFileAtomicMode } from '../../core/atomic.js';
import { constantTimeEqual } from '../crypto/encoding.js';
import { KEY_LENGTHS, type BulwarkPrivateKey, type BulwarkPublicKey } from '../crypto/keys.js';
import { IN_TOTO_PAYLOAD_TYPE, MAX_SIGNATURE_FILE_BYTES, makeEnvelope, parseEnvelope, preAuthEncoding, serializeEnvelope, type DsseEnvelope, type ParsedEnvelope } from './dsse.js';
import { FOLDER_SIGNATURE_NAME, buildStatement, compareNames, hashModel, parseStatement, type ModelDigest, type ModelStatement } from './manifest.js';

/** Outcome of one of the two signature checks. */
export type SignatureStatus = 'valid' | 'invalid' | 'missing' | 'duplicate';

/** Per-file outcome of a verification. */
export interface FileCheck {
  /** Relative POSIX path (the file name for a single-file model). */
  name: string;
  /**
   * ok: digest matches; modified: digest differs; missing: signed but absent (removed or renamed); added: present
   * but not signed; refused: a symlink or special file (never followed).
   */
  status: 'ok' | 'modified' | 'missing' | 'added' | 'refused';
  /** Signed digest (hex), when the file is in the manifest. */
  expected?: string;
  /** Digest on disk (hex), when the file was hashed. */
  actual?: string;
}

/** The result of {@link verifyPath}. */
export interface VerifyResult {
  /** True only when both signatures verify and every file matches the signed manifest. */
  valid: boolean;
  /** Why verification failed (empty when valid). */
  reasons: string[];
  /** Notes that do not affect validity (e.g. extra signatures by unknown keys, a renamed model folder). */
  warnings: string[];
  /** Per-file results, sorted by name (empty when the signatures did not verify: the manifest is untrusted then). */
  files: FileCheck[];
  signatures: { ed25519: SignatureStatus; mlDsa65: SignatureStatus };
  /** The hybrid signing key id of the public key used. */
  keyId: string;
  model: string;
  /** The signature file read, if any. */
  signature?: string;
  /** The signed subject (model name and root digest), when the signatures verified. */
  subject?: { name: string; sha256: string };
  /** Bytes hashed. */
  bytes: number;
}

/** The result of {@link signPath}. */
export interface SignResult {
  envelope: DsseEnvelope;
  statement: ModelStatement;
  /** Where the signature belongs (the default location unless `sigPath` was given); not written by signPath. */
  sigPath: string;
  model: ModelDigest;
  /** The hybrid signing key id. */
  keyId: string;
}

/** Options of {@link signPath}. */
export interface SignOptions {
  /** Where the signature will be written; a path inside the model folder is left out of the hashed set. */
  sigPath?: string;
  onProgress?: (done: number, total: number) => void;
}

/** Options of {@link verifyPath}. */
export interface VerifyOptions {
  onProgress?: (done: number, total: number) => void;
}

/**
 * The default signature location: `<model>.sig` for a file, `<folder>/model.sig` for a folder.
 * @throws BulwarkError BULWARK_E_FILE_NOT_FOUND
 */
export function defaultSignaturePath(modelPath: string): string {
  let st: fs.Stats;
  try {
    st = fs.statSync(modelPath);
  } catch {
    throw new BulwarkError('BULWARK_E_FILE_NOT_FOUND', `model: no such file or folder: ${modelPath}`);
  }
  return st.isDirectory() ? path.join(modelPath, FOLDER_SIGNATURE_NAME) : `${modelPath}.sig`;
}

/** The signature's path relative to the model folder (POSIX), when it lies inside it; else null. */
async function signatureInside(modelPath: string, sigPath: string): Promise<string | null> {
  let rootReal: string;
  try {
    rootReal = await fs.promises.realpath(modelPath);
    if (!(await fs.promises.stat(rootReal)).isDirectory()) return null;
  } catch {
    return null;
  }
  const sigAbs = path.resolve(sigPath);
  let dirReal: string;
  try {
    dirReal = await fs.promises.realpath(path.dirname(sigAbs));
  } catch {
    return null;
  }
  const rel = path.relative(rootReal, path.join(dirReal, path.basename(sigAbs)));
  if (rel === '' || rel === '..' || rel.startsWith('..' + path.sep) || path.isAbsolute(rel)) return null;
  return rel.split(path.sep).join('/');
}

function countSigs(parsed: ParsedEnvelope, keyid: string): { sig: Buffer } | 'missing' | 'duplicate' {
  const m = parsed.signatures.filter((s) => s.keyid === keyid);
  if (m.length === 0) return 'missing';
  if (m.length > 1) return 'duplicate';
  return m[0]!;
}

/**
 * Checks both signatures of an envelope over its DSSE pre-authentication encoding. Both must be present exactly
 * once under the key's keyids and both must verify; signatures under other keyids are ignored (and reported as
 * warnings), so they can never make an envelope valid.
 */
export function checkEnvelopeSignatures(parsed: ParsedEnvelope, pub: BulwarkPublicKey): { ed25519: SignatureStatus; mlDsa65: SignatureStatus; reasons: string[]; warnings: string[] } {
  const pae = preAuthEncoding(parsed.envelope.payloadType, parsed.payload);
  const reasons: string[] = [];
  const warnings: string[] = [];
  const k = pub.signing;

  let ed25519: SignatureStatus;
  const e = countSigs(parsed, k.ed25519KeyId);
  if (e === 'missing' || e === 'duplicate') ed25519 = e;
  else {
    let ok = false;
    try {
      ok = e.sig.length === KEY_LENGTHS.ed25519Signature && nodeVerify(null, pae, k.ed25519, e.sig);
    } catch {
      ok = false;
    }
    ed25519 = ok ? 'valid' : 'invalid';
  }

  let mlDsa65: SignatureStatus;
  const p = countSigs(parsed, k.mlDsa65KeyId);
  if (p === 'missing' || p === 'duplicate') mlDsa65 = p;
  else {
    let ok = false;
    try {
      ok = p.sig.length === KEY_LENGTHS.mlDsa65Signature && ml_dsa65.verify(p.sig, pae, k.mlDsa65);
    } catch {
      ok = false;
    }
    mlDsa65 = ok ? 'valid' : 'invalid';
  }

  const say = (alg: string, st: SignatureStatus, keyid: string): void => {
    if (st === 'missing') reasons.push(`no ${alg} signature by this key (expected keyid ${keyid}): the model was signed with another key, or the ${alg} signature was removed`);
    else if (st === 'duplicate') reasons.push(`more than one ${alg} signature under keyid ${keyid}`);
    else if (st === 'invalid') reasons.push(`the ${alg} signature does not verify: the signature or its payload was modified`);
  };
  say('Ed25519', ed25519, k.ed25519KeyId);
  say('ML-DSA-65', mlDsa65, k.mlDsa65KeyId);
  for (const s of parsed.signatures) {
    if (s.keyid !== k.ed25519KeyId && s.keyid !== k.mlDsa65KeyId) warnings.push(`ignored a signature by an unknown key (keyid ${JSON.stringify(s.keyid.slice(0, 80))})`);
  }
  return { ed25519, mlDsa65, reasons, warnings };
}

/**
 * Signs a model file or folder with both halves of the hybrid signing key.
 *
 * The model is hashed in streaming fashion (files read in chunks), the folder walk is confined and refuses
 * symlinks and special files, and the signature file's own path (when inside the folder) is excluded from the
 * hashed set and recorded in `serialization.ignore_paths`. The returned envelope is self-checked before return.
 * Nothing is written: pass `envelope` and `sigPath` to {@link writeSignature}.
 * @param modelPath a model file or folder
 * @param privateKey the signer's private key (KEY)
 * @throws BulwarkError file errors, BULWARK_E_PATH_ESCAPE (links), BULWARK_E_ARG (an empty folder)
 */
export async function signPath(modelPath: string, privateKey: BulwarkPrivateKey, options: SignOptions = {}): Promise<SignResult> {
  const sigPath = options.sigPath ?? defaultSignaturePath(modelPath);
  if (fs.existsSync(sigPath) && fs.existsSync(modelPath) && fs.realpathSync(sigPath) === fs.realpathSync(modelPath)) {
    throw new BulwarkError('BULWARK_E_ARG', '--out: the signature path is the model itself');
  }
  const inside = await signatureInside(modelPath, sigPath);
  const ignore = inside === null ? [] : [inside];
  const model = await hashModel(modelPath, { ignore, refuseLinks: true, ...(options.onProgress ? { onProgress: options.onProgress } : {}) });
  if (model.files.length === 0) throw new BulwarkError('BULWARK_E_ARG', `model: the folder ${modelPath} has no files to sign`);
  const statement = buildStatement(model, ignore);
  const payload = Buffer.from(JSON.stringify(statement), 'utf8');
  const pae = preAuthEncoding(IN_TOTO_PAYLOAD_TYPE, payload);
  const pub = privateKey.publicKey.signing;
  const envelope = makeEnvelope(IN_TOTO_PAYLOAD_TYPE, payload, [
    { keyid: pub.ed25519KeyId, sig: privateKey.signEd25519(pae) },
    { keyid: pub.mlDsa65KeyId, sig: privateKey.signMlDsa65(pae) },
  ]);
  // Self-check: a signature that does not verify (fault, bug) must never leave this function.
  const check = checkEnvelopeSignatures(parseEnvelope(envelope), privateKey.publicKey);
  if (check.ed25519 !== 'valid' || check.mlDsa65 !== 'valid') internal(`freshly made signatures do not verify: ${check.reasons.join('; ')}`);
  return { envelope, statement, sigPath, model, keyId: pub.keyId };
}

/** Writes a signature file atomically (mode 0644). */
export async function writeSignature(sigPath: string, envelope: DsseEnvelope): Promise<void> {
  await writeFileAtomicMode(sigPath, serializeEnvelope(envelope), 0o644, '--out');
}

/**
 * Reads and parses a signature file (size-limited; no signature is verified here).
 * @throws BulwarkError BULWARK_E_FILE_NOT_FOUND, BULWARK_E_FILE_READ, BULWARK_E_SIG_FORMAT
 */
export function readSignature(sigPath: string, what = '--sig'): ParsedEnvelope {
  let st: fs.Stats;
  try {
    st = fs.statSync(sigPath);
  } catch {
    throw new BulwarkError('BULWARK_E_FILE_NOT_FOUND', `${what}: no such signature file: ${sigPath}`, { hint: 'Sign the model first with `bulwark sign`, or pass the signature with --sig.' });
  }
  if (!st.isFile()) throw new BulwarkError('BULWARK_E_FILE_READ', `${what}: not a regular file: ${sigPath}`);
  if (st.size > MAX_SIGNATURE_FILE_BYTES) throw new BulwarkError('BULWARK_E_SIG_FORMAT', `${what}: ${sigPath} is ${st.size} bytes, over the ${MAX_SIGNATURE_FILE_BYTES}-byte limit`);
  let text: string;
  try {
    text = fs.readFileSync(sigPath, 'utf8');
  } catch (e) {
    throw new BulwarkError('BULWARK_E_FILE_READ', `${what}: cannot read ${sigPath}: ${(e as Error).message}`);
  }
  return parseEnvelope(text, what);
}

function listNames(names: string[], max = 10): string {
  const shown = names.slice(0, max).join(', ');
  return names.length > max ? `${shown}, and ${names.length - max} more` : shown;
}

/**
 * Verifies a model file or folder against a hybrid signature.
 *
 * Valid means: the envelope holds exactly one Ed25519 and one ML-DSA-65 signature under this key's keyids, BOTH
 * verify over the DSSE pre-authentication encoding, the payload is an in-toto Statement v1 with the OpenSSF Model
 * Signing predicate whose subject digest matches its resources, and the model on disk has exactly the signed
 * files with the signed SHA-256 digests: nothing modified, added, removed or renamed, and no symlinks.
 * Invalid signatures are a result (`valid: false`), not an exception.
 * @param modelPath the model file or folder
 * @param publicKey the signer's public key (KEY.pub)
 * @param sig the envelope, or the path of the signature file; default: the default location for `modelPath`
 * @throws BulwarkError only for input errors: missing/unreadable files (exit 2), a malformed envelope
 *   (BULWARK_E_SIG_FORMAT, exit 2)
 */
export async function verifyPath(modelPath: string, publicKey: BulwarkPublicKey, sig?: DsseEnvelope | string, options: VerifyOptions = {}): Promise<VerifyResult> {
  if (!fs.existsSync(modelPath)) throw new BulwarkError('BULWARK_E_FILE_NOT_FOUND', `model: no such file or folder: ${modelPath}`);
  let sigPath: string | undefined;
  let parsed: ParsedEnvelope;
  if (sig === undefined || typeof sig === 'string') {
    sigPath = sig ?? defaultSignaturePath(modelPath);
    parsed = readSignature(sigPath);
  } else {
    parsed = parseEnvelope(sig);
  }
  const check = checkEnvelopeSignatures(parsed, publicKey);
  const result: VerifyResult = {
    valid: false,
    reasons: [...check.reasons],
    warnings: [...check.warnings],
    files: [],
    signatures: { ed25519: check.ed25519, mlDsa65: check.mlDsa65 },
    keyId: publicKey.signing.keyId,
    model: modelPath,
    ...(sigPath === undefined ? {} : { signature: sigPath }),
    bytes: 0,
  };
  if (result.reasons.length > 0) return result;

  // Both signatures verified: the payload is authentic. Check what it says.
  if (parsed.envelope.payloadType !== IN_TOTO_PAYLOAD_TYPE) {
    result.reasons.push(`the payloadType is ${JSON.stringify(parsed.envelope.payloadType)}, not ${IN_TOTO_PAYLOAD_TYPE}`);
    return result;
  }
  const st = parseStatement(parsed.payload);
  if ('error' in st) {
    result.reasons.push(`the signed payload is not a valid model signing statement: ${st.error}`);
    return result;
  }
  const statement = st.statement;
  result.subject = { name: statement.subject[0].name, sha256: statement.subject[0].digest.sha256 };

  const ignore = new Set(statement.predicate.serialization.ignore_paths);
  if (sigPath !== undefined) {
    const inside = await signatureInside(modelPath, sigPath);
    if (inside !== null) ignore.add(inside);
  }
  const model = await hashModel(modelPath, { ignore, refuseLinks: false, ...(options.onProgress ? { onProgress: options.onProgress } : {}) });
  result.bytes = model.bytes;
  if (model.name !== statement.subject[0].name) result.warnings.push(`the model is named ${JSON.stringify(model.name)}; it was signed as ${JSON.stringify(statement.subject[0].name)}`);

  const signedAll = new Map(statement.predicate.resources.map((r) => [r.name, r.digest] as const));
  const unseen = new Set(signedAll.keys());
  const files: FileCheck[] = [];
  for (const f of model.files) {
    const expected = signedAll.get(f.name);
    if (expected === undefined) files.push({ name: f.name, status: 'added', actual: f.digest });
    else {
      unseen.delete(f.name);
      const same = constantTimeEqual(Buffer.from(expected, 'hex'), Buffer.from(f.digest, 'hex'));
      files.push({ name: f.name, status: same ? 'ok' : 'modified', expected, actual: f.digest });
    }
  }
  for (const r of model.refused) {
    unseen.delete(r.name);
    const expected = signedAll.get(r.name);
    files.push({ name: r.name, status: 'refused', ...(expected === undefined ? {} : { expected }) });
  }
  for (const name of unseen) files.push({ name, status: 'missing', expected: signedAll.get(name)! });
  files.sort((a, b) => compareNames(a.name, b.name));
  result.files = files;

  const by = (s: FileCheck['status']): string[] => files.filter((f) => f.status === s).map((f) => f.name);
  const modified = by('modified');
  const missing = by('missing');
  const added = by('added');
  const refused = model.refused;
  if (modified.length) result.reasons.push(`${modified.length} file(s) modified: ${listNames(modified)}`);
  if (missing.length) result.reasons.push(`${missing.length} signed file(s) missing (removed or renamed): ${listNames(missing)}`);
  if (added.length) result.reasons.push(`${added.length} file(s) not covered by the signature (added or renamed): ${listNames(added)}`);
  if (refused.length) result.reasons.push(`${refused.length} symbolic link(s) or special file(s) refused: ${listNames(refused.map((r) => `${r.name} (${r.kind})`))}`);
  result.valid = result.reasons.length === 0;
  return result;
}

/**
 * Throws unless a verification succeeded: for code paths that must refuse to load an unverified model.
 * @throws BulwarkError BULWARK_E_SIGNATURE (exit 1) with the reasons in the message and `details`
 */
export function assertVerified(r: VerifyResult): void {
  if (r.valid) return;
  throw new BulwarkError('BULWARK_E_SIGNATURE', `${r.model}: signature verification failed: ${r.reasons.join('; ')}`, {
    details: { reasons: r.reasons, files: r.files.filter((f) => f.status !== 'ok'), signatures: r.signatures },
  });
}
