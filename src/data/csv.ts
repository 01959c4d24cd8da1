/**
 * CSV tables (RFC 4180: quoted fields, doubled quotes, CRLF or LF line ends, newlines inside quotes) turned into
 * a float32 feature matrix and integer labels. Errors name the line and column of the offending cell.
 */
import { BulwarkError } from '../core/errors.js';
import { isDecimal } from '../core/numbers.js';
import { classId } from './labels.js';
import { readFileChecked } from '../core/fsio.js';
import { FLOAT32_MAX, type Tensor } from '../core/tensor.js';

/** Options of {@link readCsv} and {@link parseCsvTable}. */
export interface CsvOptions {
  /** The label column: a header name, or a 0-based index (negative counts from the end). Default: the last column. */
  labelColumn?: string | number;
  /** Whether the first row is a header; 'auto' (default) says yes when any of its cells is not a number. */
  header?: boolean | 'auto';
  /** The field separator, one character; default ','. */
  delimiter?: string;
  /** Largest file accepted, in bytes; default 1 GiB. */
  maxBytes?: number;
}

/** A parsed table. */
export interface CsvTable {
  /** Features, float32 [N, F], in file column order without the label column. */
  features: Tensor<Float32Array>;
  /** Labels as class ids; text labels are numbered in sorted order (see classNames). */
  labels: Int32Array;
  /** Feature column names (from the header, or "col<i>" without one). */
  featureNames: string[];
  /** The label column's name. */
  labelName: string;
  /** Class names when labels were text: classNames[id] is the text of class id. */
  classNames?: string[];
}

/** One record with the 1-based line where it starts. */
export interface CsvRecord {
  line: number;
  cells: string[];
}

function csvError(source: string, message: string): never {
  throw new BulwarkError('BULWARK_E_DATA_FORMAT', `${source}: ${message}`, { hint: 'Check the file is RFC 4180 CSV with numeric feature columns and no missing values.' });
}

/**
 * Splits CSV text into records (RFC 4180). Blank lines are skipped; a missing final newline is fine.
 * @param text the CSV text (a leading byte-order mark is ignored)
 * @param delimiter the field separator, one character
 * @param source a name for messages
 * @returns the records with the line each starts on
 * @throws BulwarkError BULWARK_E_DATA_FORMAT for an unclosed quote or a quote out of place; BULWARK_E_ARG for a bad delimiter
 */
