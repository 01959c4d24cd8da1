import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { BulwarkError } from './errors.js';

/**
 * Reads a whole file, mapping a missing or unreadable path to a BulwarkError that names the argument.
 * @param file the path
 * @param what what the file is, for messages (e.g. "--model")
 * @param maxBytes refuse files larger than this (BULWARK_E_LIMIT)
 */
export function readFileChecked(file: string, what: string, maxBytes = 8 * 1024 ** 3): Buffer {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    throw new BulwarkError('BULWARK_E_FILE_NOT_FOUND', `${what}: no such file: ${file}`);
  }
  if (!st.isFile()) throw new BulwarkError('BULWARK_E_FILE_READ', `${what}: not a regular file: ${file}`);
  if (st.size > maxBytes) {
    throw new BulwarkError('BULWARK_E_LIMIT', `${what}: ${file} is ${st.size} bytes, over the limit of ${maxBytes}`);
  }
  try {
    return fs.readFileSync(file);
  } catch (e) {
    throw new BulwarkError('BULWARK_E_FILE_READ', `${what}: cannot read ${file}: ${(e as Error).message}`);
  }
}

/**
 * Writes a file atomically: the bytes go to a temporary file in the same folder, are fsynced, and the temporary
 * file is renamed over the target, so a reader sees the old file or the new one, never a half-written one.
 * @param what what the file is, for messages (e.g. "--out")
 * @throws BulwarkError BULWARK_E_FILE_WRITE when the target is a folder or the folder cannot be created or written
 */
export function writeFileAtomic(file: string, data: Uint8Array | string, what = 'output file'): void {
  try {
    writeAtomic(file, data);
  } catch (e) {
    if (e instanceof BulwarkError) throw e;
    throw new BulwarkError('BULWARK_E_FILE_WRITE', `${what}: cannot write ${file}: ${(e as Error).message}`);
  }
}

/**
 * Creates a folder and its missing parents one level at a time (mkdir without `recursive`): Node's recursive mkdir
 * never returns for some paths (a missing folder under /proc spins forever), while a single mkdir fails at once.
 * @throws Error (a Node error) when a level cannot be created or a parent is not a folder
 */
export function makeDirs(dir: string): void {
  const missing: string[] = [];
  let d = path.resolve(dir);
  for (;;) {
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(d);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw e;
    }
    if (st) {
      if (!st.isDirectory()) throw new Error(`${d} is not a folder`);
      break;
    }
    missing.push(d);
    const parent = path.dirname(d);
    if (parent === d) break;
    d = parent;
  }
  for (const m of missing.reverse()) {
    try {
      fs.mkdirSync(m);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || !fs.statSync(m).isDirectory()) throw e;
    }
  }
}

function writeAtomic(file: string, data: Uint8Array | string): void {
  const dir = path.dirname(path.resolve(file));
  makeDirs(dir);
  if (fs.existsSync(file) && fs.statSync(file).isDirectory()) throw new Error('it is a folder');
  const tmp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = fs.openSync(tmp, 'wx', 0o644);
  try {
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  try {
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  try {
    const dfd = fs.openSync(dir, 'r');
    fs.fsyncSync(dfd);
    fs.closeSync(dfd);
  } catch {
    // Some filesystems refuse fsync on a directory; the rename is still atomic.
  }
}

/**
 * Resolves `rel` inside `root`, refusing absolute paths, `..` escapes and symbolic links that lead out.
 * @throws BulwarkError BULWARK_E_PATH_ESCAPE
 */
export function confinedPath(root: string, rel: string, what: string): string {
  if (rel.length === 0 || rel.includes('\0')) throw new BulwarkError('BULWARK_E_PATH_ESCAPE', `${what}: empty or NUL-containing path`);
  if (path.isAbsolute(rel) || /^[a-zA-Z]:[\\/]/.test(rel)) {
    throw new BulwarkError('BULWARK_E_PATH_ESCAPE', `${what}: absolute path ${JSON.stringify(rel)} is refused`);
  }
  const rootReal = fs.realpathSync(root);
  const candidate = path.resolve(rootReal, rel);
  if (!isInside(rootReal, candidate)) {
    throw new BulwarkError('BULWARK_E_PATH_ESCAPE', `${what}: ${JSON.stringify(rel)} leaves the folder ${rootReal}`);
  }
  if (fs.existsSync(candidate)) {
    const real = fs.realpathSync(candidate);
    if (!isInside(rootReal, real)) {
      throw new BulwarkError('BULWARK_E_PATH_ESCAPE', `${what}: ${JSON.stringify(rel)} is a link that leaves the folder ${rootReal}`);
    }
  }
  return candidate;
}

function isInside(root: string, p: string): boolean {
  const r = path.relative(root, p);
  return r === '' || (!r.startsWith('..') && !path.isAbsolute(r));
}
