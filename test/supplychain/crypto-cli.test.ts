import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { HEADER_LAYOUT } from '../../src/supplychain/index.js';
import { runCli } from '../helpers.js';


let tmp: string;
let key: string;
let other: string;

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-cli-crypt-'));
  key = path.join(tmp, 'k');
  other = path.join(tmp, 'o');
  assert.equal((await runCli('keygen', '--out', key)).code, 0);
  assert.equal((await runCli('keygen', '--out', other)).code, 0);
});

after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('encrypt then decrypt round-trips; --json reports the chunks', async () => {
  const f = path.join(tmp, 'w.bin');
  const data = randomBytes(2 * 1024 * 1024 + 5);
  fs.writeFileSync(f, data);
  const e = await runCli('encrypt', f, '--key', `${key}.pub`, '--out', `${f}.enc`, '--json');
  assert.equal(e.code, 0, e.stderr);
  assert.equal(JSON.parse(e.stdout.trim())['chunks'], 3);
  const d = await runCli('decrypt', `${f}.enc`, '--key', key, '--out', `${f}.dec`);
  assert.equal(d.code, 0, d.stderr);
  assert.ok(fs.readFileSync(`${f}.dec`).equals(data));
  // Default names: <file>.enc and back.
  const g = path.join(tmp, 'g.bin');
  fs.writeFileSync(g, 'tiny');
  assert.equal((await runCli('encrypt', g, '--key', `${key}.pub`, '--chunk-size', '1024')).code, 0);
  fs.rmSync(g);
  assert.equal((await runCli('decrypt', `${g}.enc`, '--key', key)).code, 0);
  assert.equal(fs.readFileSync(g, 'utf8'), 'tiny');
});

test('tampering or the wrong key exits 1 with BULWARK_E_DECRYPT and writes nothing', async () => {
  const f = path.join(tmp, 't.bin');
  fs.writeFileSync(f, randomBytes(5000));
  assert.equal((await runCli('encrypt', f, '--key', `${key}.pub`, '--out', `${f}.enc`, '--chunk-size', '1024')).code, 0);
  const wrong = await runCli('decrypt', `${f}.enc`, '--key', other, '--out', `${f}.x`);
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /BULWARK_E_DECRYPT/);
  assert.equal(fs.existsSync(`${f}.x`), false);
  const b = fs.readFileSync(`${f}.enc`);
  b[HEADER_LAYOUT.length + 2000] ^= 0x10;
  fs.writeFileSync(`${f}.enc`, b);
  const bad = await runCli('decrypt', `${f}.enc`, '--key', key, '--out', `${f}.x`);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /chunk 1 failed authentication/);
  assert.equal(fs.existsSync(`${f}.x`), false);
});

test('usage and input errors exit 2', async () => {
  const f = path.join(tmp, 'u.bin');
  fs.writeFileSync(f, 'plain');
  assert.equal((await runCli('decrypt', f, '--key', key, '--out', `${f}.x`)).code, 2, 'not an encrypted file');
  assert.equal((await runCli('decrypt', f, '--key', key)).code, 2, '--out needed when the name has no .enc');
  assert.equal((await runCli('decrypt', `${f}`, '--key', `${key}.pub`, '--out', `${f}.x`)).code, 2, 'a public key cannot decrypt');
  assert.equal((await runCli('encrypt', f, '--key', `${key}.pub`, '--chunk-size', '7')).code, 2);
  assert.equal((await runCli('encrypt', path.join(tmp, 'missing'), '--key', `${key}.pub`)).code, 2);
  assert.equal((await runCli('encrypt', f)).code, 2);
});
