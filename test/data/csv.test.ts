import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCsvRecords, parseCsvTable, readCsv } from '../../src/data/csv.js';
import { fails } from '../helpers.js';

const TMP = mkdtempSync(join(tmpdir(), 'bulwark-csv-'));
after(() => rmSync(TMP, { recursive: true, force: true }));


function file(name: string, text: string): string {
  const p = join(TMP, name);
  writeFileSync(p, text);
  return p;
}

test('RFC 4180 records: quotes, doubled quotes, delimiters and newlines inside quotes, CRLF, BOM, blank lines', () => {
  const text = '\ufeffa,"b, with comma","say ""hi"""\r\n\r\n1,"multi\nline",3\n"",x,\n';
  const records = parseCsvRecords(text);
  assert.deepEqual(records.map((r) => r.cells), [
    ['a', 'b, with comma', 'say "hi"'],
    ['1', 'multi\nline', '3'],
    ['', 'x', ''],
  ]);
  assert.deepEqual(records.map((r) => r.line), [1, 3, 5]);
  assert.deepEqual(parseCsvRecords('1;2\n3;4', ';').map((r) => r.cells), [['1', '2'], ['3', '4']]);
});

test('reads a table with a header, quoted numbers and a text label column', () => {
  const p = file('iris.csv', 'sepal length,"sepal, width",species\n5.1,"3.5",setosa\n7.0,3.2,versicolor\n-1e-2,+.5,"setosa"\n');
  const t = readCsv(p);
  assert.deepEqual(t.features.shape, [3, 2]);
  assert.deepEqual(Array.from(t.features.data), [5.1, 3.5, 7.0, 3.2, -0.01, 0.5].map(Math.fround));
  assert.deepEqual(t.featureNames, ['sepal length', 'sepal, width']);
  assert.equal(t.labelName, 'species');
  assert.deepEqual(t.classNames, ['setosa', 'versicolor']);
  assert.deepEqual(Array.from(t.labels), [0, 1, 0]);
});

test('label column by name or index; header detection', () => {
  const text = 'label,f1,f2\n2,0.5,1\n0,1.5,2\n';
  const byName = parseCsvTable(text, { labelColumn: 'label' });
  assert.deepEqual(Array.from(byName.labels), [2, 0]);
  assert.deepEqual(Array.from(byName.features.data), [0.5, 1, 1.5, 2]);
  assert.deepEqual(Array.from(parseCsvTable(text, { labelColumn: 0 }).labels), [2, 0]);
  const noHeader = parseCsvTable('1,2,3\n4,5,6\n');
  assert.deepEqual(noHeader.features.shape, [2, 2], 'an all-numeric first row is data');
  assert.deepEqual(Array.from(noHeader.labels), [3, 6]);
  assert.equal(parseCsvTable('1,2,3\n4,5,6\n', { header: true }).features.shape[0], 1);
  assert.deepEqual(Array.from(parseCsvTable('1,2,3\n4,5,6\n', { labelColumn: -3 }).labels), [1, 4]);
  assert.throws(() => parseCsvTable(text, { labelColumn: 'nope' }), fails('BULWARK_E_ARG', /no column named "nope" \(columns are: label, f1, f2\)/));
  assert.throws(() => parseCsvTable(text, { labelColumn: 7 }), fails('BULWARK_E_ARG', /out of range/));
});

test('a non-numeric cell is an error naming the line and the column', () => {
  const p = file('bad.csv', 'a,b,y\n1,2,0\n3,"oops",1\n');
  assert.throws(() => readCsv(p), fails('BULWARK_E_DATA_FORMAT', /bad\.csv: line 3, column 2 \("b"\): "oops" is not a number/));
  assert.throws(() => parseCsvTable('1,,0\n'), fails('BULWARK_E_DATA_FORMAT', /line 1, column 2: "" is empty/));
  assert.throws(() => parseCsvTable('a,b\nInfinity,0\n'), fails('BULWARK_E_DATA_FORMAT', /"Infinity" is not a number/));
  assert.throws(() => parseCsvTable('a,b\n1e39,0\n'), fails('BULWARK_E_DATA_FORMAT', /"1e39" is out of float32 range/));
  assert.throws(() => parseCsvTable('a,b\n0x10,0\n'), fails('BULWARK_E_DATA_FORMAT', /"0x10" is not a number/));
});

test('malformed CSV and bad labels are refused with their location', () => {
  assert.throws(() => parseCsvTable('a,b\n1,"2\n'), fails('BULWARK_E_DATA_FORMAT', /line 2: a quoted field is never closed/));
  assert.throws(() => parseCsvTable('a,b\n1,"2"x\n'), fails('BULWARK_E_DATA_FORMAT', /line 2, column 2: text after a closing quote/));
  assert.throws(() => parseCsvTable('a,b\n1,2"\n'), fails('BULWARK_E_DATA_FORMAT', /quote inside an unquoted field/));
  assert.throws(() => parseCsvTable('a,b,c\n1,2,3\n4,5\n'), fails('BULWARK_E_DATA_FORMAT', /line 3 has 2 cells, expected 3/));
  assert.throws(() => parseCsvTable('a,y\n1,2.5\n'), fails('BULWARK_E_LABELS', /line 2: label "2.5"/));
  assert.throws(() => parseCsvTable('a,y\n1,-1\n'), fails('BULWARK_E_LABELS', /label "-1"/));
  assert.throws(() => parseCsvTable('a,y\n1,cat\n2,3\n'), fails('BULWARK_E_LABELS', /line 2: label "cat"/));
  assert.throws(() => parseCsvTable('a,y\n'), fails('BULWARK_E_DATA_FORMAT', /no data rows/));
  assert.throws(() => readCsv(join(TMP, 'missing.csv')), fails('BULWARK_E_FILE_NOT_FOUND'));
});
