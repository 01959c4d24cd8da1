/**
 * The scanner's findings: the rule catalog (one id per kind of problem, with its default severity and its
 * MITRE ATLAS / OWASP ML Top 10 mapping) and the sink that collects findings during a scan, merging repeats.
 */

/** Finding severities, most severe first. */
export type Severity = 'critical' | 'high' | 'medium' | 'low' | 'info';

/** Severities in decreasing order. */
export const SEVERITIES: readonly Severity[] = ['critical', 'high', 'medium', 'low', 'info'];

/** A number that grows with severity (info 0 .. critical 4), for comparisons. */
export function severityRank(s: Severity): number {
  return 4 - SEVERITIES.indexOf(s);
}

/** The more severe of two severities. */
export function maxSeverity(a: Severity, b: Severity): Severity {
  return severityRank(a) >= severityRank(b) ? a : b;
}

/** Where a finding was seen. `file` is the scanned file; `innerPath` the member inside an archive, if any. */
export interface ScanEvidence {
  /** The file on disk (or the name given to scanBytes). */
  file: string;
  /** The member path inside archives, levels joined by `/` (e.g. `archive/data.pkl`). */
  innerPath?: string;
  /** Byte offset of the offending opcode / record, counted from the start of the innermost member (or file). */
  offset?: number;
  /** Index of the pickle in a stream of stacked pickles (0 = first), when there are several. */
  pickleIndex?: number;
  /** The format being parsed (pickle, zip, safetensors, onnx, npy, keras, hdf5, tar, ...). */
  format?: string;
  /** Free-form details: the opcode, the callable, the path, the limit. */
  [key: string]: unknown;
}

/** A typed finding (DESIGN.md section 4). */
export interface ScanFinding {
  id: string;
  title: string;
  severity: Severity;
  /** What was measured (e.g. `pickle.callable`, `safetensors.header_bytes`). */
  metric: string;
  /** The measured value (a callable name, a size, a path). */
  value: number | string;
  /** The limit or policy it was judged against. */
  threshold: number | string | null;
  /** MITRE ATLAS technique ids. */
  atlas: string[];
  /** OWASP ML Top 10 ids. */
  owasp: string[];
  evidence: ScanEvidence;
}

/** One rule of the catalog. */
export interface ScanRule {
  id: string;
  title: string;
  /** Default severity; some rules set the severity per finding (documented in `help`). */
  severity: Severity;
  /** One paragraph for docs and SARIF. */
  help: string;
  atlas: string[];
  owasp: string[];
}

const SUPPLY = ['AML.T0010', 'AML.T0011.000'];
const SUPPLY_DOS = ['AML.T0010', 'AML.T0011.000', 'AML.T0029'];
const ML06 = ['ML06'];

function rule(id: string, severity: Severity, title: string, help: string, atlas = SUPPLY): ScanRule {
  return { id, title, severity, help, atlas, owasp: ML06 };
}