export function parseCsvRecords(text: string, delimiter = ',', source = 'CSV'): CsvRecord[] {
  if (delimiter.length !== 1 || delimiter === '"' || delimiter === '\n' || delimiter === '\r') {
    throw new BulwarkError('BULWARK_E_ARG', `CSV delimiter must be one character other than a quote or newline, got ${JSON.stringify(delimiter)}`);
  }
  const records: CsvRecord[] = [];
  let cells: string[] = [];
  let field = '';
  let line = 1;
  let recordLine = 1;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0; // a UTF-8 byte-order mark is not part of the first cell
  const endRecord = (): void => {
    cells.push(field);
    if (!(cells.length === 1 && cells[0] === '')) records.push({ line: recordLine, cells });
    cells = [];
    field = '';
  };
  while (i < text.length) {
    const c = text[i]!;
    if (c === '"') {
      if (field.length > 0) csvError(source, `line ${line}, column ${cells.length + 1}: a quote inside an unquoted field`);
      const start = line;
      i++;
      for (;;) {
        if (i >= text.length) csvError(source, `line ${start}: a quoted field is never closed`);
        if (text[i] === '"') {
          if (text[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        if (text[i] === '\n') line++;
        field += text[i++];
      }
      const next = text[i];
      if (next !== undefined && next !== delimiter && next !== '\n' && next !== '\r') {
        csvError(source, `line ${line}, column ${cells.length + 1}: text after a closing quote`);
      }
      continue;
    }
    if (c === delimiter) {
      cells.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      endRecord();
      line++;
      recordLine = line;
    } else {
      field += c;
    }
    i++;
  }
  if (field.length > 0 || cells.length > 0) endRecord();
  return records;
}

function isNumber(s: string): boolean {
  return isDecimal(s.trim());
}

function decideHeader(first: CsvRecord | undefined, header: boolean | 'auto'): boolean {
  if (header !== 'auto') return header;
  // Empty cells say nothing: they are missing values in data and unusual in a header.
  return first !== undefined && first.cells.some((c) => c.trim() !== '' && !isNumber(c));
}

function resolveLabelColumn(names: string[], hasHeader: boolean, labelColumn: string | number | undefined, source: string): number {
  const n = names.length;
  if (labelColumn === undefined) return n - 1;
  if (typeof labelColumn === 'number') {
    const idx = labelColumn < 0 ? n + labelColumn : labelColumn;
    if (!Number.isInteger(labelColumn) || idx < 0 || idx >= n) {
      throw new BulwarkError('BULWARK_E_ARG', `${source}: label column ${labelColumn} is out of range for ${n} columns`);
    }
    return idx;
  }
  const idx = hasHeader ? names.indexOf(labelColumn) : -1;
  if (idx < 0) {
    const known = hasHeader ? `columns are: ${names.join(', ')}` : 'the file has no header row, so give a column index';
    throw new BulwarkError('BULWARK_E_ARG', `${source}: no column named ${JSON.stringify(labelColumn)} (${known})`);
  }
  return idx;
}

function cellName(names: string[], hasHeader: boolean, col: number): string {
  return hasHeader ? `column ${col + 1} (${JSON.stringify(names[col])})` : `column ${col + 1}`;
}

/** Turns label cells into class ids: all integers, or all text (numbered in sorted order). */
function parseLabels(rows: CsvRecord[], col: number, where: (r: CsvRecord) => string): { labels: Int32Array; classNames?: string[] } {
  const cells = rows.map((r) => r.cells[col]!.trim());
  const labels = new Int32Array(rows.length);
  if (cells.length > 0 && cells.every((c) => c !== '' && !isNumber(c))) {
    const classNames = [...new Set(cells)].sort();
    const id = new Map(classNames.map((name, i) => [name, i]));
    cells.forEach((c, i) => (labels[i] = id.get(c)!));
    return { labels, classNames };
  }
  cells.forEach((c, i) => {
    const v = isNumber(c) ? Number(c) : NaN;
    labels[i] = classId(v, `label ${JSON.stringify(c)}`, where(rows[i]!));
  });
  return { labels };
}

/**
 * Parses CSV text into features and labels.
 * @param text the CSV text
 * @param opts label column, header detection, delimiter
 * @param source a name for messages (the file path)
 * @returns the table
 * @throws BulwarkError BULWARK_E_DATA_FORMAT for malformed CSV, ragged rows, or a non-numeric / non-finite
 *   feature cell (naming line and column); BULWARK_E_LABELS for a bad label; BULWARK_E_ARG for a bad label column
 */
export function parseCsvTable(text: string, opts: CsvOptions = {}, source = 'CSV'): CsvTable {
  const records = parseCsvRecords(text, opts.delimiter ?? ',', source);
  const hasHeader = decideHeader(records[0], opts.header ?? 'auto');
  const rows = hasHeader ? records.slice(1) : records;
  const width = records[0]?.cells.length ?? 0;
  if (rows.length === 0) csvError(source, 'no data rows');
  if (width < 2) csvError(source, `needs at least two columns (features and a label), found ${width}`);
  const names = hasHeader ? records[0]!.cells.map((c) => c.trim()) : Array.from({ length: width }, (_, i) => `col${i}`);
  const labelCol = resolveLabelColumn(names, hasHeader, opts.labelColumn, source);
  const where = (r: CsvRecord): string => `${source}: line ${r.line}`;
  const features = new Float32Array(rows.length * (width - 1));
  rows.forEach((r, i) => {
    if (r.cells.length !== width) csvError(source, `line ${r.line} has ${r.cells.length} cells, expected ${width}`);
    let k = i * (width - 1);
    for (let col = 0; col < width; col++) {
      if (col === labelCol) continue;
      const cell = r.cells[col]!;
      const v = isNumber(cell) ? Number(cell) : NaN;
      if (!Number.isFinite(v) || Math.abs(v) > FLOAT32_MAX) {
        const why = cell.trim() === '' ? 'is empty (missing values are not supported)' : Number.isFinite(v) ? 'is out of float32 range' : 'is not a number';
        csvError(source, `line ${r.line}, ${cellName(names, hasHeader, col)}: ${JSON.stringify(cell)} ${why}`);
      }
      features[k++] = v;
    }
  });
  const { labels, classNames } = parseLabels(rows, labelCol, where);
  return {
    features: { data: features, shape: [rows.length, width - 1], dtype: 'float32' },
    labels,
    featureNames: names.filter((_, c) => c !== labelCol),
    labelName: names[labelCol]!,
    ...(classNames ? { classNames } : {}),
  };
}

/**
 * Reads a CSV file into features and labels (see {@link parseCsvTable}).
 * @param path the file
 * @param opts label column (default last), header ('auto' by default), delimiter, size limit
 * @returns the table
 * @throws BulwarkError as {@link parseCsvTable}; BULWARK_E_FILE_NOT_FOUND / BULWARK_E_LIMIT from reading
 */
export function readCsv(path: string, opts: CsvOptions = {}): CsvTable {
  const bytes = readFileChecked(path, 'CSV file', opts.maxBytes ?? 1024 ** 3);
  return parseCsvTable(bytes.toString('utf8'), opts, path);
}
