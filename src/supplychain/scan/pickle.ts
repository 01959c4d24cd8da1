/**
 * A static pickle reader. It walks every opcode of protocols 0 to 5 (pickletools' whole table) without running
 * anything: it keeps the stack, the mark stack and the memo as symbolic values, so it knows which global every
 * GLOBAL, STACK_GLOBAL, INST, OBJ, REDUCE, NEWOBJ, NEWOBJ_EX and BUILD touches, even when module and name strings
 * travel through the memo. Work and memory are bounded (memo, stack, retained items, step budget); a malformed
 * stream ends as a parse error, never as an exception out of the scanner.
 */
import { BulwarkError } from '../../core/errors.js';
import { BudgetExceeded, ScanContext, scanParseError } from './context.js';
import { FindingSink, maxSeverity, type ScanFinding } from './findings.js';
import { judgeGlobal, NESTED_LOADERS, normalizeGlobal, type Verdict } from './policy.js';

/** One opcode of the pickle machine. */
export interface PickleOpcode {
  code: number;
  name: string;
  /** First protocol that defines it. */
  proto: number;
}

const OPS: [string, string, number][] = [
  ['I', 'INT', 0], ['J', 'BININT', 1], ['K', 'BININT1', 1], ['M', 'BININT2', 1], ['L', 'LONG', 0], ['\x8a', 'LONG1', 2], ['\x8b', 'LONG4', 2],
  ['S', 'STRING', 0], ['T', 'BINSTRING', 1], ['U', 'SHORT_BINSTRING', 1], ['B', 'BINBYTES', 3], ['C', 'SHORT_BINBYTES', 3],
  ['\x8e', 'BINBYTES8', 4], ['\x96', 'BYTEARRAY8', 5], ['\x97', 'NEXT_BUFFER', 5], ['\x98', 'READONLY_BUFFER', 5], ['N', 'NONE', 0],
  ['\x88', 'NEWTRUE', 2], ['\x89', 'NEWFALSE', 2], ['V', 'UNICODE', 0], ['\x8c', 'SHORT_BINUNICODE', 4], ['X', 'BINUNICODE', 1],
  ['\x8d', 'BINUNICODE8', 4], ['F', 'FLOAT', 0], ['G', 'BINFLOAT', 1], [']', 'EMPTY_LIST', 1], ['a', 'APPEND', 0], ['e', 'APPENDS', 1],
  ['l', 'LIST', 0], [')', 'EMPTY_TUPLE', 1], ['t', 'TUPLE', 0], ['\x85', 'TUPLE1', 2], ['\x86', 'TUPLE2', 2], ['\x87', 'TUPLE3', 2],
  ['}', 'EMPTY_DICT', 1], ['d', 'DICT', 0], ['s', 'SETITEM', 0], ['u', 'SETITEMS', 1], ['\x8f', 'EMPTY_SET', 4], ['\x90', 'ADDITEMS', 4],
  ['\x91', 'FROZENSET', 4], ['0', 'POP', 0], ['2', 'DUP', 0], ['(', 'MARK', 0], ['1', 'POP_MARK', 1], ['g', 'GET', 0], ['h', 'BINGET', 1],
  ['j', 'LONG_BINGET', 1], ['p', 'PUT', 0], ['q', 'BINPUT', 1], ['r', 'LONG_BINPUT', 1], ['\x94', 'MEMOIZE', 4], ['\x82', 'EXT1', 2],
  ['\x83', 'EXT2', 2], ['\x84', 'EXT4', 2], ['c', 'GLOBAL', 0], ['\x93', 'STACK_GLOBAL', 4], ['R', 'REDUCE', 0], ['b', 'BUILD', 0],
  ['i', 'INST', 0], ['o', 'OBJ', 1], ['\x81', 'NEWOBJ', 2], ['\x92', 'NEWOBJ_EX', 4], ['\x80', 'PROTO', 2], ['.', 'STOP', 0],
  ['\x95', 'FRAME', 4], ['P', 'PERSID', 0], ['Q', 'BINPERSID', 1],
];

/** The opcode table (pickletools.opcodes), keyed by byte. */
export const PICKLE_OPCODES: ReadonlyMap<number, PickleOpcode> = new Map(OPS.map(([c, name, proto]) => [c.charCodeAt(0), { code: c.charCodeAt(0), name, proto }]));

/** Highest pickle protocol. */
export const HIGHEST_PROTOCOL = 5;

// ------------------------------------------------------------------------------------------- symbolic values

/** A symbolic pickle value. Containers keep at most a bounded number of items. */
export type PV =
  | { t: 'str'; v: string | null; len: number }
  | { t: 'bytes'; v: Uint8Array }
  | { t: 'int'; v: bigint | null }
  | { t: 'float' }
  | { t: 'none' }
  | { t: 'bool'; v: boolean }
  | { t: 'buffer' }
  | { t: 'list' | 'tuple' | 'set' | 'frozenset'; items: PV[]; n: number }
  | { t: 'dict'; items: PV[]; n: number }
  | PGlobal
  | PObj
  | { t: 'persid'; id: PV; offset: number }
  | { t: 'ext'; code: number; offset: number }
  | { t: 'unknown'; why: string };

