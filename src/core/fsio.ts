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
 * Walks up from `dir` to the nearest folder that exists: that folder (undefined when even the root is missing) and
 * the levels below it that do not exist, innermost first. A path under a file counts as missing up to the file.
 * @throws Error (a Node error) when an ancestor cannot be examined, or "<path> is not a folder" when the nearest
 *   existing ancestor is a file
 */
function nearestFolder(dir: string): { existing: string | undefined; missing: string[] } {
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
      return { existing: d, missing };
    }
    missing.push(d);
    const parent = path.dirname(d);
    if (parent === d) return { existing: undefined, missing };
    d = parent;
  }
}

/**
 * Creates a folder and its missing parents one level at a time (mkdir without `recursive`): Node's recursive mkdir
 * never returns for some paths (a missing folder under /proc spins forever), while a single mkdir fails at once.
 * @param created the folders made are pushed here as they are made (so a caller still learns them when a deeper
 *   level fails)
 * @returns `created`: the folders it made, outermost first
 * @throws Error (a Node error) when a level cannot be created or a parent is not a folder
 */
export function makeDirs(dir: string, created: string[] = []): string[] {
  const { missing } = nearestFolder(dir);
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
 * Why an existing path cannot be replaced by an output file, or undefined when it can (it is missing or a regular
 * file). A rename over a device, FIFO or socket would silently turn /dev/null or a pipe into a regular file.
 */
export function unreplaceableReason(file: string): string | undefined {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    return undefined;
  }
  if (st.isFile()) return undefined;
  if (st.isDirectory()) return 'it is a folder';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'it is a device, not a regular file';
  if (st.isFIFO()) return 'it is a FIFO (named pipe), not a regular file';
  if (st.isSocket()) return 'it is a socket, not a regular file';
  return 'it is not a regular file';
}

/**
 * Why files could not be written into `dir`, or undefined when they can: the nearest existing level must be a
 * writable folder (the missing levels below it would be created); nothing is created.
 */
function folderUnwritableReason(dir: string): string | undefined {
  let existing: string | undefined;
  try {
    existing = nearestFolder(dir).existing;
  } catch (e) {
    return (e as Error).message;
  }
  if (existing === undefined) return undefined;
  try {
    fs.accessSync(existing, fs.constants.W_OK | fs.constants.X_OK);
  } catch {
    return `the folder ${existing} is not writable`;
  }
  return undefined;
}

/**
 * Checks, before any work, that `file` can later be written as an output: the target is missing or a regular file,
 * and its folder exists as a writable folder or can be created (only the first missing level's parent is checked
 * for write access; nothing is created).
 * @param what the flag, for messages (e.g. "--out")
 * @throws BulwarkError BULWARK_E_FILE_WRITE
 */
export function checkWritable(file: string, what: string): void {
  const fail = (why: string): never => {
    throw new BulwarkError('BULWARK_E_FILE_WRITE', `${what}: cannot write ${file}: ${why}`);
  };
  const reason = unreplaceableReason(file) ?? folderUnwritableReason(path.dirname(path.resolve(file)));
  if (reason) fail(reason);
}

/**
 * Checks, before any work, that `files` (names) can later be written into the folder `dir`: the folder exists as a
 * folder or can be created (the nearest existing level is a writable folder), and each file is missing or a regular
 * file. Nothing is created.
 * @param what the flag, for messages (e.g. "--out")
 * @throws BulwarkError BULWARK_E_FILE_WRITE
 */
export function checkWritableFolder(dir: string, files: string[], what: string): void {
  const fail = (why: string): never => {
    throw new BulwarkError('BULWARK_E_FILE_WRITE', `${what}: cannot write into ${dir}: ${why}`, { hint: `Give ${what} a folder (it is created if missing).` });
  };
  const reason = folderUnwritableReason(dir);
  if (reason) fail(reason);
  for (const f of files) {
    const reason = unreplaceableReason(path.join(dir, f));
    if (reason) fail(`${f} cannot be replaced: ${reason}`);
  }
}

