/** A structural check of a SARIF 2.1.0 log: the parts code-scanning services require. */
import assert from 'node:assert/strict';

const LEVELS = new Set(['none', 'note', 'warning', 'error']);

/** Throws (assert) unless `log` is a structurally valid SARIF 2.1.0 log whose results reference its rules. */
export function validateSarif(log: Record<string, unknown>): void {
  assert.equal(log['version'], '2.1.0');
  assert.match(String(log['$schema']), /sarif-2\.1\.0/);
  const runs = log['runs'] as Record<string, unknown>[];
  assert.ok(Array.isArray(runs) && runs.length === 1, 'one run');
  const run = runs[0]!;
  const driver = (run['tool'] as Record<string, Record<string, unknown>>)['driver']!;
  assert.equal(typeof driver['name'], 'string');
  const rules = driver['rules'] as Record<string, unknown>[];
  assert.ok(Array.isArray(rules), 'runs[0].tool.driver.rules is an array');
  const ids = rules.map((r) => r['id'] as string);
  assert.equal(new Set(ids).size, ids.length, 'rule ids are unique');
  for (const r of rules) {
    assert.equal(typeof r['id'], 'string');
    assert.ok(((r['shortDescription'] as Record<string, string>)['text'] ?? '').length > 0, `${String(r['id'])} has a short description`);
    const level = (r['defaultConfiguration'] as Record<string, string> | undefined)?.['level'];
    if (level !== undefined) assert.ok(LEVELS.has(level));
  }
  const results = run['results'] as Record<string, unknown>[];
  assert.ok(Array.isArray(results), 'results is an array');
  for (const res of results) {
    const id = res['ruleId'] as string;
    assert.ok(ids.includes(id), `result ruleId ${id} is a rule`);
    if (res['ruleIndex'] !== undefined) assert.equal(ids[res['ruleIndex'] as number], id, 'ruleIndex points at the rule');
    assert.ok(LEVELS.has(res['level'] as string), `level ${String(res['level'])}`);
    assert.ok(((res['message'] as Record<string, string>)['text'] ?? '').length > 0, 'message.text');
    const locs = res['locations'] as Record<string, Record<string, Record<string, unknown>>>[];
    assert.ok(Array.isArray(locs) && locs.length > 0, 'locations');
    for (const l of locs) assert.equal(typeof l['physicalLocation']?.['artifactLocation']?.['uri'], 'string', 'physicalLocation.artifactLocation.uri');
  }
}