/** The catalog of scanner rules, keyed by id. */
export const SCAN_RULES = {
  'pickle-dangerous-callable': rule('pickle-dangerous-callable', 'critical', 'Pickle imports a dangerous callable',
    'A GLOBAL / STACK_GLOBAL / INST opcode imports a callable on the blocklist (command execution, code evaluation, file or network access, nested deserialization). Loading the file runs or exposes it. Severity is the blocklist entry\'s: critical for code or command execution, high for file, network and reflection helpers.'),
  'pickle-unknown-callable': rule('pickle-unknown-callable', 'low', 'Pickle references a callable outside the allowlist',
    'A callable that is neither on the allowlist of what legitimate checkpoints use nor on the blocklist. Low when it is only referenced or instantiated (NEWOBJ, typical of a class in a full nn.Module save); medium when it is called with arguments (REDUCE, INST, OBJ); high when its name looks like an execution helper.'),
  'pickle-unresolved-callable': rule('pickle-unresolved-callable', 'high', 'Pickle calls something that cannot be resolved statically',
    'REDUCE, NEWOBJ, OBJ or STACK_GLOBAL operates on a value that is not a plain imported global (the result of another call, a persistent id, a value computed at load time). The scanner cannot tell what runs.'),
  'pickle-extension-code': rule('pickle-extension-code', 'medium', 'Pickle uses the copyreg extension registry',
    'EXT1 / EXT2 / EXT4 fetch an object by a numeric code from copyreg\'s extension registry of the loading process; what it resolves to cannot be known from the file.'),
  'pickle-state-injection': rule('pickle-state-injection', 'high', 'Pickle mutates an imported object or sets special attributes',
    'BUILD, SETITEM(S), APPEND(S) or ADDITEMS act on an imported global (monkey-patching a module or class), or a BUILD state sets a dunder attribute such as __setstate__ (the "BUILD __setstate__" trick that turns a later BUILD into a call).'),
  'pickle-trailing-data': rule('pickle-trailing-data', 'info', 'Data after the end of the pickle',
    'Bytes follow the STOP opcode and do not start another pickle. pickle.load ignores them; other loaders may not.'),
  'npy-object-array': rule('npy-object-array', 'low', 'NumPy array of Python objects',
    'An .npy array with an object dtype stores its elements as a pickle, and numpy.load needs allow_pickle=True to read it. The embedded pickle is scanned too.'),
  'torch-storage-mismatch': rule('torch-storage-mismatch', 'low', 'PyTorch storage record does not match its data',
    'A storage referenced by the checkpoint pickle is missing, or its size disagrees with the data record.'),
  'archive-bomb': rule('archive-bomb', 'high', 'Archive exceeds a decompression limit (zip bomb)',
    'An archive declares more entries, more bytes per entry or in total, a higher compression ratio than the limits, or entries whose data overlap. It is refused and its contents are not scanned.', SUPPLY_DOS),
  'archive-path-traversal': rule('archive-path-traversal', 'high', 'Archive member path escapes the extraction folder',
    'A zip or tar member name is absolute or contains `..`; extracting it writes outside the target folder (zip slip).'),
  'archive-symlink': rule('archive-symlink', 'medium', 'Archive contains a symbolic link',
    'A member is a symbolic (or hard) link; extraction can make later members land outside the folder.'),
  'archive-nesting-limit': rule('archive-nesting-limit', 'medium', 'Archives nested deeper than the limit',
    'An archive inside an archive beyond the depth limit is not opened, so its contents are not scanned.', SUPPLY_DOS),
  'compressed-unsupported': rule('compressed-unsupported', 'medium', 'Compressed stream the scanner cannot open',
    'The file is compressed with a method the scanner does not decompress (bz2, xz, lzma, lz4), so its contents were not scanned.'),
  'onnx-external-data-absolute': rule('onnx-external-data-absolute', 'high', 'ONNX external data uses an absolute path',
    'An initializer stores its data in an external file named by an absolute path; loading the model reads that file (arbitrary file read).'),
  'onnx-external-data-traversal': rule('onnx-external-data-traversal', 'high', 'ONNX external data path leaves the model folder',
    'An external-data location contains `..` segments that lead outside the model\'s folder.'),
  'onnx-external-data-symlink': rule('onnx-external-data-symlink', 'high', 'ONNX external data is a link out of the model folder',
    'An external-data location is inside the folder lexically but a symbolic link resolves it outside.'),
  'onnx-external-data-missing': rule('onnx-external-data-missing', 'low', 'ONNX external data file is missing or too short',
    'An external-data file does not exist next to the model, or offset + length run past its end.'),
  'onnx-custom-domain': rule('onnx-custom-domain', 'medium', 'ONNX graph uses a custom operator domain',
    'A node or opset import uses a domain other than "", ai.onnx, ai.onnx.ml and com.microsoft; running it needs a custom-op library, which is native code.'),
  'onnx-dimension-limit': rule('onnx-dimension-limit', 'medium', 'ONNX tensor has absurd dimensions',
    'A tensor or input declares a negative dimension or dimensions whose product overflows or exceeds the element limit (denial of service through allocation).', SUPPLY_DOS),
  'onnx-initializer-size-mismatch': rule('onnx-initializer-size-mismatch', 'medium', 'ONNX initializer size disagrees with its bytes',
    'The number of elements declared by an initializer\'s dims and data type does not match the bytes or values it carries.'),
  'safetensors-header-too-large': rule('safetensors-header-too-large', 'high', 'Safetensors header length over the limit',
    'The 8-byte header length exceeds the 100 MB limit of the format (denial of service on load).', SUPPLY_DOS),
  'safetensors-invalid-header': rule('safetensors-invalid-header', 'medium', 'Safetensors header is not a valid JSON object of tensor entries',
    'The header is not UTF-8 JSON, not an object, or an entry lacks dtype / shape / data_offsets.'),
  'safetensors-unknown-dtype': rule('safetensors-unknown-dtype', 'medium', 'Safetensors tensor has an unknown dtype',
    'A tensor declares a dtype that is not part of the format.'),
  'safetensors-bad-shape': rule('safetensors-bad-shape', 'medium', 'Safetensors tensor shape is invalid',
    'A shape is not a list of non-negative integers, or its element count is absurd.', SUPPLY_DOS),
  'safetensors-offsets-mismatch': rule('safetensors-offsets-mismatch', 'medium', 'Safetensors data_offsets disagree with dtype and shape',
    'end - begin differs from the byte size implied by the dtype and shape, or begin > end.'),
  'safetensors-overlap': rule('safetensors-overlap', 'medium', 'Safetensors tensors overlap',
    'Two tensors\' byte ranges overlap; the format requires disjoint ranges (parser differentials, aliasing).'),
  'safetensors-gap': rule('safetensors-gap', 'medium', 'Safetensors data has a gap',
    'The byte buffer is not entirely indexed: bytes between or after tensors belong to no tensor (hidden data).'),
  'safetensors-out-of-bounds': rule('safetensors-out-of-bounds', 'high', 'Safetensors header or tensor lies outside the file',
    'The header length or a tensor\'s data_offsets point past the end of the file (out-of-bounds read in a careless loader).', SUPPLY_DOS),
  'safetensors-bad-metadata': rule('safetensors-bad-metadata', 'low', 'Safetensors __metadata__ is not a string map',
    '__metadata__ must map strings to strings.'),
  'keras-lambda-layer': rule('keras-lambda-layer', 'high', 'Keras model contains a Lambda layer',
    'A Lambda layer stores Python bytecode (base64 of marshal data) that runs when the model is loaded with safe_mode off, or Python source to evaluate.'),
  'keras-custom-object': rule('keras-custom-object', 'medium', 'Keras config registers a custom object or unknown module',
    'config.json names a module outside Keras / TensorFlow, or a custom registered name; loading imports that module. Critical when the module is on the blocklist (os, subprocess, builtins, ...).'),
  'keras-h5-lambda': rule('keras-h5-lambda', 'high', 'Legacy Keras HDF5 file contains a Lambda layer (needs review)',
    'The HDF5 model config holds a Lambda layer, whose marshalled bytecode legacy Keras runs on load.'),
  'symlink-escape': rule('symlink-escape', 'high', 'Symbolic link leaves the scanned folder',
    'A link inside a scanned folder points outside it; it was not followed.'),
  'parse-error': rule('parse-error', 'medium', 'File could not be parsed',
    'The file (or a member) is malformed where the scanner parsed it, so it could not be fully checked. A loader may still run whatever precedes the error.'),
  'scan-limit-exceeded': rule('scan-limit-exceeded', 'medium', 'Scan stopped at a safety limit',
    'The scan hit a limit (steps, memo or stack size, file size); the rest of the file was not checked.', SUPPLY_DOS),
  'scanner-internal-error': rule('scanner-internal-error', 'medium', 'Scanner failed on this file',
    'An unexpected error inside the scanner; the file was not fully checked. Please report it.'),
} as const satisfies Record<string, ScanRule>;

