import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ERROR_CODES, BulwarkError, renderErrorTable } from '../../src/core/errors.js';
import { repoRoot } from '../helpers.js';

test('docs/ERRORS.md lists exactly the registered error codes (regenerate with node tools/write-error-docs.mjs)', () => {
  const doc = fs.readFileSync(path.join(repoRoot, 'docs', 'ERRORS.md'), 'utf8');
  assert.ok(doc.includes(renderErrorTable()), 'docs/ERRORS.md is out of date');
  const documented = [...doc.matchAll(/`(BULWARK_E_[A-Z0-9_]+)`/g)].map((m) => m[1]);
  assert.deepEqual([...new Set(documented)].sort(), Object.keys(ERROR_CODES).sort());
});

test('every user error maps to exit code 1 or 2 and an HTTP status of 4xx or 5xx, with a hint', () => {
  for (const [code, spec] of Object.entries(ERROR_CODES)) {
    if (code === 'BULWARK_E_INTERNAL') continue;
    assert.ok(spec.exit === 1 || spec.exit === 2, code);
    assert.ok(spec.status >= 400 && spec.status < 600, code);
    assert.ok(spec.hint.length > 10, code);
  }
  const e = new BulwarkError('BULWARK_E_SHAPE', 'input has shape [3]');
  assert.equal(e.exitCode, 2);
  assert.equal(e.toJSON().code, 'BULWARK_E_SHAPE');
});
