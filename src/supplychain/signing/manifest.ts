/**
 * The model manifest: a confined walk of a model file or folder, streaming SHA-256 of every file, and the
 * OpenSSF Model Signing in-toto statement (predicate `https://model_signing/signature/v1.0`) built from it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { BulwarkError } from '../../core/errors.js';
import { constantTimeEqual, isHex } from '../crypto/encoding.js';

/** in-toto Statement v1. */
export const STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
/** OpenSSF Model Signing predicate, v1.0. */
export const PREDICATE_TYPE = 'https://model_signing/signature/v1.0';
/** Bytes read per hashing step (two buffers of this size are in flight). */
export const HASH_CHUNK_BYTES = 4 * 1024 * 1024;
/** Most files a model folder may hold. */
export const MAX_FILES = 1_000_000;
/** The default signature file name inside a signed folder. */
export const FOLDER_SIGNATURE_NAME = 'model.sig';

/** One file of the manifest (an in-toto ResourceDescriptor, as the OpenSSF predicate writes it). */
export interface Resource {
  /** Relative POSIX path inside the model folder (the file name for a single-file model). */
  name: string;
  algorithm: 'sha256';
  /** Lowercase hex digest. */
  digest: string;
}

/** How the model was turned into resources (recorded in the signed predicate). */
export interface Serialization {
  method: 'files';
  hash_type: 'sha256';
  allow_symlinks: false;
  /** Relative POSIX paths excluded from the hashed set (the signature file when it lies inside the folder). */
  ignore_paths: string[];
}

/** The signed payload: an in-toto Statement v1 with the OpenSSF Model Signing predicate. */
export interface ModelStatement {
  _type: typeof STATEMENT_TYPE;
  subject: [{ name: string; digest: { sha256: string } }];
  predicateType: typeof PREDICATE_TYPE;
  predicate: { serialization: Serialization; resources: Resource[] };
}

/** A file found on disk and its digest. */
export interface HashedFile {
  name: string;
  digest: string;
  size: number;
}

/** An entry the walk refused (symbolic links and special files are never followed or hashed). */
export interface RefusedEntry {
  name: string;
  kind: 'symlink' | 'special';
}

/** The hashed content of a model path. */
export interface ModelDigest {
  kind: 'file' | 'folder';
  /** The model's name: the base name of the path (the statement's subject name). */
  name: string;
  /** Files sorted by name (UTF-8 byte order). */
  files: HashedFile[];
  refused: RefusedEntry[];
  /** Total bytes hashed. */
  bytes: number;
}

/** Options of {@link hashModel}. */
export interface HashOptions {
  /** Relative POSIX paths to leave out (exact file paths). */
  ignore?: Iterable<string>;
  /** Throw (true, used when signing) or report (false, used when verifying) on a symlink or special file. */
  refuseLinks?: boolean;
  /** Called while hashing with bytes done and bytes total. */
  onProgress?: (done: number, total: number) => void;
}