/** An imported global. */
export interface PGlobal {
  t: 'global';
  module: string;
  name: string;
  /** Normalized `module.name`. */
  full: string;
  offset: number;
  verdict: Verdict;
  finding: ScanFinding | undefined;
}

/** The result of a call (REDUCE, NEWOBJ, INST, OBJ, NEWOBJ_EX). */
export interface PObj {
  t: 'obj';
  fn: PV;
  args: PV | null;
  op: string;
  offset: number;
  state: PV | null;
}

/** Strings longer than this are kept undecoded (a module or class name is never that long). */
const MAX_DECODED = 1 << 16;
const JOBLIB_WRAPPERS = new Set(['joblib.numpy_pickle.NumpyArrayWrapper', 'sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper']);

const utf8Fatal = new TextDecoder('utf-8', { fatal: true });

/** A short human description of a value for evidence. */
export function describe(v: PV, depth = 0): string {
  switch (v.t) {
    case 'str':
      return v.v === null ? `<str of ${v.len} chars>` : JSON.stringify(v.v.length > 60 ? v.v.slice(0, 60) + '...' : v.v);
    case 'bytes':
      return `<${v.v.length} bytes>`;
    case 'int':
      return v.v === null ? '<int>' : v.v.toString();
    case 'float':
    case 'none':
    case 'buffer':
      return v.t;
    case 'bool':
      return v.v ? 'True' : 'False';
    case 'list':
    case 'tuple':
    case 'set':
    case 'frozenset':
    case 'dict':
      return depth > 1 ? `<${v.t}>` : `<${v.t} of ${v.n}${v.t === 'dict' ? ' pairs' : ' items'}>`;
    case 'global':
      return v.full;
    case 'obj':
      return depth > 2 ? '<call result>' : `result of ${describe(v.fn, depth + 1)}(...)`;
    case 'persid':
      return 'persistent id';
    case 'ext':
      return `extension code ${v.code}`;
    case 'unknown':
      return `<${v.why}>`;
  }
}

/** Reads an item of a tuple/list value. */
export function item(v: PV | null | undefined, i: number): PV | undefined {
  if (!v || (v.t !== 'tuple' && v.t !== 'list')) return undefined;
  return v.items[i];
}

/** Looks up a string key of a dict value. */
export function dictGet(v: PV | null | undefined, key: string): PV | undefined {
  if (!v || v.t !== 'dict') return undefined;
  for (let i = 0; i + 1 < v.items.length; i += 2) {
    const k = v.items[i]!;
    if (k.t === 'str' && k.v === key) return v.items[i + 1];
  }
  return undefined;
}

/** The string held by a value, if it is a decoded str. */
export function strOf(v: PV | undefined): string | undefined {
  return v && v.t === 'str' && v.v !== null ? v.v : undefined;
}

/** The integer held by a value, as a bigint. */
export function intOf(v: PV | undefined): bigint | undefined {
  if (!v) return undefined;
  if (v.t === 'int' && v.v !== null) return v.v;
  if (v.t === 'bool') return v.v ? 1n : 0n;
  return undefined;
}

// ------------------------------------------------------------------------------------------------ the reader

/** Options of one pickle scan. */
export interface PickleScanOptions {
  /** Index of this pickle in a stream of stacked pickles (for evidence). */
  pickleIndex?: number;
  /** Nesting of pickles inside pickles (joblib object arrays); bounded. */
  nesting?: number;
}

/** What a pickle scan found out. */
export interface PickleOutcome {
  /** The stream reached STOP. */
  ok: boolean;
  /** Offset just after STOP (or where parsing stopped). */
  end: number;
  /** Protocol from PROTO, or 0. */
  protocol: number;
  /** The value on top of the stack at STOP. */
  result: PV | undefined;
  /** Every persistent id loaded (BINPERSID / PERSID), capped. */
  persids: PV[];
  /** Distinct normalized `module.name` globals, capped. */
  globals: Set<string>;
}

const MAX_PERSIDS = 1_000_000;
const MAX_GLOBALS_LISTED = 1000;

/**
 * Scans one pickle starting at `start`. Findings go to the context; a malformed stream gives a `parse-error`
 * finding and `ok: false`.
 * @param ctx where the pickle is and where findings go
 * @param buf the bytes holding the pickle
 * @param start offset of its first opcode
 * @throws BudgetExceeded when the step budget or a memo / stack limit runs out
 */
export function scanPickle(ctx: ScanContext, buf: Uint8Array, start: number, opts: PickleScanOptions = {}): PickleOutcome {
  const r = new PickleReader(ctx, buf, start, opts);
  try {
    r.run();
    return r.outcome(true);
  } catch (e) {
    if (e instanceof BulwarkError && e.code === 'BULWARK_E_SCAN_PARSE') {
      const off = (e.details?.['offset'] as number | undefined) ?? r.opStart;
      ctx.report('parse-error', {
        metric: 'pickle.parse',
        value: e.message,
        threshold: null,
        evidence: { format: 'pickle', offset: off, ...(opts.pickleIndex !== undefined ? { pickleIndex: opts.pickleIndex } : {}), message: e.message },
      });
      return r.outcome(false);
    }
    throw e;
  }
}

