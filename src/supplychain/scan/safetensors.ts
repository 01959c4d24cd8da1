/**
 * Safetensors header rules: an 8-byte little-endian header length within the format's 100 MB limit, a UTF-8 JSON
 * object, known dtypes, non-negative integer shapes, data_offsets consistent with dtype x shape, and tensors that
 * tile the data buffer exactly (no overlap, no gap, nothing out of bounds); __metadata__ a string-to-string map.
 */
import { ScanContext } from './context.js';

/** Bits per element of each safetensors dtype. */
export const SAFETENSORS_DTYPE_BITS: Readonly<Record<string, number>> = {
  BOOL: 8, U8: 8, I8: 8, F8_E5M2: 8, F8_E4M3: 8, F8_E8M0: 8, I16: 16, U16: 16, F16: 16, BF16: 16, I32: 32, U32: 32, F32: 32,
  C64: 64, F64: 64, I64: 64, U64: 64, F4: 4, F6_E2M3: 6, F6_E3M2: 6,
};

const utf8 = new TextDecoder('utf-8', { fatal: true });

interface Entry {
  name: string;
  begin: number;
  end: number;
}

/** True when the bytes look like a safetensors file (plausible header length followed by '{'). */
export function looksLikeSafetensors(buf: Uint8Array): boolean {
  if (buf.length < 10) return false;
  const n = new DataView(buf.buffer, buf.byteOffset, buf.byteLength).getBigUint64(0, true);
  return n >= 2n && n <= BigInt(buf.length - 8) && buf[8] === 0x7b;
}

