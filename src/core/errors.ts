/**
 * One registry of Bulwark's error codes. Every error a user can see carries a code, a message that names the
 * argument at fault, a hint that says how to fix it, and the exit code (CLI) or HTTP status (services) it maps to.
 * docs/ERRORS.md is generated from this table and a test keeps the two in sync.
 */

export interface ErrorSpec {
  /** Exit code of the CLI when this error ends a command. */
  readonly exit: number;
  /** HTTP status when this error ends a request. */
  readonly status: number;
  /** What the code means, one line (docs). */
  readonly summary: string;
  /** The default hint, used when the thrower gives none. */
  readonly hint: string;
}

export const ERROR_CODES = {
  BULWARK_E_USAGE: { exit: 2, status: 400, summary: 'A command line or option is malformed.', hint: 'Run `bulwark <command> --help` for the accepted flags.' },
  BULWARK_E_ARG: { exit: 2, status: 400, summary: 'An argument has a value out of its accepted range or type.', hint: 'Check the value against the option documentation.' },
  BULWARK_E_FILE_NOT_FOUND: { exit: 2, status: 404, summary: 'A file named by the user does not exist.', hint: 'Check the path; relative paths are resolved from the current directory.' },
  BULWARK_E_FILE_READ: { exit: 2, status: 400, summary: 'A file exists but cannot be read.', hint: 'Check permissions and that the path is a regular file.' },
  BULWARK_E_PATH_ESCAPE: { exit: 2, status: 400, summary: 'A path taken from an input points outside its allowed folder.', hint: 'Keep referenced files inside the model folder; absolute paths, `..` and links out are refused.' },
  BULWARK_E_ONNX_PARSE: { exit: 2, status: 400, summary: 'A file is not a readable ONNX model (truncated, corrupt, or another format).', hint: 'Re-export the model with torch.onnx.export / tf2onnx / skl2onnx and check it with onnx.checker.' },
  BULWARK_E_ONNX_INVALID: { exit: 2, status: 400, summary: 'An ONNX model parses but breaks a rule of the format.', hint: 'Run onnx.checker.check_model on the file to see the offending node.' },
  BULWARK_E_OPSET: { exit: 2, status: 400, summary: 'The model imports an opset Bulwark does not support.', hint: 'Export with an opset from 11 to 21 (torch.onnx.export(..., opset_version=17)).' },
  BULWARK_E_UNSUPPORTED_OP: { exit: 2, status: 400, summary: 'A node has no gradient rule, so the requested gradient cannot be built.', hint: 'Use a black-box method (square, hsj, or a gradient estimator), or re-export the model with supported ops.' },
  BULWARK_E_SHAPE: { exit: 2, status: 400, summary: 'A tensor shape does not fit what the model or operation expects.', hint: 'Compare the shape with `bulwark info <model>`.' },
  BULWARK_E_NONFINITE: { exit: 2, status: 400, summary: 'An input, or a model\'s result on it (output, loss, gradient), holds NaN or infinite values.', hint: 'Clean or clip the data before passing it in; a model that computes NaN needs fixing first.' },
  BULWARK_E_LABELS: { exit: 2, status: 400, summary: 'Labels are missing, not integers, or out of the model\'s class range.', hint: 'Labels must be integer class ids in [0, numClasses).' },
  BULWARK_E_DTYPE: { exit: 2, status: 400, summary: 'A tensor has a data type the operation cannot take.', hint: 'Convert the array (for NumPy: x.astype(np.float32)).' },
  BULWARK_E_NPY: { exit: 2, status: 400, summary: 'A .npy or .npz file is malformed or uses an unsupported layout.', hint: 'Save with numpy.save / numpy.savez from a numeric (not object) array.' },
  BULWARK_E_DATA_SPEC: { exit: 2, status: 400, summary: 'A data spec (like mnist:test[0:1000]) cannot be parsed or resolved.', hint: 'Use <dataset>:<split>[start:end] with dataset mnist or fashion-mnist, or a path to .npz/.npy/.csv.' },
  BULWARK_E_DATA_FORMAT: { exit: 2, status: 400, summary: 'A data file (IDX, CSV, image) is malformed.', hint: 'Check the file is complete and in the documented format.' },
  BULWARK_E_ARCH: { exit: 2, status: 400, summary: 'An architecture name or spec is unknown or malformed.', hint: 'Use one of the built-in architectures listed by `bulwark train --help`.' },
  BULWARK_E_MODEL: { exit: 2, status: 400, summary: 'A model cannot serve the requested operation.', hint: 'Check the model\'s inputs and outputs with `bulwark info`.' },
  BULWARK_E_RUNTIME: { exit: 2, status: 500, summary: 'onnxruntime refused to load or run a graph.', hint: 'Check that the model runs in onnxruntime; the message holds its reason.' },
  BULWARK_E_SCAN_PARSE: { exit: 2, status: 400, summary: 'A model file given to the scanner is malformed where it was being parsed (pickle, safetensors, npy, tar, Keras config).', hint: 'The scanner reports this as a parse-error finding; re-create the file with its framework, or treat it as untrusted.' },
  BULWARK_E_LIMIT: { exit: 2, status: 413, summary: 'An input exceeds a safety limit (size, dimensions, element count).', hint: 'Split the input or raise the limit explicitly if the size is legitimate.' },
  BULWARK_E_FILE_WRITE: { exit: 2, status: 500, summary: 'An output file cannot be written.', hint: 'Check that the output folder exists and is writable and that the disk has room.' },
  BULWARK_E_KEY: { exit: 2, status: 400, summary: 'A key file is malformed, inconsistent, or of the wrong kind (public where a private key is needed).', hint: 'Use the files written by `bulwark keygen`: KEY (private) to sign and decrypt, KEY.pub to verify and encrypt.' },
  BULWARK_E_SIG_FORMAT: { exit: 2, status: 400, summary: 'A signature file is not a well-formed DSSE envelope.', hint: 'Pass the .sig file written by `bulwark sign` with --sig.' },
  BULWARK_E_SIGNATURE: { exit: 1, status: 422, summary: 'A signature does not verify against the model and the key.', hint: 'The model, the signature or the key differs from what was signed; re-sign only if you trust the model\'s origin.' },
  BULWARK_E_ENC_FORMAT: { exit: 2, status: 400, summary: 'A file is not a Bulwark encrypted file, or uses an unsupported format version.', hint: 'Pass a file written by `bulwark encrypt`.' },
  BULWARK_E_DECRYPT: { exit: 1, status: 422, summary: 'Decryption failed authentication: wrong key, or the file was modified, truncated or reordered.', hint: 'Use the private key whose KEY.pub encrypted the file; if it is the right key, the file was tampered with or damaged.' },
  BULWARK_E_QUERY_BUDGET: { exit: 2, status: 429, summary: 'A model query budget would be exceeded (remote model or gradient estimator).', hint: 'Raise the budget (--queries / maxQueries), attack fewer examples, or lower the attack\'s per-example query limit.' },
  BULWARK_E_REMOTE_URL: { exit: 2, status: 400, summary: 'A remote model URL is not an Open Inference Protocol (KServe v2) model address.', hint: 'Use http(s)://host[:port]/v2/models/<name>[/versions/<v>] (the /infer suffix is optional).' },
  BULWARK_E_REMOTE_UNAVAILABLE: { exit: 2, status: 502, summary: 'A remote model could not be reached, or kept failing (network error or 5xx) after the retries.', hint: 'Check that the server is up (GET /v2/health/ready) and reachable; for flaky endpoints raise the retries or the timeout (bulwark attack --retries N --timeout SECONDS; library options retries, timeoutMs).' },
  BULWARK_E_REMOTE_TIMEOUT: { exit: 2, status: 504, summary: 'A remote model did not answer within the timeout, on every attempt.', hint: 'Raise the timeout or lower the examples per request (bulwark attack --timeout SECONDS --batch-size B; library options timeoutMs, maxBatchSize), set the attempts with --retries N, or check the server\'s load.' },
  BULWARK_E_REMOTE_REJECTED: { exit: 2, status: 502, summary: 'A remote model refused a request with a 4xx status other than 429, or answered with a 3xx redirect, which Bulwark does not follow (neither is retried).', hint: 'Read the server\'s error message: the model name, version, input name, shape or datatype may not match, or access is denied (send credentials with bulwark attack --header \'Authorization: …\' or the BULWARK_REMOTE_HEADERS environment variable).' },
  BULWARK_E_REMOTE_RESPONSE: { exit: 2, status: 502, summary: 'A remote model answered with a malformed response (not JSON, missing outputs, wrong shape or datatype, non-finite values).', hint: 'Check that the endpoint speaks the Open Inference Protocol (KServe v2) and that its output is one [N, K] numeric tensor.' },
  BULWARK_E_REGISTRY_NOT_FOUND: { exit: 2, status: 404, summary: 'A model, version or alias named in a registry command does not exist.', hint: 'List what the registry holds with `bulwark registry list [<name>]`.' },
  BULWARK_E_REGISTRY_CONFLICT: { exit: 2, status: 409, summary: 'A registry write would overwrite something that must not change (an existing version, or a name that is both a version and an alias).', hint: 'Versions are immutable: push under a new version, or move an alias with `bulwark registry alias`.' },
  BULWARK_E_REGISTRY_POLICY: { exit: 1, status: 403, summary: 'The registry policy refused a model (unsigned, signed by an untrusted key, a signature that does not verify, or unsafe scan findings).', hint: 'Sign the model with a trusted key (`bulwark sign`) and check it with `bulwark scan-file`; the message names the rule that refused it.' },
  BULWARK_E_REGISTRY_INTEGRITY: { exit: 1, status: 422, summary: 'Stored registry data does not match its digest or metadata (a blob was modified, truncated or removed).', hint: 'Run `bulwark registry verify` to list every damaged entry, and restore the blobs from a backup.' },
  BULWARK_E_REGISTRY_CONFIG: { exit: 2, status: 400, summary: 'A registry policy file, database URL or registry option is malformed.', hint: 'See docs/REGISTRY.md for the policy file fields and the accepted --db forms (a SQLite path or postgres://...).' },
  BULWARK_E_DB: { exit: 2, status: 503, summary: 'The registry database cannot be opened, reached or migrated.', hint: 'Check that the database server is running and the --db URL (host, port, database, user) is right; for SQLite, that the folder is writable.' },
  BULWARK_E_DP_ACCOUNTING: { exit: 2, status: 400, summary: 'A privacy accounting request cannot be met: no noise level reaches the target epsilon, or the requested precision is out of reach.', hint: 'Raise the target epsilon, lower the steps or the sample rate, or relax the accountant precision (--eps-error).' },
  BULWARK_E_DP_UNSUPPORTED: { exit: 2, status: 400, summary: 'A model or option cannot be trained with DP-SGD (layers with batch statistics such as BatchNorm).', hint: 'Use an architecture without BatchNorm (mlp, cnn-small, or a spec without bn and res layers).' },
  BULWARK_E_GATE: { exit: 2, status: 400, summary: 'A CI gate (--fail-under or --fail-over metric=value) is malformed, names an unknown metric, or has a value out of range.', hint: 'Write --fail-under robust-accuracy=0.5, --fail-under clean-accuracy=90% or --fail-over mia-tpr-at-1fpr=0.05; `bulwark scan --help` lists the metrics.' },
  BULWARK_E_SMOOTHING: { exit: 2, status: 400, summary: 'A randomized-smoothing setting is invalid (sigma <= 0, n, n0 or alpha out of range).', hint: 'Use the noise level the model was trained with (--sigma > 0), n >= 1000 and alpha in (0, 1); see docs/HARDENING.md.' },
  BULWARK_E_DETECTOR: { exit: 2, status: 400, summary: 'A detector or defense is used before it is fitted, or fitted on unusable data.', hint: 'Call fit() on clean examples (at least 20) before score() or decide().' },
  BULWARK_E_SQUEEZER: { exit: 2, status: 400, summary: 'A feature-squeezing squeezer spec is unknown or has a parameter out of range.', hint: 'Write squeezers as a comma-separated list of bit:B (1..16), median:K (1..15) and jpeg:Q (> 0), e.g. --squeezers bit:1,median:2.' },
  BULWARK_E_DETECTOR_FILE: { exit: 2, status: 400, summary: 'A detector file is not valid JSON, has an unknown format, or has missing or out-of-range fields.', hint: 'Pass a file written by `bulwark detect fit`, or fit the detector again.' },
  BULWARK_E_DETECTOR_MODEL: { exit: 2, status: 409, summary: 'A detector file was fitted for another model (its model sha256 differs from the model given).', hint: 'Score with the model the detector was fitted on, or run `bulwark detect fit` for this model.' },
  BULWARK_E_SISA_STATE: { exit: 2, status: 409, summary: 'A SISA unlearning folder is missing, malformed, already in use, or does not match the data it is given.', hint: 'Train a new ensemble with `bulwark unlearn --train --data SPEC --out DIR` into an empty folder, and forget with the same data it was trained on.' },
  BULWARK_E_INTERNAL: { exit: 70, status: 500, summary: 'A bug in Bulwark.', hint: 'Please report it with the command line that produced it.' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** The error type every Bulwark API throws for a problem the user can act on. */
export class BulwarkError extends Error {
  readonly code: ErrorCode;
  readonly hint: string;
  readonly details: Record<string, unknown> | undefined;

  /**
   * @param code a registered error code
   * @param message what went wrong, naming the argument at fault
   * @param options an optional hint overriding the code's default, structured details, and a cause
   */
  constructor(code: ErrorCode, message: string, options: { hint?: string; details?: Record<string, unknown>; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'BulwarkError';
    this.code = code;
    this.hint = options.hint ?? ERROR_CODES[code].hint;
    this.details = options.details;
  }

  get exitCode(): number {
    return ERROR_CODES[this.code].exit;
  }

  get httpStatus(): number {
    return ERROR_CODES[this.code].status;
  }

  toJSON(): { code: ErrorCode; message: string; hint: string; details?: Record<string, unknown> } {
    return { code: this.code, message: this.message, hint: this.hint, ...(this.details ? { details: this.details } : {}) };
  }
}

/** Throws a BulwarkError with the given code unless `cond` holds. */
export function check(cond: unknown, code: ErrorCode, message: string | (() => string), hint?: string): asserts cond {
  if (!cond) throw new BulwarkError(code, typeof message === 'function' ? message() : message, hint === undefined ? {} : { hint });
}

/**
 * Runs `load` and prefixes `flag` to the message of any BulwarkError it throws (code, hint and details kept), so a
 * missing or malformed file reads "--data: npz file: no such file: x.npz". Messages that already start with the flag
 * are left alone.
 */
export async function namingFlag<T>(flag: string, load: () => T | Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (e) {
    throw flagError(flag, e);
  }
}

/** {@link namingFlag} for synchronous loaders. */
export function namingFlagSync<T>(flag: string, load: () => T): T {
  try {
    return load();
  } catch (e) {
    throw flagError(flag, e);
  }
}

function flagError(flag: string, e: unknown): unknown {
  if (!(e instanceof BulwarkError) || e.message.startsWith(`${flag}:`) || e.message.startsWith(`${flag} `)) return e;
  return new BulwarkError(e.code, `${flag}: ${e.message}`, { hint: e.hint, ...(e.details ? { details: e.details } : {}), cause: e });
}

/** Marks a broken internal invariant (a Bulwark bug, not a user error). */
export function internal(message: string): never {
  throw new BulwarkError('BULWARK_E_INTERNAL', message);
}

/** Renders the error table of docs/ERRORS.md from the registry. */
export function renderErrorTable(): string {
  const rows = Object.entries(ERROR_CODES).map(([code, s]) => `| \`${code}\` | ${s.exit} | ${s.status} | ${s.summary} | ${s.hint.replace(/\|/g, '\\|')} |`);
  return ['| code | exit | HTTP | meaning | default hint |', '|---|---|---|---|---|', ...rows].join('\n');
}