class PickleReader {
  pos: number;
  opStart: number;
  protocol = 0;
  private readonly view: DataView;
  private readonly stack: PV[] = [];
  private readonly marks: number[] = [];
  private readonly memo = new Map<number, PV>();
  private readonly persids: PV[] = [];
  private readonly globals = new Set<string>();
  private cells = 0;
  private result: PV | undefined;
  private readonly maxCells: number;

  constructor(private readonly ctx: ScanContext, private readonly buf: Uint8Array, start: number, private readonly opts: PickleScanOptions) {
    this.pos = start;
    this.opStart = start;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.maxCells = ctx.opts.maxStack;
  }

  outcome(ok: boolean): PickleOutcome {
    return { ok, end: this.pos, protocol: this.protocol, result: this.result, persids: this.persids, globals: this.globals };
  }

  private fail(msg: string, offset = this.opStart): never {
    scanParseError('pickle', `${msg} (opcode at offset ${offset})`, offset);
  }

  // ---- byte access
  private need(n: number): void {
    if (n < 0 || this.pos + n > this.buf.length) this.fail(`truncated: needs ${n} more bytes at offset ${this.pos}, ${this.buf.length - this.pos} left`);
  }
  private u8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }
  private u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }
  private i32(): number {
    this.need(4);
    const v = this.view.getInt32(this.pos, true);
    this.pos += 4;
    return v;
  }
  private u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  private u64(): number {
    this.need(8);
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    if (v > BigInt(this.buf.length)) this.fail(`length ${v} exceeds the ${this.buf.length}-byte input`);
    return Number(v);
  }
  private take(n: number): Uint8Array {
    this.need(n);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  private line(): Uint8Array {
    const nl = this.buf.indexOf(0x0a, this.pos);
    if (nl < 0) this.fail('line argument is not terminated by a newline');
    const b = this.buf.subarray(this.pos, nl);
    this.pos = nl + 1;
    return b;
  }
  private asciiLine(what: string): string {
    const b = this.line();
    for (const c of b) if (c > 0x7f) this.fail(`${what} is not ASCII`);
    return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
  }

  // ---- stack
  private fence(): number {
    return this.marks.length === 0 ? 0 : this.marks[this.marks.length - 1]!;
  }
  private push(v: PV): void {
    if (this.stack.length >= this.ctx.opts.maxStack) throw new BudgetExceeded('pickle stack', this.ctx.opts.maxStack);
    this.stack.push(v);
  }
  private pop(): PV {
    if (this.stack.length <= this.fence()) this.fail('stack underflow');
    return this.stack.pop()!;
  }
  private top(): PV {
    if (this.stack.length <= this.fence()) this.fail('stack underflow (no object to act on)');
    return this.stack[this.stack.length - 1]!;
  }
  private popMark(): PV[] {
    if (this.marks.length === 0) this.fail('no MARK on the stack');
    const k = this.marks.pop()!;
    return this.stack.splice(k);
  }
  private keep(items: PV[]): PV[] {
    // Retained items are bounded per pickle, so a hostile stream cannot grow memory past the cap.
    const room = this.maxCells - this.cells;
    if (room <= 0) return [];
    const kept = items.length <= room ? items : items.slice(0, room);
    this.cells += kept.length;
    return kept;
  }
  private seq(t: 'list' | 'tuple' | 'set' | 'frozenset', items: PV[]): PV {
    return { t, items: this.keep(items), n: items.length };
  }
  private memoPut(idx: number, v: PV): void {
    if (!this.memo.has(idx) && this.memo.size >= this.ctx.opts.maxMemo) throw new BudgetExceeded('pickle memo', this.ctx.opts.maxMemo);
    this.memo.set(idx, v);
  }
  private memoGet(idx: number): PV {
    const v = this.memo.get(idx);
    if (v === undefined) this.fail(`memo key ${idx} was never stored`);
    return v;
  }

  // ---- values
  private str(b: Uint8Array, encoding: 'utf8' | 'latin1'): PV {
    if (b.length > MAX_DECODED) return { t: 'str', v: null, len: b.length };
    if (encoding === 'latin1') return { t: 'str', v: Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1'), len: b.length };
    try {
      const s = utf8Fatal.decode(b);
      return { t: 'str', v: s, len: s.length };
    } catch {
      return this.fail('string is not valid UTF-8');
    }
  }
  private longBytes(b: Uint8Array): PV {
    if (b.length > 64) return { t: 'int', v: null };
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
    if (b.length > 0 && (b[b.length - 1]! & 0x80) !== 0) v -= 1n << BigInt(8 * b.length);
    return { t: 'int', v };
  }
  private parseIntText(s: string, allowL: boolean): PV {
    let t = s.trim().replace(/_/g, '');
    if (allowL && t.endsWith('L')) t = t.slice(0, -1);
    if (t.length > 4300) this.fail('integer literal too long');
    let neg = false;
    if (t.startsWith('-') || t.startsWith('+')) {
      neg = t.startsWith('-');
      t = t.slice(1);
    }
    if (!/^(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|\d+)$/.test(t)) this.fail(`invalid integer literal ${JSON.stringify(s.slice(0, 40))}`);
    const v = BigInt(t);
    return { t: 'int', v: neg ? -v : v };
  }

  /** Python's codecs.escape_decode over the quoted body of a STRING argument, as latin1 text. */
  private escapeDecode(b: Uint8Array): string {
    let out = '';
    for (let i = 0; i < b.length; i++) {
      const c = b[i]!;
      if (c !== 0x5c) {
        out += String.fromCharCode(c);
        continue;
      }
      i++;
      if (i >= b.length) this.fail('STRING ends with a lone backslash');
      const e = String.fromCharCode(b[i]!);
      const simple: Record<string, string> = { '\\': '\\', "'": "'", '"': '"', a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\n': '' };
      if (e in simple) out += simple[e];
      else if (e === 'x') {
        const h = String.fromCharCode(b[i + 1] ?? 0, b[i + 2] ?? 0);
        if (!/^[0-9a-fA-F]{2}$/.test(h)) this.fail('invalid \\x escape in STRING');
        out += String.fromCharCode(parseInt(h, 16));
        i += 2;
      } else if (e >= '0' && e <= '7') {
        let oct = e;
        while (oct.length < 3 && i + 1 < b.length && b[i + 1]! >= 0x30 && b[i + 1]! <= 0x37) oct += String.fromCharCode(b[++i]!);
        out += String.fromCharCode(parseInt(oct, 8) & 0xff);
      } else out += '\\' + e;
    }
    return out;
  }

  /** raw-unicode-escape decoding (UNICODE opcode): only \uXXXX and \UXXXXXXXX are escapes. */
  private rawUnicodeEscape(b: Uint8Array): string {
    let out = '';
    for (let i = 0; i < b.length; i++) {
      const c = b[i]!;
      if (c === 0x5c) {
        let run = 1;
        while (i + run < b.length && b[i + run] === 0x5c) run++;
        const next = b[i + run];
        if (run % 2 === 1 && (next === 0x75 || next === 0x55)) {
          out += '\\'.repeat(run - 1);
          const n = next === 0x75 ? 4 : 8;
          const h = Buffer.from(b.subarray(i + run + 1, i + run + 1 + n)).toString('latin1');
          if (h.length !== n || !/^[0-9a-fA-F]+$/.test(h)) this.fail('truncated \\uXXXX escape in UNICODE');
          const cp = parseInt(h, 16);
          if (cp > 0x10ffff) this.fail('\\U escape out of range in UNICODE');
          out += String.fromCodePoint(cp);
          i += run + n;
          continue;
        }
        out += '\\'.repeat(run);
        i += run - 1;
        continue;
      }
      out += String.fromCharCode(c);
    }
    return out;
  }

  // ---- globals and calls
  private importGlobal(module: string, name: string, op: string, off: number): PGlobal {
    const verdict = judgeGlobal(module, name, { allow: this.ctx.opts.allow, torchscript: this.ctx.flags['torchscript'] === true });
    const n = normalizeGlobal(module, name);
    const full = `${n.module}.${n.name}`;
    if (this.globals.size < MAX_GLOBALS_LISTED) this.globals.add(full);
    let finding: ScanFinding | undefined;
    const ev = { format: 'pickle', offset: off, opcode: op, callable: full, ...(this.opts.pickleIndex !== undefined ? { pickleIndex: this.opts.pickleIndex } : {}) };
    const key = `${this.opts.pickleIndex ?? 0}:${full}`;
    if (verdict.kind === 'blocked') {
      finding = this.ctx.report('pickle-dangerous-callable', { severity: verdict.severity, metric: 'pickle.callable', value: full, threshold: 'blocklist', detail: `${full} (${verdict.reason})`, evidence: { ...ev, reason: verdict.reason } }, key);
    } else if (verdict.kind === 'unknown') {
      finding = this.ctx.report('pickle-unknown-callable', { severity: verdict.severity, metric: 'pickle.callable', value: full, threshold: 'allowlist', detail: full, evidence: { ...ev, reason: verdict.reason } }, key);
    }
    return { t: 'global', module, name, full, offset: off, verdict, finding };
  }

  private call(fn: PV, args: PV | null, op: string, off: number): PObj {
    if (fn.t === 'global') {
      const f = fn.finding;
      if (f) {
        if (fn.verdict.kind === 'unknown' && (op === 'REDUCE' || op === 'INST' || op === 'OBJ')) f.severity = maxSeverity(f.severity, 'medium');
        if (f.evidence['calledBy'] === undefined) {
          f.evidence['calledBy'] = op;
          f.evidence['callOffset'] = off;
        }
      }
      if (NESTED_LOADERS.has(fn.full)) {
        const a0 = item(args, 0);
        if (a0 && a0.t === 'bytes') {
          const child = this.ctx.child(`<${fn.full} argument at offset ${off}>`, true);
          if (child.depth > this.ctx.opts.maxDepth) {
            this.ctx.report('archive-nesting-limit', { metric: 'archive.depth', value: child.depth, threshold: this.ctx.opts.maxDepth, detail: 'nested pickle not opened', evidence: { format: 'pickle', offset: off } });
          } else {
            this.ctx.dispatch(child, a0.v, 'nested.pkl');
          }
        }
      }
    } else {
      this.ctx.report('pickle-unresolved-callable', {
        metric: 'pickle.callable',
        value: describe(fn),
        threshold: 'static resolution',
        detail: `${op} on ${describe(fn)}`,
        evidence: { format: 'pickle', offset: off, opcode: op, target: describe(fn), ...(this.opts.pickleIndex !== undefined ? { pickleIndex: this.opts.pickleIndex } : {}) },
      }, `${this.opts.pickleIndex ?? 0}:${op}:${describe(fn)}`);
    }
    return { t: 'obj', fn, args, op, offset: off, state: null };
  }

  private injection(what: string, op: string, off: number, value: string): void {
    this.ctx.report('pickle-state-injection', {
      metric: 'pickle.mutation',
      value,
      threshold: 'no mutation of imported objects or special attributes',
      detail: what,
      evidence: { format: 'pickle', offset: off, opcode: op, ...(this.opts.pickleIndex !== undefined ? { pickleIndex: this.opts.pickleIndex } : {}) },
    }, `${this.opts.pickleIndex ?? 0}:${op}:${value}`);
  }

  private checkMutationTarget(target: PV, op: string): void {
    if (target.t === 'global') this.injection(`${op} mutates the imported object ${target.full}`, op, this.opStart, target.full);
  }

  private checkState(state: PV, op: string): void {
    const dicts: PV[] = [state];
    if (state.t === 'tuple' && state.n === 2) dicts.push(...state.items);
    for (const d of dicts) {
      if (d.t !== 'dict') continue;
      for (let i = 0; i < d.items.length; i += 2) {
        const k = strOf(d.items[i]);
        if (k !== undefined && k.length > 4 && k.startsWith('__') && k.endsWith('__')) {
          this.injection(`BUILD state sets the special attribute ${k}`, op, this.opStart, k);
        }
      }
    }
  }

  private addItems(target: PV, items: PV[], op: string): void {
    this.checkMutationTarget(target, op);
    if (target.t === 'list' || target.t === 'set' || target.t === 'dict') {
      target.n += target.t === 'dict' ? Math.floor(items.length / 2) : items.length;
      // A dict fed by APPEND/ADDITEMS would fail in Python; keep pairs aligned by storing only SETITEM(S) items.
      if (target.t !== 'dict' || op === 'SETITEM' || op === 'SETITEMS') {
        for (const it of this.keep(items)) target.items.push(it);
      }
    }
  }

  // ---- joblib: array bytes follow the BUILD of a NumpyArrayWrapper inside the opcode stream
  private skipJoblibArray(state: PV): void {
    const dtype = dictGet(state, 'dtype');
    const shape = dictGet(state, 'shape');
    const align = dictGet(state, 'numpy_array_alignment_bytes');
    if (!dtype || dtype.t !== 'obj' || !shape || (shape.t !== 'tuple' && shape.t !== 'list')) this.fail('joblib NumpyArrayWrapper without a readable dtype and shape');
    const descr = strOf(item(dtype.args, 0)) ?? '';
    const flags = intOf(item(dtype.state, 7));
    const hasObject = /^[<>|=]?O/.test(descr) || (flags !== undefined && (flags & 1n) === 1n);
    if (hasObject) {
      const nesting = (this.opts.nesting ?? 0) + 1;
      if (nesting > 8) this.fail('joblib object arrays nested too deeply');
      const inner = scanPickle(this.ctx, this.buf, this.pos, { ...this.opts, nesting });
      if (!inner.ok) this.fail('joblib object array pickle is malformed', inner.end);
      this.pos = inner.end;
      return;
    }
    if (align && align.t !== 'none') {
      const pad = this.u8();
      this.take(pad);
    }
    let count = 1n;
    for (const d of shape.items) {
      const v = intOf(d);
      if (v === undefined || v < 0n) this.fail('joblib array shape is not a tuple of non-negative integers');
      count *= v;
    }
    if (shape.items.length !== shape.n) this.fail('joblib array shape is too long');
    const elsize = intOf(item(dtype.state, 5));
    const m = /^[<>|=]?([a-zA-Z?])(\d*)/.exec(descr);
    const size = elsize !== undefined && elsize > 0n ? elsize : m && m[2] ? BigInt(m[2]) * (m[1] === 'U' ? 4n : 1n) : m && m[1] === '?' ? 1n : -1n;
    if (size < 0n) this.fail(`joblib array dtype ${JSON.stringify(descr)} has no known item size`);
    const total = count * size;
    if (total > BigInt(this.buf.length - this.pos)) this.fail(`joblib array declares ${total} bytes but only ${this.buf.length - this.pos} remain`);
    this.pos += Number(total);
  }

  run(): void {
    const budget = this.ctx.budget;
    for (;;) {
      budget.tick();
      this.opStart = this.pos;
      const off = this.pos;
      const code = this.u8();
      switch (code) {
        case 0x80: { // PROTO
          const p = this.u8();
          if (p > HIGHEST_PROTOCOL) this.fail(`unsupported pickle protocol ${p}`);
          this.protocol = p;
          break;
        }
        case 0x95: { // FRAME: frames are transparent; only their length is checked
          const n = this.u64();
          if (this.pos + n > this.buf.length) this.fail(`frame of ${n} bytes runs past the end`);
          break;
        }
        case 0x2e: { // STOP
          this.result = this.pop();
          return;
        }
        // -- integers
        case 0x49: { // INT
          const s = this.asciiLine('INT argument');
          if (s === '00') this.push({ t: 'bool', v: false });
          else if (s === '01') this.push({ t: 'bool', v: true });
          else this.push(this.parseIntText(s, false));
          break;
        }
        case 0x4c: // LONG
          this.push(this.parseIntText(this.asciiLine('LONG argument'), true));
          break;
        case 0x4a: // BININT
          this.push({ t: 'int', v: BigInt(this.i32()) });
          break;
        case 0x4b: // BININT1
          this.push({ t: 'int', v: BigInt(this.u8()) });
          break;
        case 0x4d: // BININT2
          this.push({ t: 'int', v: BigInt(this.u16()) });
          break;
        case 0x8a: // LONG1
          this.push(this.longBytes(this.take(this.u8())));
          break;
        case 0x8b: { // LONG4
          const n = this.i32();
          if (n < 0) this.fail('LONG4 with a negative byte count');
          this.push(this.longBytes(this.take(n)));
          break;
        }
        // -- strings and bytes
        case 0x53: { // STRING
          const b = this.line();
          if (b.length < 2 || (b[0] !== 0x22 && b[0] !== 0x27) || b[b.length - 1] !== b[0]) this.fail('STRING argument must be quoted');
          const s = this.escapeDecode(b.subarray(1, b.length - 1));
          this.push(s.length > MAX_DECODED ? { t: 'str', v: null, len: s.length } : { t: 'str', v: s, len: s.length });
          break;
        }
        case 0x54: { // BINSTRING
          const n = this.i32();
          if (n < 0) this.fail('BINSTRING with a negative length');
          this.push(this.str(this.take(n), 'latin1'));
          break;
        }
        case 0x55: // SHORT_BINSTRING
          this.push(this.str(this.take(this.u8()), 'latin1'));
          break;
        case 0x42: // BINBYTES
          this.push({ t: 'bytes', v: this.take(this.u32()) });
          break;
        case 0x43: // SHORT_BINBYTES
          this.push({ t: 'bytes', v: this.take(this.u8()) });
          break;
        case 0x8e: // BINBYTES8
        case 0x96: // BYTEARRAY8
          this.push({ t: 'bytes', v: this.take(this.u64()) });
          break;
        case 0x97: // NEXT_BUFFER (out-of-band data, supplied by the loader)
          this.push({ t: 'buffer' });
          break;
        case 0x98: // READONLY_BUFFER
          this.top();
          break;
        case 0x56: { // UNICODE
          const s = this.rawUnicodeEscape(this.line());
          this.push(s.length > MAX_DECODED ? { t: 'str', v: null, len: s.length } : { t: 'str', v: s, len: s.length });
          break;
        }
        case 0x8c: // SHORT_BINUNICODE
          this.push(this.str(this.take(this.u8()), 'utf8'));
          break;
        case 0x58: // BINUNICODE
          this.push(this.str(this.take(this.u32()), 'utf8'));
          break;
        case 0x8d: // BINUNICODE8
          this.push(this.str(this.take(this.u64()), 'utf8'));
          break;
        // -- other scalars
        case 0x4e: // NONE
          this.push({ t: 'none' });
          break;
        case 0x88: // NEWTRUE
          this.push({ t: 'bool', v: true });
          break;
        case 0x89: // NEWFALSE
          this.push({ t: 'bool', v: false });
          break;
        case 0x46: { // FLOAT
          const s = this.asciiLine('FLOAT argument').trim();
          if (!/^[+-]?((\d[\d_]*)?(\.\d*)?([eE][+-]?\d+)?|inf(inity)?|nan)$/i.test(s) || s === '' || s === '.') this.fail('invalid FLOAT literal');
          this.push({ t: 'float' });
          break;
        }
        case 0x47: // BINFLOAT
          this.take(8);
          this.push({ t: 'float' });
          break;
        // -- containers
        case 0x5d: // EMPTY_LIST
          this.push({ t: 'list', items: [], n: 0 });
          break;
        case 0x29: // EMPTY_TUPLE
          this.push({ t: 'tuple', items: [], n: 0 });
          break;
        case 0x7d: // EMPTY_DICT
          this.push({ t: 'dict', items: [], n: 0 });
          break;
        case 0x8f: // EMPTY_SET
          this.push({ t: 'set', items: [], n: 0 });
          break;
        case 0x61: { // APPEND
          const v = this.pop();
          this.addItems(this.top(), [v], 'APPEND');
          break;
        }
        case 0x65: { // APPENDS
          const items = this.popMark();
          this.addItems(this.top(), items, 'APPENDS');
          break;
        }
        case 0x6c: // LIST
          this.push(this.seq('list', this.popMark()));
          break;
        case 0x74: // TUPLE
          this.push(this.seq('tuple', this.popMark()));
          break;
        case 0x85: // TUPLE1
          this.push(this.seq('tuple', [this.pop()]));
          break;
        case 0x86: { // TUPLE2
          const b = this.pop();
          const a = this.pop();
          this.push(this.seq('tuple', [a, b]));
          break;
        }
        case 0x87: { // TUPLE3
          const c = this.pop();
          const b = this.pop();
          const a = this.pop();
          this.push(this.seq('tuple', [a, b, c]));
          break;
        }
        case 0x64: { // DICT
          const items = this.popMark();
          if (items.length % 2 !== 0) this.fail('DICT with an odd number of items');
          this.push({ t: 'dict', items: this.keep(items), n: items.length / 2 });
          break;
        }
        case 0x73: { // SETITEM
          const v = this.pop();
          const k = this.pop();
          this.addItems(this.top(), [k, v], 'SETITEM');
          break;
        }
        case 0x75: { // SETITEMS
          const items = this.popMark();
          if (items.length % 2 !== 0) this.fail('SETITEMS with an odd number of items');
          this.addItems(this.top(), items, 'SETITEMS');
          break;
        }
        case 0x90: { // ADDITEMS
          const items = this.popMark();
          this.addItems(this.top(), items, 'ADDITEMS');
          break;
        }
        case 0x91: // FROZENSET
          this.push(this.seq('frozenset', this.popMark()));
          break;
        // -- stack manipulation
        case 0x30: // POP
          if (this.stack.length > this.fence()) this.stack.pop();
          else this.popMark();
          break;
        case 0x32: // DUP
          this.push(this.top());
          break;
        case 0x28: // MARK
          if (this.marks.length >= this.ctx.opts.maxStack) throw new BudgetExceeded('pickle mark stack', this.ctx.opts.maxStack);
          this.marks.push(this.stack.length);
          break;
        case 0x31: // POP_MARK
          this.popMark();
          break;
        // -- memo
        case 0x67: { // GET
          const s = this.asciiLine('GET argument');
          if (!/^\s*\d+\s*$/.test(s) || s.trim().length > 15) this.fail('invalid GET argument');
          this.push(this.memoGet(Number(s)));
          break;
        }
        case 0x68: // BINGET
          this.push(this.memoGet(this.u8()));
          break;
        case 0x6a: // LONG_BINGET
          this.push(this.memoGet(this.u32()));
          break;
        case 0x70: { // PUT
          const s = this.asciiLine('PUT argument').trim();
          if (/^-\d+$/.test(s)) this.fail('negative PUT argument');
          if (!/^\d+$/.test(s) || s.length > 15) this.fail('invalid PUT argument');
          this.memoPut(Number(s), this.top());
          break;
        }
        case 0x71: // BINPUT
          this.memoPut(this.u8(), this.top());
          break;
        case 0x72: // LONG_BINPUT
          this.memoPut(this.u32(), this.top());
          break;
        case 0x94: // MEMOIZE
          this.memoPut(this.memo.size, this.top());
          break;
        // -- extension registry
        case 0x82:
        case 0x83:
        case 0x84: {
          const ext = code === 0x82 ? this.u8() : code === 0x83 ? this.u16() : this.i32();
          if (ext <= 0) this.fail('EXT code must be positive');
          const name = code === 0x82 ? 'EXT1' : code === 0x83 ? 'EXT2' : 'EXT4';
          this.ctx.report('pickle-extension-code', {
            metric: 'pickle.extension_code',
            value: ext,
            threshold: 'static resolution',
            detail: `${name} ${ext}`,
            evidence: { format: 'pickle', offset: off, opcode: name, ...(this.opts.pickleIndex !== undefined ? { pickleIndex: this.opts.pickleIndex } : {}) },
          }, `${this.opts.pickleIndex ?? 0}:${ext}`);
          this.push({ t: 'ext', code: ext, offset: off });
          break;
        }
        // -- globals and calls
        case 0x63: { // GLOBAL
          const module = this.str(this.line(), 'utf8');
          const name = this.str(this.line(), 'utf8');
          this.push(this.importGlobal(strOf(module) ?? '', strOf(name) ?? '', 'GLOBAL', off));
          break;
        }
        case 0x93: { // STACK_GLOBAL
          const name = this.pop();
          const module = this.pop();
          const m = strOf(module);
          const n = strOf(name);
          if (m === undefined || n === undefined) {
            if (module.t !== 'str' && module.t !== 'unknown' && module.t !== 'global' && module.t !== 'obj' && module.t !== 'persid' && module.t !== 'ext') {
              this.fail(`STACK_GLOBAL needs two strings, got ${describe(module)} and ${describe(name)}`);
            }
            this.ctx.report('pickle-unresolved-callable', {
              metric: 'pickle.callable',
              value: `${describe(module)}.${describe(name)}`,
              threshold: 'static resolution',
              detail: `STACK_GLOBAL with module ${describe(module)} and name ${describe(name)}`,
              evidence: { format: 'pickle', offset: off, opcode: 'STACK_GLOBAL', ...(this.opts.pickleIndex !== undefined ? { pickleIndex: this.opts.pickleIndex } : {}) },
            }, `${this.opts.pickleIndex ?? 0}:STACK_GLOBAL:${off}`);
            this.push({ t: 'unknown', why: 'unresolved global' });
          } else {
            this.push(this.importGlobal(m, n, 'STACK_GLOBAL', off));
          }
          break;
        }
        case 0x69: { // INST
          const module = strOf(this.str(this.line(), 'utf8')) ?? '';
          const name = strOf(this.str(this.line(), 'utf8')) ?? '';
          const args = this.seq('tuple', this.popMark());
          const g = this.importGlobal(module, name, 'INST', off);
          this.push(this.call(g, args, 'INST', off));
          break;
        }
        case 0x6f: { // OBJ
          const items = this.popMark();
          if (items.length === 0) this.fail('OBJ without a class on the stack');
          const cls = items[0]!;
          this.push(this.call(cls, this.seq('tuple', items.slice(1)), 'OBJ', off));
          break;
        }
        case 0x52: { // REDUCE
          const args = this.pop();
          const fn = this.pop();
          this.push(this.call(fn, args, 'REDUCE', off));
          break;
        }
        case 0x81: { // NEWOBJ
          const args = this.pop();
          const cls = this.pop();
          this.push(this.call(cls, args, 'NEWOBJ', off));
          break;
        }
        case 0x92: { // NEWOBJ_EX
          this.pop(); // kwargs
          const args = this.pop();
          const cls = this.pop();
          this.push(this.call(cls, args, 'NEWOBJ_EX', off));
          break;
        }
        case 0x62: { // BUILD
          const state = this.pop();
          const obj = this.top();
          this.checkMutationTarget(obj, 'BUILD');
          this.checkState(state, 'BUILD');
          if (obj.t === 'obj') {
            obj.state = state;
            if (obj.fn.t === 'global' && JOBLIB_WRAPPERS.has(obj.fn.full)) this.skipJoblibArray(state);
          } else if (obj.t !== 'global' && obj.t !== 'unknown' && obj.t !== 'persid' && obj.t !== 'ext' && obj.t !== 'dict' && obj.t !== 'list' && obj.t !== 'set') {
            // BUILD on a plain value (int, str, tuple) fails in Python: such a stream never loads.
            this.fail(`BUILD on ${describe(obj)}`);
          }
          break;
        }
        // -- persistent ids
        case 0x50: { // PERSID
          const id = this.asciiLine('PERSID argument');
          this.persid({ t: 'str', v: id, len: id.length }, off);
          break;
        }
        case 0x51: // BINPERSID
          this.persid(this.pop(), off);
          break;
        default:
          this.fail(`unknown opcode 0x${code.toString(16).padStart(2, '0')}`);
      }
    }
  }

  private persid(id: PV, off: number): void {
    if (this.persids.length < MAX_PERSIDS) this.persids.push(id);
    this.push({ t: 'persid', id, offset: off });
  }
}

/** True when bytes at `pos` start like a binary pickle (PROTO with a known protocol). */
export function looksLikeBinaryPickle(buf: Uint8Array, pos = 0): boolean {
  return buf.length >= pos + 3 && buf[pos] === 0x80 && buf[pos + 1]! <= HIGHEST_PROTOCOL && buf[pos + 1]! >= 2;
}

/**
 * Tries to read a pickle at `pos` without reporting anything; returns the findings it would give, or undefined
 * when the bytes are not a complete pickle. Used to decide whether trailing bytes are another pickle.
 */
export function trialPickle(ctx: ScanContext, buf: Uint8Array, pos: number, opts: PickleScanOptions): { outcome: PickleOutcome; sink: FindingSink } | undefined {
  const sink = new FindingSink();
  const trial = new ScanContext(ctx.file, ctx.inner, ctx.depth, ctx.opts, ctx.budget, sink, [], ctx.dir, ctx.dispatch, ctx.flags);
  const outcome = scanPickle(trial, buf, pos, opts);
  if (!outcome.ok) return undefined;
  return { outcome, sink };
}