/** A rule id of the catalog. */
export type ScanRuleId = keyof typeof SCAN_RULES;

/** What a producer gives to report a finding; the rest comes from the catalog. */
export interface FindingInput {
  severity?: Severity;
  metric: string;
  value: number | string;
  threshold?: number | string | null;
  /** Extra title detail appended after the rule title. */
  detail?: string;
  evidence: Omit<ScanEvidence, 'file'> & { file?: string };
}

/**
 * Collects findings for one scan. Findings with the same merge key are folded into one (the count and the
 * highest severity kept), so a pickle that imports os.system a thousand times gives one finding.
 */
export class FindingSink {
  readonly findings: ScanFinding[] = [];
  private readonly byKey = new Map<string, ScanFinding>();
  /** Cap on distinct findings, so hostile input cannot grow the report without bound. */
  readonly maxFindings: number;
  dropped = 0;

  constructor(maxFindings = 10000) {
    this.maxFindings = maxFindings;
  }

  /**
   * Adds a finding, or folds it into an earlier one with the same `mergeKey`.
   * @returns the stored finding (so callers can raise its severity later), or undefined when the cap is hit
   */
  add(id: ScanRuleId, file: string, input: FindingInput, mergeKey?: string): ScanFinding | undefined {
    const r = SCAN_RULES[id];
    const key = mergeKey === undefined ? undefined : `${id}\u0000${file}\u0000${input.evidence.innerPath ?? ''}\u0000${mergeKey}`;
    if (key !== undefined) {
      const prev = this.byKey.get(key);
      if (prev) {
        prev.severity = maxSeverity(prev.severity, input.severity ?? r.severity);
        prev.evidence['occurrences'] = ((prev.evidence['occurrences'] as number | undefined) ?? 1) + 1;
        return prev;
      }
    }
    if (this.findings.length >= this.maxFindings) {
      this.dropped++;
      return undefined;
    }
    const f: ScanFinding = {
      id,
      title: input.detail ? `${r.title}: ${input.detail}` : r.title,
      severity: input.severity ?? r.severity,
      metric: input.metric,
      value: input.value,
      threshold: input.threshold ?? null,
      atlas: [...r.atlas],
      owasp: [...r.owasp],
      evidence: { ...input.evidence, file: input.evidence.file ?? file },
    };
    this.findings.push(f);
    if (key !== undefined) this.byKey.set(key, f);
    return f;
  }
}