/** A file's identity for comparisons: its real path, and device and inode when it exists. */
function fileIdentity(p: string): { real: string; dev?: number; ino?: number } {
  const abs = path.resolve(p);
  try {
    const st = fs.statSync(abs);
    return { real: fs.realpathSync(abs), dev: st.dev, ino: st.ino };
  } catch {
    // Missing: resolve the folder's links so dir-link/x and dir/x compare equal.
    try {
      return { real: path.join(fs.realpathSync(path.dirname(abs)), path.basename(abs)) };
    } catch {
      return { real: abs };
    }
  }
}

function sameFile(a: ReturnType<typeof fileIdentity>, b: ReturnType<typeof fileIdentity>): boolean {
  return a.real === b.real || (a.ino !== undefined && a.dev === b.dev && a.ino === b.ino);
}

/**
 * Refuses two outputs of one command that are the same file (`--out m.onnx --save-npz m.onnx`): the later write
 * would silently replace the earlier.
 * @param outputs [flag, path] of each output file
 * @throws BulwarkError BULWARK_E_ARG naming both flags
 */
export function refuseCollidingOutputs(outputs: [string, string][]): void {
  const ids = outputs.map(([, p]) => fileIdentity(p));
  for (let i = 0; i < outputs.length; i++) {
    for (let j = i + 1; j < outputs.length; j++) {
      if (sameFile(ids[i]!, ids[j]!)) {
        throw new BulwarkError('BULWARK_E_ARG', `${outputs[j]![0]} ${outputs[j]![1]} is the same file as ${outputs[i]![0]} ${outputs[i]![1]}; each output needs its own path`, {
          hint: 'Give the outputs different paths (the training record is always M.onnx.train.json beside --out M.onnx).',
        });
      }
    }
  }
}

/**
 * Refuses an output path that is one of the command's input files (the same path after links are resolved, or
 * the same device and inode), so `--out` can never replace the model or the data it was computed from.
 * @param outputs [flag, path] of each output file (companion files included)
 * @param inputs [flag, path] of each input file; undefined paths are skipped
 * @throws BulwarkError BULWARK_E_ARG naming both flags
 */
export function refuseOutputOverInput(outputs: [string, string][], inputs: [string, string | undefined][]): void {
  const ins = inputs.filter((i): i is [string, string] => typeof i[1] === 'string' && i[1].length > 0).map(([flag, p]) => ({ flag, p, id: fileIdentity(p) }));
  for (const [oflag, o] of outputs) {
    const oid = fileIdentity(o);
    for (const i of ins) {
      if (sameFile(oid, i.id)) {
        throw new BulwarkError('BULWARK_E_ARG', `${oflag} ${o} is the input file given by ${i.flag} (${i.p}); refusing to overwrite it`, {
          hint: 'Write the output to another path; an output never replaces one of the command\'s inputs.',
        });
      }
    }
  }
}

/** Removes folders a failed write made, innermost first; one that is no longer empty is left. */
export function removeEmptyDirs(created: string[]): void {
  for (const d of [...created].reverse()) {
    try {
      fs.rmdirSync(d);
    } catch {
      // not empty (something else wrote there meanwhile): leave it
    }
  }
}

/**
 * Writes a file atomically: the bytes go to a temporary file in the same folder, are fsynced, and the temporary
 * file is renamed over the target, so a reader sees the old file or the new one, never a half-written one.
 * @param what what the file is, for messages (e.g. "--out")
 * @throws BulwarkError BULWARK_E_FILE_WRITE when the target is a folder, a device, a FIFO or a socket, or the folder
 *   cannot be created or written
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
  refuseCollidingOutputs(files.map((f): [string, string] => [what, f.file]));
  const created: string[] = [];
  const temps: { tmp: string; file: string }[] = [];
  let current = files[0]?.file ?? '';
  try {
    for (const f of files) {
      current = f.file;
      const dir = path.dirname(path.resolve(f.file));
      makeDirs(dir, created);
      const reason = unreplaceableReason(f.file);
      if (reason) throw new Error(reason);
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
    removeEmptyDirs(created);
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
