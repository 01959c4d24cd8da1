/**
 * Registry policy: whether models must be signed (and by which keys), what the scanner must find before a push is
 * refused, and how the audit log is checkpointed. It comes from a JSON policy file (`<root>/policy.json` by
 * default) and from options, which override the file field by field.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BulwarkError } from '../../core/errors.js';
import { loadPublicKey, type BulwarkPublicKey } from '../crypto/keys.js';
import { SEVERITIES, type Severity } from '../scan/findings.js';
import { loadAuditSigner, loadAuditVerifier, type AuditSigner, type AuditVerifier } from '../audit/keys.js';
import { DEFAULT_CHECKPOINT_EVERY } from '../audit/log.js';

/** What the scanner does on push: nothing, record its report in the lineage, or also refuse unsafe models. */
export type ScanMode = 'off' | 'record' | 'enforce';

/** The policy file's JSON (every field optional). */
export interface PolicyFile {
  /** Always 1. */
  version?: 1;
  /** Refuse unsigned models on push, and re-verify the signature on every load. Default false. */
  requireSignature?: boolean;
  /** Public key files (KEY.pub) whose signatures are trusted; relative to the policy file's folder. */
  trustedKeys?: string[];
  /** Default "enforce". */
  scan?: ScanMode;
  /** Lowest finding severity that makes "enforce" refuse a push. Default "high". */
  scanFailOn?: Severity;
  audit?: {
    /** Records between signed checkpoints. Default 100. */
    checkpointEvery?: number;
    /** The checkpoint signing key (a Bulwark KEY or an Ed25519 PEM private key). */
    signingKey?: string;
    /** Keys whose checkpoints verification trusts (KEY.pub or Ed25519 PEM public keys). */
    trustedKeys?: string[];
  };
}

/** The policy in force, keys loaded. */
export interface RegistryPolicy {
  requireSignature: boolean;
  trustedKeys: BulwarkPublicKey[];
  scan: ScanMode;
  scanFailOn: Severity;
  checkpointEvery: number;
  auditSigner: AuditSigner | undefined;
  /** Trusted checkpoint keys (the signer's own public half is always included). */
  auditVerifiers: AuditVerifier[];
  /** The policy file read, if any. */
  source: string | null;
}

/** Options that override the policy file. */
export interface PolicyOverrides {
  requireSignature?: boolean;
  /** Public key files, or loaded keys. */
  trustedKeys?: (string | BulwarkPublicKey)[];
  scan?: ScanMode;
  scanFailOn?: Severity;
  checkpointEvery?: number;
  /** A key file, or a signer. */
  auditKey?: string | AuditSigner;
  /** Key files, or verifiers. */
  auditTrustedKeys?: (string | AuditVerifier)[];
}

const MAX_POLICY_BYTES = 256 * 1024;

function cfg(file: string, msg: string): BulwarkError {
  return new BulwarkError('BULWARK_E_REGISTRY_CONFIG', `policy ${file}: ${msg}`);
}

function onlyKeys(o: Record<string, unknown>, allowed: string[], file: string, where: string): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) throw cfg(file, `unknown field ${where}${k} (allowed: ${allowed.join(', ')})`);
}

function strList(v: unknown, file: string, field: string): string[] {
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string' || s.length === 0)) throw cfg(file, `${field} must be a list of file paths`);
  return v as string[];
}

/**
 * Reads and validates a policy file (strict: unknown fields are refused).
 * @throws BulwarkError BULWARK_E_REGISTRY_CONFIG, BULWARK_E_FILE_NOT_FOUND
 */
