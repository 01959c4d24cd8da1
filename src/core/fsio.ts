import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { BulwarkError } from './errors.js';
import { quote } from './quote.js';

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
 * Creates a folder and its missing parents one level at a time (mkdir without `recursive`): Node's recursive mkdir
 * never returns for some paths (a missing folder under /proc spins forever), while a single mkdir fails at once.
 * @returns the folders it created, outermost first
 * @throws Error (a Node error) when a level cannot be created or a parent is not a folder
 */
export function makeDirs(dir: string): string[] {
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
  const created: string[] = [];
  for (const m of missing.reverse()) {
    try {
      fs.mkdirSync(m);
      created.push(m);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || !fs.statSync(m).isDirectory()) throw e;
    }
  }
  return created;
}

/**
 * Writes a file atomically: the bytes go to a temporary file in the same folder, are fsynced, and the temporary
 * file is renamed over the target, so a reader sees the old file or the new one, never a half-written one.
 * @param what what the file is, for messages (e.g. "--out")
 * @throws BulwarkError BULWARK_E_FILE_WRITE when the target is a folder or the folder cannot be created or written
 */
export function writeFileAtomic(file: string, data: Uint8Array | string, what = 'output file'): void {
  writeFilesAtomic([{ file, data }], what);
}

/**
 * Writes several files as one: every file is written to a temporary file beside its target and fsynced first, and
 * only when all are written are they renamed over their targets. A failure before that point (a full disk, a target
 * that is a folder) leaves every target as it was, removes the temporary files and the folders this call created.
 * @param what what the files are, for messages (e.g. "--out")
 * @throws BulwarkError BULWARK_E_FILE_WRITE
 */
export function writeFilesAtomic(files: { file: string; data: Uint8Array | string }[], what = 'output file'): void {
  const created: string[] = [];
  const temps: { tmp: string; file: string }[] = [];
  let current = files[0]?.file ?? '';
  try {
    for (const f of files) {
      current = f.file;
      const dir = path.dirname(path.resolve(f.file));
      created.push(...makeDirs(dir));
      if (fs.existsSync(f.file) && fs.statSync(f.file).isDirectory()) throw new Error('it is a folder');
      const tmp = path.join(dir, `.${path.basename(f.file)}.${randomBytes(6).toString('hex')}.tmp`);
      const fd = fs.openSync(tmp, 'wx', 0o644);
      temps.push({ tmp, file: f.file });
      try {
        fs.writeFileSync(fd, f.data);
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    }
  } catch (e) {
    for (const t of temps) fs.rmSync(t.tmp, { force: true });
    for (const d of created.reverse()) {
      try {
        fs.rmdirSync(d);
      } catch {
        // not empty (something else wrote there meanwhile): leave it
      }
    }
    throw new BulwarkError('BULWARK_E_FILE_WRITE', `${what}: cannot write ${current}: ${(e as Error).message}`);
  }
  for (let i = 0; i < temps.length; i++) {
    try {
      fs.renameSync(temps[i]!.tmp, temps[i]!.file);
    } catch (e) {
      for (const t of temps.slice(i)) fs.rmSync(t.tmp, { force: true });
      throw new BulwarkError('BULWARK_E_FILE_WRITE', `${what}: cannot write ${temps[i]!.file}: ${(e as Error).message}`);
    }
  }
  for (const dir of new Set(temps.map((t) => path.dirname(path.resolve(t.file))))) {
    try {
      const dfd = fs.openSync(dir, 'r');
      fs.fsyncSync(dfd);
      fs.closeSync(dfd);
    } catch {
      // Some filesystems refuse fsync on a directory; the rename is still atomic.
    }
  }
}

/**
 * Resolves `rel` inside `root`, refusing absolute paths, `..` escapes and symbolic links that lead out.
 * @throws BulwarkError BULWARK_E_PATH_ESCAPE
 */
export function confinedPath(root: string, rel: string, what: string): string {
  if (rel.length === 0 || rel.includes('\0')) throw new BulwarkError('BULWARK_E_PATH_ESCAPE', `${what}: empty or NUL-containing path`);
  if (path.isAbsolute(rel) || /^[a-zA-Z]:[\\/]/.test(rel)) {
    throw new BulwarkError('BULWARK_E_PATH_ESCAPE', `${what}: absolute path ${quote(rel)} is refused`);
  }
  const rootReal = fs.realpathSync(root);
  const candidate = path.resolve(rootReal, rel);
  if (!isInside(rootReal, candidate)) {
    throw new BulwarkError('BULWARK_E_PATH_ESCAPE', `${what}: ${quote(rel)} leaves the folder ${rootReal}`);
  }
  if (fs.existsSync(candidate)) {
    const real = fs.realpathSync(candidate);
    if (!isInside(rootReal, real)) {
      throw new BulwarkError('BULWARK_E_PATH_ESCAPE', `${what}: ${quote(rel)} is a link that leaves the folder ${rootReal}`);
    }
  }
  return candidate;
}

function isInside(root: string, p: string): boolean {
  const r = path.relative(root, p);
  return r === '' || (!r.startsWith('..') && !path.isAbsolute(r));
}