/** Sorts names by their UTF-8 bytes (the same order as code points; what Python's sorted() gives). */
export function compareNames(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** True for a relative POSIX path with no empty, `.` or `..` segment and no NUL. */
export function isSafeRelativeName(n: unknown): n is string {
  if (typeof n !== 'string' || n.length === 0 || n.length > 4096 || n.includes('\0') || n.startsWith('/')) return false;
  return n.split('/').every((seg) => seg !== '' && seg !== '.' && seg !== '..');
}

function isInside(root: string, p: string): boolean {
  const r = path.relative(root, p);
  return r === '' || (!r.startsWith('..' + path.sep) && r !== '..' && !path.isAbsolute(r));
}

const O_NOFOLLOW = fs.constants.O_NOFOLLOW ?? 0;
const O_NONBLOCK = fs.constants.O_NONBLOCK ?? 0;

/**
 * SHA-256 of one file, read in chunks (double-buffered: the next read runs while the current chunk is hashed),
 * so memory use is constant whatever the file size. The file is opened without following a final symlink and
 * must be the same inode the walk saw.
 */
async function hashOne(abs: string, expect: fs.Stats | null, onBytes: (n: number) => void): Promise<{ digest: Buffer; size: number }> {
  let fh: fs.promises.FileHandle;
  try {
    fh = await fs.promises.open(abs, fs.constants.O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw new BulwarkError('BULWARK_E_PATH_ESCAPE', `${abs} is a symbolic link; links are refused`);
    throw new BulwarkError('BULWARK_E_FILE_READ', `cannot open ${abs}: ${(e as Error).message}`);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new BulwarkError('BULWARK_E_FILE_READ', `${abs} is not a regular file`);
    if (expect && (st.ino !== expect.ino || st.dev !== expect.dev)) {
      throw new BulwarkError('BULWARK_E_PATH_ESCAPE', `${abs} changed while the folder was being read`, { hint: 'Do not modify a model folder while it is signed or verified.' });
    }
    const h = createHash('sha256');
    let bufs = [Buffer.allocUnsafe(HASH_CHUNK_BYTES), Buffer.allocUnsafe(HASH_CHUNK_BYTES)];
    let size = 0;
    let pending = fh.read(bufs[0]!, 0, HASH_CHUNK_BYTES, null);
    for (;;) {
      const { bytesRead, buffer } = await pending;
      if (bytesRead === 0) break;
      bufs = [bufs[1]!, bufs[0]!];
      pending = fh.read(bufs[0]!, 0, HASH_CHUNK_BYTES, null);
      h.update(buffer.subarray(0, bytesRead));
      size += bytesRead;
      onBytes(bytesRead);
    }
    return { digest: h.digest(), size };
  } finally {
    await fh.close().catch(() => undefined);
  }
}

interface Found {
  name: string;
  abs: string;
  st: fs.Stats;
}

/** Lists the regular files under `rootReal`, confined: links and special files are refused, nothing is followed. */
async function walk(rootReal: string, ignore: Set<string>, refused: RefusedEntry[], refuseLinks: boolean): Promise<Found[]> {
  const out: Found[] = [];
  const stack: string[] = [''];
  while (stack.length > 0) {
    const rel = stack.pop()!;
    const dirAbs = rel === '' ? rootReal : path.join(rootReal, ...rel.split('/'));
    let names: string[];
    try {
      names = await fs.promises.readdir(dirAbs);
    } catch (e) {
      throw new BulwarkError('BULWARK_E_FILE_READ', `cannot list ${dirAbs}: ${(e as Error).message}`);
    }
    for (const n of names) {
      const childRel = rel === '' ? n : `${rel}/${n}`;
      if (ignore.has(childRel)) continue;
      const abs = path.join(dirAbs, n);
      let st: fs.Stats;
      try {
        st = await fs.promises.lstat(abs);
      } catch (e) {
        throw new BulwarkError('BULWARK_E_FILE_READ', `cannot read ${abs}: ${(e as Error).message}`, { hint: 'Do not modify a model folder while it is signed or verified.' });
      }
      if (st.isSymbolicLink() || !(st.isFile() || st.isDirectory())) {
        const kind = st.isSymbolicLink() ? 'symlink' : 'special';
        if (refuseLinks) {
          throw new BulwarkError('BULWARK_E_PATH_ESCAPE', `${childRel} in ${rootReal} is a ${kind === 'symlink' ? 'symbolic link' : 'special file'}; it is refused`, {
            hint: 'Replace links by the files they point to (cp -L) and remove sockets/FIFOs/devices before signing.',
          });
        }
        refused.push({ name: childRel, kind });
        continue;
      }
      if (st.isDirectory()) {
        stack.push(childRel);
        continue;
      }
      out.push({ name: childRel, abs, st });
      if (out.length > MAX_FILES) throw new BulwarkError('BULWARK_E_LIMIT', `${rootReal} holds more than ${MAX_FILES} files`);
    }
  }
  return out;
}

/**
 * Hashes a model file or folder. A folder is walked recursively and confined to itself; symlinks and special
 * files are refused (thrown when `refuseLinks`, else returned in `refused`). Files are hashed one at a time in
 * chunks, so a 500 MB file never sits in memory.
 * @throws BulwarkError BULWARK_E_FILE_NOT_FOUND, BULWARK_E_FILE_READ, BULWARK_E_PATH_ESCAPE, BULWARK_E_LIMIT
 */
export async function hashModel(modelPath: string, options: HashOptions = {}): Promise<ModelDigest> {
  let rootReal: string;
  try {
    rootReal = await fs.promises.realpath(modelPath);
  } catch {
    throw new BulwarkError('BULWARK_E_FILE_NOT_FOUND', `model: no such file or folder: ${modelPath}`);
  }
  const rootSt = await fs.promises.stat(rootReal);
  const refused: RefusedEntry[] = [];
  const name = path.basename(path.resolve(modelPath));
  let found: Found[];
  let kind: 'file' | 'folder';
  if (rootSt.isFile()) {
    kind = 'file';
    found = [{ name, abs: rootReal, st: rootSt }];
  } else if (rootSt.isDirectory()) {
    kind = 'folder';
    found = await walk(rootReal, new Set(options.ignore ?? []), refused, options.refuseLinks ?? false);
  } else {
    throw new BulwarkError('BULWARK_E_FILE_READ', `model: ${modelPath} is neither a regular file nor a folder`);
  }
  found.sort((a, b) => compareNames(a.name, b.name));
  const total = found.reduce((s, f) => s + f.st.size, 0);
  let done = 0;
  const files: HashedFile[] = [];
  for (const f of found) {
    const { digest, size } = await hashOne(f.abs, f.st, (n) => {
      done += n;
      options.onProgress?.(done, total);
    });
    if (kind === 'folder') {
      // The walk is confined by construction (no link is followed); check once more that no folder on the way
      // was swapped for a link while we were reading.
      const real = await fs.promises.realpath(f.abs);
      if (!isInside(rootReal, real)) throw new BulwarkError('BULWARK_E_PATH_ESCAPE', `${f.name} resolves outside ${rootReal}`);
    }
    files.push({ name: f.name, digest: digest.toString('hex'), size });
  }
  return { kind, name, files, refused, bytes: done };
}

/** SHA-256 over the concatenated raw digests, in resource order: the subject digest of the statement. */
export function rootDigest(resources: readonly { digest: string }[]): string {
  const h = createHash('sha256');
  for (const r of resources) h.update(Buffer.from(r.digest, 'hex'));
  return h.digest('hex');
}

/** Builds the in-toto statement for a hashed model. */
export function buildStatement(model: ModelDigest, ignorePaths: string[]): ModelStatement {
  const resources: Resource[] = model.files.map((f) => ({ name: f.name, algorithm: 'sha256', digest: f.digest }));
  return {
    _type: STATEMENT_TYPE,
    subject: [{ name: model.name, digest: { sha256: rootDigest(resources) } }],
    predicateType: PREDICATE_TYPE,
    predicate: {
      serialization: { method: 'files', hash_type: 'sha256', allow_symlinks: false, ignore_paths: [...ignorePaths].sort(compareNames) },
      resources,
    },
  };
}

/**
 * Parses and checks a signed statement: types, the serialization method, resource names (relative POSIX, no
 * `..`), sorted unique names, digest syntax, and that the subject digest matches the resources.
 * @returns the statement, or an error message
 */
export function parseStatement(payload: Uint8Array): { statement: ModelStatement } | { error: string } {
  let j: unknown;
  try {
    j = JSON.parse(Buffer.from(payload).toString('utf8'));
  } catch {
    return { error: 'the payload is not JSON' };
  }
  if (typeof j !== 'object' || j === null) return { error: 'the payload is not a JSON object' };
  const o = j as Record<string, unknown>;
  if (o['_type'] !== STATEMENT_TYPE) return { error: `the payload _type is not ${STATEMENT_TYPE}` };
  if (o['predicateType'] !== PREDICATE_TYPE) return { error: `the predicateType is not ${PREDICATE_TYPE}` };
  const subj = o['subject'];
  if (!Array.isArray(subj) || subj.length !== 1) return { error: 'the statement must have exactly one subject' };
  const s0 = subj[0] as Record<string, unknown> | null;
  const sd = s0 && typeof s0 === 'object' ? (s0['digest'] as Record<string, unknown> | undefined) : undefined;
  if (!s0 || typeof s0['name'] !== 'string' || !sd || !isHex(sd['sha256'], 32)) return { error: 'the subject must have a name and a sha256 digest' };
  const pred = o['predicate'] as Record<string, unknown> | null;
  if (!pred || typeof pred !== 'object') return { error: 'the statement has no predicate' };
  const ser = pred['serialization'] as Record<string, unknown> | null;
  if (!ser || typeof ser !== 'object' || ser['method'] !== 'files' || ser['hash_type'] !== 'sha256') {
    return { error: 'unsupported serialization (Bulwark verifies method "files" with hash_type "sha256")' };
  }
  if (ser['allow_symlinks'] !== undefined && ser['allow_symlinks'] !== false) return { error: 'the signature allows symlinks, which Bulwark refuses' };
  const ign = ser['ignore_paths'] ?? [];
  if (!Array.isArray(ign) || !ign.every(isSafeRelativeName)) return { error: 'serialization.ignore_paths must be relative POSIX paths' };
  const res = pred['resources'];
  if (!Array.isArray(res)) return { error: 'the predicate has no resources list' };
  const resources: Resource[] = [];
  for (const [i, r] of res.entries()) {
    const ro = r as Record<string, unknown> | null;
    if (!ro || typeof ro !== 'object') return { error: `resources[${i}] is not an object` };
    if (!isSafeRelativeName(ro['name'])) return { error: `resources[${i}].name ${JSON.stringify(ro['name'])} is not a safe relative POSIX path` };
    if (ro['algorithm'] !== 'sha256') return { error: `resources[${i}].algorithm must be sha256` };
    if (!isHex(ro['digest'], 32)) return { error: `resources[${i}].digest must be 64 lowercase hex characters` };
    if (i > 0 && compareNames(resources[i - 1]!.name, ro['name']) >= 0) return { error: `resources are not sorted by name or hold a duplicate (${ro['name']})` };
    resources.push({ name: ro['name'], algorithm: 'sha256', digest: ro['digest'] });
  }
  const root = rootDigest(resources);
  if (!constantTimeEqual(Buffer.from(root, 'hex'), Buffer.from(sd['sha256'] as string, 'hex'))) {
    return { error: 'the subject digest does not match the resources (the manifest is inconsistent)' };
  }
  const statement: ModelStatement = {
    _type: STATEMENT_TYPE,
    subject: [{ name: s0['name'], digest: { sha256: sd['sha256'] as string } }],
    predicateType: PREDICATE_TYPE,
    predicate: { serialization: { method: 'files', hash_type: 'sha256', allow_symlinks: false, ignore_paths: ign as string[] }, resources },
  };
  return { statement };
}
