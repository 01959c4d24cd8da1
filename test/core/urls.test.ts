import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { redactUrl, urlScheme } from '../../src/core/urls.js';
import { repoRoot, assertUserError } from '../helpers.js';

test('urlScheme tells URLs from file names with a colon', () => {
  for (const [s, want] of [
    ['http://h:8080/v2/models/m', 'http'],
    ['HTTPS://h/v2/models/m', 'https'],
    ['ftp://admin:pw@h/m.onnx', 'ftp'],
    ['file:///etc/passwd', 'file'],
    ['file:m.onnx', 'file'],
    ['http:foo', 'http'],
    ['s3://bucket/m.onnx', 's3'],
    ['ckpt:best.onnx', undefined],
    ['model-2024-01-01T10:00.onnx', undefined],
    ['C:\\models\\m.onnx', undefined],
    ['models/m.onnx', undefined],
    ['/abs/m.onnx', undefined],
  ] as const) assert.equal(urlScheme(s), want, s);
});

test('redactUrl hides credentials, queries and fragments and leaves file paths alone', () => {
  assert.equal(redactUrl('http://admin:s3cret@h:8080/v2/models/m'), 'http://***@h:8080/v2/models/m');
  assert.equal(redactUrl('https://TOKEN@h/v2/models/m'), 'https://***@h/v2/models/m');
  assert.equal(redactUrl('postgres://bulwark:pw@127.0.0.1:5432/test?sslmode=disable'), 'postgres://***@127.0.0.1:5432/test?…');
  assert.equal(redactUrl('https://h/v2/models/m?token=x#y'), 'https://h/v2/models/m?…#…');
  assert.equal(redactUrl('http://h/v2/models/m'), 'http://h/v2/models/m');
  assert.equal(redactUrl('/data/me@host/registry.db'), '/data/me@host/registry.db');
  assert.equal(redactUrl('registry.db'), 'registry.db');
  assert.equal(redactUrl('http://us er:pw@bad host/x'), 'http://***@bad host/x');
});

test('a model file whose name holds a colon runs; URLs with credentials are refused without echoing them', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-colon-'));
  fs.copyFileSync(path.join(repoRoot, 'fixtures', 'models', 'mnist-cnn-small.onnx'), path.join(dir, 'ckpt:best.onnx'));
  const bin = path.join(repoRoot, 'bin', 'bulwark.js');
  const run = (...args: string[]) => {
    const r = spawnSync(process.execPath, [bin, ...args], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const ok = run('predict', '--model', 'ckpt:best.onnx', '--data', 'mnist:test[0:4]', '--out', 'p.npy');
  assert.equal(ok.code, 0, ok.stderr);
  assert.ok(fs.statSync(path.join(dir, 'p.npy')).size > 0);
  const secret = 's3cret-pw';
  for (const args of [
    ['evaluate', '--model', `http://admin:${secret}@127.0.0.1:9/v2/models/m`, '--data', 'mnist:test[0:4]', '--eps', '0.3'],
    ['attack', 'square', '--model', `ftp://admin:${secret}@127.0.0.1/m.onnx`, '--data', 'mnist:test[0:4]', '--eps', '0.3'],
    ['predict', '--model', `http://admin:${secret}@h/v2/models/m`, '--model', 'x.onnx', '--data', 'mnist:test[0:4]', '--out', 'q.npy'],
  ]) {
    const r = run(...args);
    assert.equal(r.code, 2, r.stderr);
    assert.doesNotMatch(r.stderr + r.stdout, new RegExp(secret), args.join(' '));
    assert.match(r.stderr, /\*\*\*@/);
  }
  // attack takes endpoints: an http URL without its slashes gets the endpoint's URL check, not "a local file"
  assertUserError(run('attack', 'square', '--model', 'http:foo', '--data', 'mnist:test[0:4]', '--eps', '0.3'), 'BULWARK_E_REMOTE_URL', /does not name a model/);
  assertUserError(run('extract', '--model', 'ckpt:best.onnx', '--budget', '10', '--strategy', 'random', '--out', 'c.onnx', '--timeout', '3'), 'BULWARK_E_USAGE', /--timeout applies to a remote model/);
});
