import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { makeDirs, writeFileAtomic, writeFilesAtomic } from '../../src/core/fsio.js';
import { AtomicFile } from '../../src/core/atomic.js';
import { BulwarkError } from '../../src/core/errors.js';

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

test('writing under a missing folder of /proc fails at once (recursive mkdir never returns there)', async () => {
  assert.ok(fs.existsSync('/proc/self'), 'this test needs Linux /proc');
  const t0 = Date.now();
  assert.throws(() => writeFileAtomic('/proc/bulwark-missing/x.npy', 'x', '--out'), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_FILE_WRITE' && /--out/.test(e.message));
  await assert.rejects(AtomicFile.create('/proc/bulwark-missing/deeper/x.npy', 0o644, '--out'), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_FILE_WRITE');
  assert.ok(Date.now() - t0 < 10_000);
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