/** Scans a safetensors file. Every rule violation is a finding; nothing throws for bad input. */
export function scanSafetensors(ctx: ScanContext, buf: Uint8Array): void {
  const ev = (extra: Record<string, unknown> = {}): Record<string, unknown> & { format: string } => ({ format: 'safetensors', ...extra });
  ctx.record('safetensors', buf.length);
  if (buf.length < 8) {
    ctx.report('safetensors-invalid-header', { metric: 'safetensors.file_bytes', value: buf.length, threshold: 8, detail: 'file shorter than the 8-byte header length', evidence: ev({ offset: 0 }) });
    return;
  }
  const n = new DataView(buf.buffer, buf.byteOffset, buf.byteLength).getBigUint64(0, true);
  if (n > BigInt(ctx.opts.maxHeaderBytes)) {
    ctx.report('safetensors-header-too-large', { metric: 'safetensors.header_bytes', value: n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n.toString(), threshold: ctx.opts.maxHeaderBytes, evidence: ev({ offset: 0 }) });
    return;
  }
  const hlen = Number(n);
  if (8 + hlen > buf.length) {
    ctx.report('safetensors-out-of-bounds', { metric: 'safetensors.header_bytes', value: hlen, threshold: buf.length - 8, detail: 'header runs past the end of the file', evidence: ev({ offset: 0 }) });
    return;
  }
  let header: unknown;
  try {
    const text = utf8.decode(buf.subarray(8, 8 + hlen));
    if (!text.startsWith('{')) throw new Error("the header must start with '{'");
    header = JSON.parse(text);
  } catch (e) {
    ctx.report('safetensors-invalid-header', { metric: 'safetensors.header', value: (e as Error).message, threshold: 'UTF-8 JSON object', detail: 'not UTF-8 JSON', evidence: ev({ offset: 8 }) });
    return;
  }
  if (!header || typeof header !== 'object' || Array.isArray(header)) {
    ctx.report('safetensors-invalid-header', { metric: 'safetensors.header', value: Array.isArray(header) ? 'array' : typeof header, threshold: 'JSON object', detail: 'header is not a JSON object', evidence: ev({ offset: 8 }) });
    return;
  }
  const dataLen = buf.length - 8 - hlen;
  const entries: Entry[] = [];
  for (const [name, info] of Object.entries(header as Record<string, unknown>)) {
    ctx.budget.tick();
    if (name === '__metadata__') {
      const ok = info !== null && typeof info === 'object' && !Array.isArray(info) && Object.values(info as Record<string, unknown>).every((v) => typeof v === 'string');
      if (!ok) ctx.report('safetensors-bad-metadata', { metric: 'safetensors.metadata', value: JSON.stringify(info)?.slice(0, 200) ?? 'undefined', threshold: 'map of strings', evidence: ev({ tensor: name }) });
      continue;
    }
    const t = info as Record<string, unknown> | null;
    if (!t || typeof t !== 'object' || Array.isArray(t) || !('dtype' in t) || !('shape' in t) || !('data_offsets' in t)) {
      ctx.report('safetensors-invalid-header', { metric: 'safetensors.tensor_entry', value: name, threshold: '{dtype, shape, data_offsets}', detail: `entry ${JSON.stringify(name)} lacks dtype, shape or data_offsets`, evidence: ev({ tensor: name }) }, `entry:${name}`);
      continue;
    }
    const bits = typeof t['dtype'] === 'string' ? SAFETENSORS_DTYPE_BITS[t['dtype']] : undefined;
    if (bits === undefined) {
      ctx.report('safetensors-unknown-dtype', { metric: 'safetensors.dtype', value: String(t['dtype']).slice(0, 100), threshold: Object.keys(SAFETENSORS_DTYPE_BITS).join(','), detail: `${name}: ${String(t['dtype']).slice(0, 40)}`, evidence: ev({ tensor: name }) }, `dtype:${name}`);
    }
    const shape = t['shape'];
    let numel: bigint | undefined = 1n;
    if (!Array.isArray(shape) || !shape.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)) {
      ctx.report('safetensors-bad-shape', { metric: 'safetensors.shape', value: JSON.stringify(shape)?.slice(0, 200) ?? 'undefined', threshold: 'list of non-negative integers', detail: name, evidence: ev({ tensor: name }) }, `shape:${name}`);
      numel = undefined;
    } else {
      for (const d of shape as number[]) numel *= BigInt(d);
      if (numel > BigInt(ctx.opts.maxTensorElements)) {
        ctx.report('safetensors-bad-shape', { metric: 'safetensors.elements', value: numel.toString(), threshold: ctx.opts.maxTensorElements, detail: `${name}: ${numel} elements`, evidence: ev({ tensor: name }) }, `shape:${name}`);
      }
    }
    const offs = t['data_offsets'];
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)) {
      ctx.report('safetensors-invalid-header', { metric: 'safetensors.data_offsets', value: JSON.stringify(offs)?.slice(0, 200) ?? 'undefined', threshold: '[begin, end] non-negative integers', detail: `${name}: bad data_offsets`, evidence: ev({ tensor: name }) }, `offs:${name}`);
      continue;
    }
    const [begin, end] = offs as [number, number];
    if (begin > end) {
      ctx.report('safetensors-offsets-mismatch', { metric: 'safetensors.data_offsets', value: `[${begin}, ${end}]`, threshold: 'begin <= end', detail: `${name}: begin after end`, evidence: ev({ tensor: name }) }, `offs:${name}`);
      continue;
    }
    if (bits !== undefined && numel !== undefined) {
      const bitsTotal = numel * BigInt(bits);
      const want = bitsTotal % 8n === 0n ? bitsTotal / 8n : -1n;
      if (want !== BigInt(end - begin)) {
        ctx.report('safetensors-offsets-mismatch', { metric: 'safetensors.tensor_bytes', value: end - begin, threshold: want < 0n ? 'whole bytes' : want <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(want) : want.toString(), detail: `${name}: ${end - begin} bytes for ${String(t['dtype'])} ${JSON.stringify(shape)}`, evidence: ev({ tensor: name }) }, `size:${name}`);
      }
    }
    if (end > dataLen) {
      ctx.report('safetensors-out-of-bounds', { metric: 'safetensors.data_offsets', value: end, threshold: dataLen, detail: `${name} ends at ${end}, the data buffer holds ${dataLen} bytes`, evidence: ev({ tensor: name, offset: 8 + hlen + Math.min(begin, dataLen) }) }, `oob:${name}`);
    }
    entries.push({ name, begin, end });
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let prev: Entry | undefined;
  for (const e of entries) {
    if (e.begin < cursor && prev) {
      ctx.report('safetensors-overlap', { metric: 'safetensors.data_offsets', value: `${prev.name} [${prev.begin}, ${prev.end}] and ${e.name} [${e.begin}, ${e.end}]`, threshold: 'disjoint ranges', detail: `${prev.name} and ${e.name}`, evidence: ev({ tensor: e.name, offset: 8 + hlen + e.begin }) }, `overlap:${e.name}`);
    } else if (e.begin > cursor) {
      ctx.report('safetensors-gap', { metric: 'safetensors.unindexed_bytes', value: e.begin - cursor, threshold: 0, detail: `${e.begin - cursor} bytes before ${e.name}`, evidence: ev({ tensor: e.name, offset: 8 + hlen + cursor }) }, `gap:${e.name}`);
    }
    if (e.end >= cursor) {
      cursor = e.end;
      prev = e;
    }
  }
  if (cursor < dataLen) {
    ctx.report('safetensors-gap', { metric: 'safetensors.unindexed_bytes', value: dataLen - cursor, threshold: 0, detail: `${dataLen - cursor} bytes after the last tensor`, evidence: ev({ offset: 8 + hlen + cursor }) }, 'gap:end');
  }
}
