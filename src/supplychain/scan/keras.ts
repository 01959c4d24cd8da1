/**
 * Keras: the config.json of `.keras` archives (Lambda layers and the modules the config makes Keras import) and
 * legacy HDF5 `.h5` files (a byte search for a Lambda layer in the stored model config).
 */
import { ScanContext, scanParseError } from './context.js';
import { isBlockedModule } from './policy.js';

/** Module roots that Keras configs legitimately name. */
const KERAS_MODULE_ROOTS = ['keras', 'tensorflow', 'tf_keras', 'keras_nlp', 'keras_hub', 'keras_cv', 'keras_core', 'tf'];

const MAX_JSON_DEPTH = 256;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Printable ASCII runs of a marshalled code object: the names and constants a Lambda uses. */
function codeStrings(b64: string): string[] {
  let bytes: Buffer;
  try {
    bytes = Buffer.from(b64, 'base64');
  } catch {
    return [];
  }
  const out: string[] = [];
  let cur = '';
  for (const c of bytes) {
    if (c >= 0x20 && c < 0x7f) cur += String.fromCharCode(c);
    else {
      if (cur.length >= 2) out.push(cur);
      cur = '';
    }
    if (out.length >= 40) break;
  }
  if (cur.length >= 2 && out.length < 40) out.push(cur);
  return out;
}

function lambdaCode(cfg: unknown): { code?: string; kind: string } {
  if (!cfg || typeof cfg !== 'object') return { kind: 'unknown' };
  const fn = (cfg as Record<string, unknown>)['function'];
  if (typeof fn === 'string') return { code: fn, kind: 'named function or source' };
  if (Array.isArray(fn) && typeof fn[0] === 'string') return { code: fn[0], kind: 'marshalled bytecode (Keras 2)' };
  if (fn && typeof fn === 'object') {
    const inner = (fn as Record<string, unknown>)['config'];
    if (inner && typeof inner === 'object' && typeof (inner as Record<string, unknown>)['code'] === 'string') {
      return { code: (inner as Record<string, unknown>)['code'] as string, kind: 'marshalled bytecode (Keras 3 __lambda__)' };
    }
    if (typeof inner === 'string') return { code: inner, kind: 'named function' };
  }
  return { kind: 'unknown' };
}

/**
 * Scans a Keras config.json: every Lambda layer, and every `module` / `registered_name` that is not Keras'.
 * @throws BulwarkError BULWARK_E_SCAN_PARSE when the config is not UTF-8 JSON
 */
export function scanKerasConfig(ctx: ScanContext, bytes: Uint8Array): void {
  let doc: unknown;
  try {
    doc = JSON.parse(utf8.decode(bytes));
  } catch (e) {
    scanParseError('keras', `config.json is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  ctx.record('keras-config', bytes.length);
  const walk = (node: unknown, path: string, depth: number): void => {
    ctx.budget.tick();
    if (depth > MAX_JSON_DEPTH) scanParseError('keras', `config nested deeper than ${MAX_JSON_DEPTH}`);
    if (Array.isArray(node)) {
      node.forEach((v, i) => walk(v, `${path}[${i}]`, depth + 1));
      return;
    }
    if (!node || typeof node !== 'object') return;
    const o = node as Record<string, unknown>;
    const cls = o['class_name'];
    const cfg = o['config'];
    const layerName = cfg && typeof cfg === 'object' ? (cfg as Record<string, unknown>)['name'] : undefined;
    if (cls === 'Lambda') {
      const { code, kind } = lambdaCode(cfg);
      ctx.report('keras-lambda-layer', {
        metric: 'keras.lambda_layer',
        value: typeof layerName === 'string' ? layerName : path,
        threshold: 'no Lambda layers',
        detail: typeof layerName === 'string' ? layerName : path,
        evidence: {
          format: 'keras',
          jsonPath: path,
          codeKind: kind,
          ...(code !== undefined ? { code: code.length > 400 ? code.slice(0, 400) + '...' : code, codeStrings: codeStrings(code) } : {}),
        },
      }, path);
    }
    const mod = o['module'];
    const reg = o['registered_name'];
    if (typeof mod === 'string' && typeof cls === 'string') {
      const root = mod.split('.')[0] ?? mod;
      if (isBlockedModule(mod) || isBlockedModule(root)) {
        ctx.report('keras-custom-object', { severity: 'critical', metric: 'keras.module', value: `${mod}.${cls}`, threshold: 'Keras / TensorFlow modules', detail: `${mod}.${cls} (blocked module)`, evidence: { format: 'keras', jsonPath: path, module: mod, className: cls } }, `${mod}.${cls}`);
      } else if (!KERAS_MODULE_ROOTS.includes(root)) {
        ctx.report('keras-custom-object', { metric: 'keras.module', value: `${mod}.${cls}`, threshold: 'Keras / TensorFlow modules', detail: `${mod}.${cls}`, evidence: { format: 'keras', jsonPath: path, module: mod, className: cls } }, `${mod}.${cls}`);
      }
    }
    if (typeof reg === 'string' && reg.includes('>')) {
      ctx.report('keras-custom-object', { metric: 'keras.registered_name', value: reg, threshold: 'built-in Keras objects', detail: `custom registration ${reg}`, evidence: { format: 'keras', jsonPath: path, registeredName: reg } }, `reg:${reg}`);
    }
    for (const [k, v] of Object.entries(o)) walk(v, `${path}.${k}`, depth + 1);
  };
  walk(doc, '$', 0);
}

const HDF5_MAGIC = Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]);

/** True when an HDF5 superblock signature sits at 0, 512, 1024, 2048, ... (the places HDF5 allows). */
export function isHdf5(buf: Uint8Array): boolean {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  for (let off = 0; off + 8 <= b.length && off <= 1 << 20; off = off === 0 ? 512 : off * 2) {
    if (b.subarray(off, off + 8).equals(HDF5_MAGIC)) return true;
  }
  return false;
}

const LAMBDA_PATTERNS = ['"class_name": "Lambda"', '"class_name":"Lambda"'].map((s) => Buffer.from(s, 'latin1'));

/** Scans a legacy HDF5 Keras file for Lambda layers in its stored model config (a byte search). */
export function scanHdf5(ctx: ScanContext, buf: Uint8Array): void {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  ctx.record('hdf5', buf.length);
  let count = 0;
  for (const pat of LAMBDA_PATTERNS) {
    for (let at = b.indexOf(pat); at >= 0 && count < 1000; at = b.indexOf(pat, at + pat.length)) {
      ctx.budget.tick();
      count++;
      const window = b.subarray(at, Math.min(b.length, at + 65536)).toString('latin1');
      const name = /"name":\s*"([^"]{1,200})"/.exec(window)?.[1];
      const code = /"function":\s*\[\s*"([A-Za-z0-9+/=\\n]{1,100000})"/.exec(window)?.[1]?.replace(/\\n/g, '');
      ctx.report('keras-h5-lambda', {
        metric: 'keras.lambda_layer',
        value: name ?? `offset ${at}`,
        threshold: 'no Lambda layers',
        detail: name ?? `at offset ${at}`,
        evidence: { format: 'hdf5', offset: at, ...(code ? { code: code.length > 400 ? code.slice(0, 400) + '...' : code, codeStrings: codeStrings(code) } : {}) },
      }, `${at}`);
    }
  }
}