export function readPolicyFile(file: string): PolicyFile {
  let text: string;
  try {
    const st = fs.statSync(file);
    if (!st.isFile() || st.size > MAX_POLICY_BYTES) throw cfg(file, 'not a regular file of at most 256 KiB');
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if (e instanceof BulwarkError) throw e;
    throw new BulwarkError('BULWARK_E_FILE_NOT_FOUND', `--policy: no such file: ${file}`);
  }
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch {
    throw cfg(file, 'not valid JSON');
  }
  if (typeof j !== 'object' || j === null || Array.isArray(j)) throw cfg(file, 'must be a JSON object');
  const o = j as Record<string, unknown>;
  onlyKeys(o, ['version', 'requireSignature', 'trustedKeys', 'scan', 'scanFailOn', 'audit'], file, '');
  if (o['version'] !== undefined && o['version'] !== 1) throw cfg(file, `version must be 1, got ${JSON.stringify(o['version'])}`);
  if (o['requireSignature'] !== undefined && typeof o['requireSignature'] !== 'boolean') throw cfg(file, 'requireSignature must be true or false');
  if (o['trustedKeys'] !== undefined) strList(o['trustedKeys'], file, 'trustedKeys');
  if (o['scan'] !== undefined && !['off', 'record', 'enforce'].includes(o['scan'] as string)) throw cfg(file, 'scan must be "off", "record" or "enforce"');
  if (o['scanFailOn'] !== undefined && !(SEVERITIES as readonly unknown[]).includes(o['scanFailOn'])) throw cfg(file, `scanFailOn must be one of ${SEVERITIES.join(', ')}`);
  if (o['audit'] !== undefined) {
    const a = o['audit'];
    if (typeof a !== 'object' || a === null || Array.isArray(a)) throw cfg(file, 'audit must be an object');
    const ao = a as Record<string, unknown>;
    onlyKeys(ao, ['checkpointEvery', 'signingKey', 'trustedKeys'], file, 'audit.');
    if (ao['checkpointEvery'] !== undefined && (!Number.isSafeInteger(ao['checkpointEvery']) || (ao['checkpointEvery'] as number) < 1)) throw cfg(file, 'audit.checkpointEvery must be a positive integer');
    if (ao['signingKey'] !== undefined && (typeof ao['signingKey'] !== 'string' || ao['signingKey'] === '')) throw cfg(file, 'audit.signingKey must be a file path');
    if (ao['trustedKeys'] !== undefined) strList(ao['trustedKeys'], file, 'audit.trustedKeys');
  }
  return o as PolicyFile;
}

/**
 * Resolves the policy in force: the policy file (when given or present at `<root>/policy.json`) with the
 * overrides on top, key files loaded.
 * @param root the registry root
 * @param policyFile an explicit policy file (must exist), or undefined for the default location (optional)
 * @throws BulwarkError BULWARK_E_REGISTRY_CONFIG, BULWARK_E_KEY, BULWARK_E_FILE_NOT_FOUND
 */
export function resolvePolicy(root: string, policyFile: string | undefined, o: PolicyOverrides = {}): RegistryPolicy {
  let file: PolicyFile = {};
  let source: string | null = null;
  if (policyFile !== undefined) {
    file = readPolicyFile(policyFile);
    source = policyFile;
  } else {
    const def = path.join(root, 'policy.json');
    if (fs.existsSync(def)) {
      file = readPolicyFile(def);
      source = def;
    }
  }
  const base = source ? path.dirname(path.resolve(source)) : process.cwd();
  const rel = (p: string): string => (path.isAbsolute(p) ? p : path.join(base, p));

  const trustedKeys = o.trustedKeys !== undefined ? o.trustedKeys.map((k) => (typeof k === 'string' ? loadPublicKey(k, '--trusted-key') : k)) : (file.trustedKeys ?? []).map((k) => loadPublicKey(rel(k), 'policy trustedKeys'));
  const requireSignature = o.requireSignature ?? file.requireSignature ?? false;
  if (requireSignature && trustedKeys.length === 0) {
    throw new BulwarkError('BULWARK_E_REGISTRY_CONFIG', 'the policy requires signatures but names no trusted key', { hint: 'Add trustedKeys to the policy file or pass --trusted-key KEY.pub.' });
  }
  const scan = o.scan ?? file.scan ?? 'enforce';
  const scanFailOn = o.scanFailOn ?? file.scanFailOn ?? 'high';
  const checkpointEvery = o.checkpointEvery ?? file.audit?.checkpointEvery ?? DEFAULT_CHECKPOINT_EVERY;
  if (!Number.isSafeInteger(checkpointEvery) || checkpointEvery < 1) throw new BulwarkError('BULWARK_E_REGISTRY_CONFIG', `checkpointEvery must be a positive integer, got ${checkpointEvery}`);
  let auditSigner: AuditSigner | undefined;
  if (o.auditKey !== undefined) auditSigner = typeof o.auditKey === 'string' ? loadAuditSigner(o.auditKey, '--audit-key') : o.auditKey;
  else if (file.audit?.signingKey) auditSigner = loadAuditSigner(rel(file.audit.signingKey), 'policy audit.signingKey');
  const auditVerifiers = o.auditTrustedKeys !== undefined ? o.auditTrustedKeys.map((k) => (typeof k === 'string' ? loadAuditVerifier(k, '--audit-trusted-key') : k)) : (file.audit?.trustedKeys ?? []).map((k) => loadAuditVerifier(rel(k), 'policy audit.trustedKeys'));
  if (auditSigner) {
    const own = auditSigner.verifier();
    if (!auditVerifiers.some((v) => v.keyId === own.keyId)) auditVerifiers.push(own);
  }
  return { requireSignature, trustedKeys, scan, scanFailOn, checkpointEvery, auditSigner, auditVerifiers, source };
}
