import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { renderSchema } from '../../src/evasion/options.js';
import { listAttacks } from '../../src/evasion/runner.js';
import { ATTACKS } from '../../src/cli/attack.js';
import '../../src/evasion/whitebox/index.js';
import { repoRoot } from '../helpers.js';

const doc = fs.readFileSync(path.join(repoRoot, 'docs', 'ATTACKS.md'), 'utf8');

test('docs/ATTACKS.md shows the current options and defaults of every white-box attack', () => {
  const names = listAttacks().filter((d) => d.whiteBox).map((d) => d.name);
  assert.ok(names.length >= 9, names.join(','));
  for (const name of names.filter((n) => n !== 'apgd' && n !== 'apgd-dlr')) {
    const d = listAttacks().find((a) => a.name === name)!;
    assert.ok(doc.includes(`<!-- options:${name} -->\n${renderSchema(d.schema, d.paper)}\n`), `the options table of ${name} in docs/ATTACKS.md is stale; regenerate it from the schema`);
  }
});

test('every CLI attack row loads a registered definition with the same name', async () => {
  for (const [name, row] of Object.entries(ATTACKS)) {
    const def = (await row.load()) as unknown as { name: string; paper: string };
    assert.equal(def.name, name);
    if ((def as unknown as { whiteBox: boolean }).whiteBox) assert.match(def.paper, /arxiv\.org\/abs\/\d{4}\.\d{4,5}/, `${name} cites its paper`);
  }
});

test("the --norm table of docs/ATTACKS.md lists each CLI attack's norms, default first, and whether --eps is required", async () => {
  const rows = new Map<string, { norms: string; eps: string }>();
  for (const m of doc.matchAll(/^\| ([a-z-]+(?:, [a-z-]+)*)(?: \(black-box\))? \| ([^|]+) \| ([^|]+) \|$/gm)) {
    for (const name of m[1]!.split(', ')) rows.set(name, { norms: m[2]!.trim(), eps: m[3]!.trim() });
  }
  for (const [name, row] of Object.entries(ATTACKS)) {
    const def = (await row.load()) as unknown as { norms: readonly (string | number)[] };
    const r = rows.get(name);
    assert.ok(r, `docs/ATTACKS.md has no --norm row for ${name}`);
    const expected = def.norms.every((n) => n === 0) ? 'none (L0 over pixel positions)' : def.norms.map((n) => `\`${n}\``).join(', ');
    assert.equal(r.norms, expected, name);
    assert.equal(r.eps === 'required', row.needsEps, `${name}: --eps ${r.eps}`);
  }
});
