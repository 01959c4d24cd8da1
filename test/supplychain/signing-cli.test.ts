import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runCli, lastJson } from '../helpers.js';



let tmp: string;
let key: string;
let other: string;

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-cli-sign-'));
  key = path.join(tmp, 'keys', 'k');
  other = path.join(tmp, 'keys', 'other');
  assert.equal((await runCli('keygen', '--out', key)).code, 0);
  assert.equal((await runCli('keygen', '--out', other, '--json')).code, 0);
});

after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('bulwark keygen', () => {
  test('writes KEY (0600) and KEY.pub; refuses to overwrite without --force', async () => {
    if (process.platform !== 'win32') assert.equal(fs.statSync(key).mode & 0o777, 0o600);
    const pub = JSON.parse(fs.readFileSync(`${key}.pub`, 'utf8'));
    assert.equal(pub.kind, 'public');
    assert.equal(JSON.parse(fs.readFileSync(key, 'utf8')).kind, 'private');
    const again = await runCli('keygen', '--out', key);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /already exists/);
    const k2 = path.join(tmp, 'keys', 'k2');
    const r = await runCli('keygen', '--out', k2, '--json');
    assert.equal(r.code, 0);
    const j = lastJson(r.stdout);
    assert.match(j['signingKeyId'], /^[0-9a-f]{64}$/);
    assert.ok(!r.stdout.includes('PRIVATE'));
    assert.equal((await runCli('keygen', '--out', k2, '--force')).code, 0);
  });

  test('usage errors exit 2', async () => {
    assert.equal((await runCli('keygen')).code, 2);
    assert.equal((await runCli('keygen', '--out', path.join(tmp, 'x'), '--bogus')).code, 2);
    assert.equal((await runCli('keygen', '--help')).code, 0);
  });
});

describe('bulwark sign / verify', () => {
  function model(): string {
    const root = fs.mkdtempSync(path.join(tmp, 'model-'));
    fs.mkdirSync(path.join(root, 'sub'));
    fs.writeFileSync(path.join(root, 'model.onnx'), 'graph');
    fs.writeFileSync(path.join(root, 'sub', 'weights.bin'), Buffer.alloc(2048, 3));
    return root;
  }

  test('sign then verify exits 0; a change exits 1 and names the file', async () => {
    const root = model();
    const s = await runCli('sign', root, '--key', key, '--json');
    assert.equal(s.code, 0, s.stderr);
    const sj = lastJson(s.stdout);
    assert.equal(sj['signature'], path.join(root, 'model.sig'));
    assert.equal(sj['files'], 2);
    assert.ok(fs.existsSync(path.join(root, 'model.sig')));

    const v = await runCli('verify', root, '--key', `${key}.pub`);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    assert.match(v.stdout, /^VALID/);

    fs.appendFileSync(path.join(root, 'sub', 'weights.bin'), 'x');
    const bad = await runCli('verify', root, '--key', `${key}.pub`, '--json');
    assert.equal(bad.code, 1);
    const j = lastJson(bad.stdout);
    assert.equal(j['valid'], false);
    assert.deepEqual(
      j['files'].filter((f: { status: string }) => f.status !== 'ok').map((f: { name: string; status: string }) => [f.name, f.status]),
      [['sub/weights.bin', 'modified']],
    );
    const human = await runCli('verify', root, '--key', `${key}.pub`);
    assert.equal(human.code, 1);
    assert.match(human.stdout, /INVALID/);
    assert.match(human.stdout, /modified\s+sub\/weights\.bin/);
  });

  test('a single file with --out and --sig', async () => {
    const root = model();
    const f = path.join(root, 'model.onnx');
    const sig = path.join(tmp, 'single.sig');
    assert.equal((await runCli('sign', f, '--key', key, '--out', sig)).code, 0);
    assert.equal((await runCli('verify', f, '--key', `${key}.pub`, '--sig', sig)).code, 0);
    assert.equal((await runCli('verify', f, '--key', `${other}.pub`, '--sig', sig)).code, 1);
  });

  test('verify with another key exits 1; the private key file also verifies', async () => {
    const root = model();
    assert.equal((await runCli('sign', root, '--key', key)).code, 0);
    const r = await runCli('verify', root, '--key', `${other}.pub`, '--json');
    assert.equal(r.code, 1);
    assert.deepEqual(lastJson(r.stdout)['signatures'], { ed25519: 'missing', mlDsa65: 'missing' });
    assert.equal((await runCli('verify', root, '--key', key)).code, 0);
  });

  test('input and usage errors exit 2', async () => {
    const root = model();
    assert.equal((await runCli('verify', root, '--key', `${key}.pub`)).code, 2, 'no signature yet');
    assert.equal((await runCli('sign', root, '--key', `${key}.pub`)).code, 2, 'a public key cannot sign');
    assert.equal((await runCli('sign', root)).code, 2, '--key is required');
    assert.equal((await runCli('sign', '--key', key)).code, 2, 'the model is required');
    assert.equal((await runCli('sign', root, root, '--key', key)).code, 2, 'one model only');
    assert.equal((await runCli('verify', path.join(tmp, 'nope'), '--key', `${key}.pub`)).code, 2);
    fs.writeFileSync(path.join(root, 'model.sig'), 'garbage');
    const g = await runCli('verify', root, '--key', `${key}.pub`);
    assert.equal(g.code, 2);
    assert.match(g.stderr, /BULWARK_E_SIG_FORMAT/);
    assert.equal((await runCli('verify', root, '--key', path.join(tmp, 'nokey'))).code, 2);
  });

  test('a symlink in the folder: sign exits 2, verify exits 1', async () => {
    if (process.platform === 'win32') return;
    const root = model();
    fs.symlinkSync('/etc/hostname', path.join(root, 'link'));
    const s = await runCli('sign', root, '--key', key);
    assert.equal(s.code, 2);
    assert.match(s.stderr, /BULWARK_E_PATH_ESCAPE/);
    fs.rmSync(path.join(root, 'link'));
    assert.equal((await runCli('sign', root, '--key', key)).code, 0);
    fs.symlinkSync('/etc/hostname', path.join(root, 'link'));
    assert.equal((await runCli('verify', root, '--key', `${key}.pub`)).code, 1);
  });
});
