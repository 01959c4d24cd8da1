import { pathToFileURL } from 'node:url';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { checkWritable, makeDirs, refuseOutputOverInput, writeFileAtomic, writeFilesAtomic } from '../../src/core/fsio.js';
import * as net from 'node:net';
import { spawnSync } from 'node:child_process';
import { AtomicFile } from '../../src/core/atomic.js';
import { refuseCollidingOutputs } from '../../src/core/fsio.js';
import { BulwarkError } from '../../src/core/errors.js';
import { repoRoot } from '../helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-fsio-'));

const leftovers = (dir: string) => fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'));

test('makeDirs creates missing levels, accepts an existing folder, refuses a file as a parent', () => {
  const deep = path.join(tmp, 'a', 'b', 'c');
  makeDirs(deep);
  assert.ok(fs.statSync(deep).isDirectory());
  makeDirs(deep);
  fs.writeFileSync(path.join(tmp, 'plain'), 'x');
  assert.throws(() => makeDirs(path.join(tmp, 'plain', 'sub')), /is not a folder/);
});

// If the bug returns this hangs; the timeout turns the hang into a failure.
test('writing under a missing folder of /proc fails at once (recursive mkdir never returns there)', () => {
  assert.ok(fs.existsSync('/proc/self'), 'this test needs Linux /proc');
  // In a child process with a time limit: a regression would spin inside a synchronous call, out of reach of timers.
  const src = `
    import { writeFileAtomic } from ${JSON.stringify(pathToFileURL(path.join(repoRoot, 'dist', 'src', 'core', 'fsio.js')).href)};
    import { AtomicFile } from ${JSON.stringify(pathToFileURL(path.join(repoRoot, 'dist', 'src', 'core', 'atomic.js')).href)};
    const codes = [];
    try { writeFileAtomic('/proc/bulwark-missing/x.npy', 'x', '--out'); } catch (e) { codes.push(e.code + ' ' + /--out/.test(e.message)); }
    try { await AtomicFile.create('/proc/bulwark-missing/deeper/x.npy', 0o644, '--out'); } catch (e) { codes.push(e.code); }
    console.log(JSON.stringify(codes));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', src], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.signal, null, 'the write did not return');
  assert.deepEqual(JSON.parse(r.stdout.trim()), ['BULWARK_E_FILE_WRITE true', 'BULWARK_E_FILE_WRITE']);
});

test('writeFileAtomic replaces a file whole, refuses a folder and leaves no temporary file', () => {
  const f = path.join(tmp, 'out', 'r.json');
  writeFileAtomic(f, 'old');
  writeFileAtomic(f, 'new');
  assert.equal(fs.readFileSync(f, 'utf8'), 'new');
  const dirTarget = path.join(tmp, 'out', 'folder');
  fs.mkdirSync(dirTarget);
  assert.throws(() => writeFileAtomic(dirTarget, 'x', '--out'), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_FILE_WRITE');
  assert.deepEqual(leftovers(path.join(tmp, 'out')), []);
});

test('AtomicFile: abort keeps the old target and removes the temporary file', async () => {
  const f = path.join(tmp, 'stream', 'big.bin');
  makeDirs(path.dirname(f));
  fs.writeFileSync(f, 'before');
  const a = await AtomicFile.create(f, 0o644, '--out');
  await a.write(new Uint8Array([1, 2, 3]));
  await a.abort();
  assert.equal(fs.readFileSync(f, 'utf8'), 'before');
  assert.deepEqual(fs.readdirSync(path.dirname(f)).filter((n) => n !== 'big.bin'), []);
});

test('writeFilesAtomic writes all files or none: a folder in the way of the last keeps the earlier ones as they were', () => {
  const dir = path.join(tmp, 'report');
  writeFilesAtomic([{ file: path.join(dir, 'report.json'), data: 'json 1' }, { file: path.join(dir, 'report.html'), data: 'html 1' }]);
  fs.mkdirSync(path.join(dir, 'report.sarif'));
  assert.throws(
    () => writeFilesAtomic([{ file: path.join(dir, 'report.json'), data: 'json 2' }, { file: path.join(dir, 'report.html'), data: 'html 2' }, { file: path.join(dir, 'report.sarif'), data: 'sarif 2' }], '--out'),
    (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_FILE_WRITE' && e.message.includes('report.sarif'),
  );
  assert.equal(fs.readFileSync(path.join(dir, 'report.json'), 'utf8'), 'json 1');
  assert.equal(fs.readFileSync(path.join(dir, 'report.html'), 'utf8'), 'html 1');
  assert.deepEqual(leftovers(dir), []);
  // a folder the call created is removed again when it fails
  const fresh = path.join(tmp, 'fresh', 'rep');
  assert.throws(() => writeFilesAtomic([{ file: path.join(fresh, 'a.json'), data: 'a' }, { file: path.join(tmp, 'plain', 'b.json'), data: 'b' }]), /b\.json/);
  assert.equal(fs.existsSync(path.join(tmp, 'fresh')), false);
});

test('an existing target that is a device, FIFO or socket is refused, never replaced by a regular file', async () => {
  const dir = fs.mkdtempSync(path.join(tmp, 'special-'));
  const targets: [string, RegExp][] = [];
  // A link to /dev/null: the target resolves to a character device.
  const dev = path.join(dir, 'null');
  fs.symlinkSync('/dev/null', dev);
  targets.push([dev, /device/]);
  const sock = path.join(dir, 'sock');
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(sock, resolve));
  targets.push([sock, /socket/]);
  const fifo = path.join(dir, 'fifo');
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0, 'mkfifo (coreutils) makes the FIFO');
  targets.push([fifo, /FIFO/]);
  try {
    for (const [t, re] of targets) {
      const before = fs.statSync(t);
      const isWriteErr = (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_FILE_WRITE' && re.test(e.message);
      assert.throws(() => writeFileAtomic(t, 'x', '--out'), isWriteErr, t);
      assert.throws(() => writeFilesAtomic([{ file: path.join(dir, 'ok.txt'), data: 'y' }, { file: t, data: 'x' }], '--out'), isWriteErr, t);
      await assert.rejects(AtomicFile.create(t, 0o644, '--out'), isWriteErr, t);
      assert.throws(() => checkWritable(t, '--out'), isWriteErr, t);
      const after = fs.statSync(t);
      assert.equal(after.isFile(), false, `${t} became a regular file`);
      assert.equal(after.ino, before.ino);
    }
    assert.equal(fs.existsSync(path.join(dir, 'ok.txt')), false, 'all or none');
    assert.deepEqual(leftovers(dir), []);
  } finally {
    server.close();
  }
});

test('checkWritable refuses a folder target and a file as a parent, and accepts a missing folder to create', () => {
  const dir = fs.mkdtempSync(path.join(tmp, 'cw-'));
  fs.mkdirSync(path.join(dir, 'm.onnx.train.json'));
  assert.throws(() => checkWritable(path.join(dir, 'm.onnx.train.json'), '--out'), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_FILE_WRITE' && /folder/.test(e.message));
  fs.writeFileSync(path.join(dir, 'plain'), 'x');
  assert.throws(() => checkWritable(path.join(dir, 'plain', 'x.npz'), '--save-npz'), (e: unknown) => e instanceof BulwarkError && /--save-npz: .*not a folder/.test(e.message));
  checkWritable(path.join(dir, 'new', 'deeper', 'm.onnx'), '--out');
  assert.equal(fs.existsSync(path.join(dir, 'new')), false, 'nothing is created');
});

test('an output that is one of the inputs is refused: same path, another spelling, a link, a hard link', () => {
  const dir = fs.mkdtempSync(path.join(tmp, 'same-'));
  const model = path.join(dir, 'victim.onnx');
  fs.writeFileSync(model, 'model');
  fs.symlinkSync(model, path.join(dir, 'link.onnx'));
  fs.linkSync(model, path.join(dir, 'hard.onnx'));
  fs.symlinkSync(dir, path.join(tmp, `dirlink-${path.basename(dir)}`));
  const spellings = [model, path.join(dir, '.', 'victim.onnx'), path.relative(process.cwd(), model), path.join(dir, 'link.onnx'), path.join(dir, 'hard.onnx'), path.join(tmp, `dirlink-${path.basename(dir)}`, 'victim.onnx')];
  for (const out of spellings) {
    assert.throws(() => refuseOutputOverInput([['--out', out]], [['--input', undefined], ['--model', model]]), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_ARG' && /--out .* is the input file given by --model/.test(e.message), out);
  }
  refuseOutputOverInput([['--out', path.join(dir, 'p.npy')]], [['--model', model]]);
  assert.equal(fs.readFileSync(model, 'utf8'), 'model');
});

test('two outputs that are one file are refused, and an aborted AtomicFile removes the folders it made', async () => {
  const dir = fs.mkdtempSync(path.join(tmp, 'collide-'));
  assert.throws(() => refuseCollidingOutputs([['--out', path.join(dir, 'm.onnx')], ['--save-npz', path.join(dir, '.', 'm.onnx')]]), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_ARG' && /--save-npz .* is the same file as --out/.test(e.message));
  refuseCollidingOutputs([['--out', path.join(dir, 'm.onnx')], ['--out', path.join(dir, 'm.onnx.train.json')]]);
  assert.throws(() => writeFilesAtomic([{ file: path.join(dir, 'a.txt'), data: '1' }, { file: path.join(dir, 'a.txt'), data: '2' }]), /same file/);
  assert.equal(fs.existsSync(path.join(dir, 'a.txt')), false);
  const a = await AtomicFile.create(path.join(dir, 'new', 'deeper', 'x.bin'), 0o644, '--out');
  await a.write(new Uint8Array([1]));
  await a.abort();
  assert.equal(fs.existsSync(path.join(dir, 'new')), false, 'the folders made for the aborted file are gone');
  const b = await AtomicFile.create(path.join(dir, 'kept', 'x.bin'), 0o644, '--out');
  await b.write(new Uint8Array([2]));
  await b.commit();
  await b.abort();
  assert.deepEqual([...fs.readFileSync(path.join(dir, 'kept', 'x.bin'))], [2], 'abort after commit keeps the file and its folder');
});
