import { redactUrl, urlScheme } from '../core/urls.js';
import { BulwarkError, namingFlag, namingFlagSync } from '../core/errors.js';
import { toFloat32Checked, type Float32Tensor, type Tensor } from '../core/tensor.js';
import { readNpy } from '../data/npy.js';
import { fitLayout } from '../data/layout.js';
import { loadData, type Dataset } from '../data/spec.js';
import { classIds } from '../data/labels.js';
import { loadModel, type OnnxModel } from '../runtime/model.js';
import type { RemoteModelOptions } from '../runtime/remote.js';
import { defaultLanes } from '../runtime/workers.js';
import { checkParallelism, numberFlag, threadsFlag, workersFlag } from './args.js';

/** Shared flags of commands that load a model. */
export const MODEL_FLAGS = {
  model: { type: 'string' },
  'output-kind': { type: 'string' },
  threads: { type: 'string' },
  workers: { type: 'string' },
  'batch-size': { type: 'string' },
} as const;

/**
 * --threads/--workers as given (each at most the machine's cores, their product at most twice that: see threadsFlag); when neither is, one worker lane per core up to 4 (see defaultLanes). Returns
 * threads undefined for onnxruntime's own choice.
 */
export function executionFlags(values: Record<string, unknown>): { threads: number | undefined; workers: number } {
  const threads = threadsFlag(values);
  const workers = workersFlag(values);
  checkParallelism(threads, workers);
  if (threads === undefined && workers === undefined) return defaultLanes();
  return { threads, workers: workers ?? 1 };
}

/**
 * Refuses a URL where a command needs a local ONNX file: http(s) endpoints (BULWARK_E_USAGE: they serve only the
 * black-box attacks and extract) and any other scheme (ftp:, file:, ...: BULWARK_E_REMOTE_URL), instead of
 * reporting "model file not found" for them.
 */
export function checkLocalModel(where: string, flag = '--model'): void {
  const scheme = urlScheme(where);
  if (scheme === undefined) return;
  const shown = redactUrl(where);
  if (scheme === 'http' || scheme === 'https') {
    throw new BulwarkError('BULWARK_E_USAGE', `${flag} ${shown}: this command runs a local ONNX file, not a remote endpoint`, {
      hint: 'KServe v2 endpoints work with the black-box attacks (bulwark attack square|hsj|nes --model URL) and bulwark extract; download the ONNX file to assess it here.',
    });
  }
  throw new BulwarkError('BULWARK_E_REMOTE_URL', `${flag} ${shown}: ${scheme}: URLs are not supported; give a local ONNX file path`, {
    hint: 'Give a path to an .onnx file; the black-box attacks and extract also take http(s)://host[:port]/v2/models/<name>.',
  });
}

/** Transport flags of a remote --model (a KServe v2 URL): attack and extract; refused with a model file. */
export const REMOTE_FLAGS = {
  timeout: { type: 'string' },
  retries: { type: 'string' },
  'max-response-bytes': { type: 'string' },
  header: { type: 'string', multiple: true },
} as const;

/** Environment variable with extra request headers for a remote --model, one `Name: value` per line. */
export const REMOTE_HEADERS_ENV = 'BULWARK_REMOTE_HEADERS';

/** Refuses the remote transport flags when --model is a file. */
export function refuseRemoteFlags(values: Record<string, unknown>, where: string): void {
  const stray = Object.keys(REMOTE_FLAGS).find((k) => values[k] !== undefined);
  if (stray) throw new BulwarkError('BULWARK_E_USAGE', `--${stray} applies to a remote model; --model ${JSON.stringify(redactUrl(where))} is a file`, { hint: 'Give --model http(s)://host/v2/models/NAME, or drop the remote model options.' });
}

/** The client options of the remote transport flags and BULWARK_REMOTE_HEADERS (header values are never printed). */
export async function remoteOptions(values: Record<string, unknown>): Promise<Pick<RemoteModelOptions, 'timeoutMs' | 'retries' | 'maxResponseBytes' | 'headers'>> {
  const { parseHeaderLines } = await import('../runtime/remote.js');
  const envHeaders = process.env[REMOTE_HEADERS_ENV];
  const headers = parseHeaderLines(envHeaders === undefined ? [] : envHeaders.split('\n'), (i) => `${REMOTE_HEADERS_ENV} line ${i + 1}`);
  parseHeaderLines((values['header'] as string[] | undefined) ?? [], (i) => `--header #${i + 1}`, headers);
  return {
    ...(values['timeout'] === undefined ? {} : { timeoutMs: Math.max(1, Math.round(1000 * numberFlag(values, 'timeout', 30, 0.001, 86400))) }),
    ...(values['retries'] === undefined ? {} : { retries: numberFlag(values, 'retries', 3, 0, 100, true) }),
    // below V8's longest string (~512 MiB), which the body becomes
    ...(values['max-response-bytes'] === undefined ? {} : { maxResponseBytes: numberFlag(values, 'max-response-bytes', 0, 1, 500 * 2 ** 20, true) }),
    headers,
  };
}

/** --help lines for the remote transport flags. */
export const REMOTE_HELP = `Remote model options (--model URL only):
  --timeout SECONDS         time one attempt may take, connect to last byte (default 30)
  --retries N               retries after a timeout, network error, 5xx or 429 (default 3; 0 = one attempt)
  --max-response-bytes B    largest response accepted (default: 1 MiB + 64 bytes per expected output
                            value, up to 64 MiB)
  --header 'Name: value'    extra request header, repeatable (e.g. 'Authorization: Bearer <token>'). Values on
                            the command line show in the process list: put secret headers in the environment
                            variable ${REMOTE_HEADERS_ENV} instead, one 'Name: value' per line (--header wins
                            for the same name). Header values are never printed. Credentials in the URL
                            (user:pass@) and redirects are refused.`;

/** Loads a local ONNX model named by `flag`, refusing URLs and naming the flag in file errors. */
export function loadModelFlag(modelPath: string, options: Parameters<typeof loadModel>[1], flag = '--model'): Promise<OnnxModel> {
  checkLocalModel(modelPath, flag);
  return namingFlag(flag, () => loadModel(modelPath, options));
}

/** Loads --model with --output-kind/--threads/--workers/--batch-size applied. */
export async function modelFromFlags(values: Record<string, unknown>, modelPath: string): Promise<OnnxModel> {
  const kind = (values['output-kind'] as string | undefined) ?? 'auto';
  if (!['auto', 'logits', 'probs'].includes(kind)) throw new BulwarkError('BULWARK_E_ARG', `--output-kind must be auto, logits or probs, got ${JSON.stringify(kind)}`);
  const { threads, workers } = executionFlags(values);
  return loadModelFlag(modelPath, {
    outputKind: kind as 'auto' | 'logits' | 'probs',
    ...(threads === undefined ? {} : { threads }),
    workers,
    // Without --batch-size the model picks its run sizes (256 for predictions, cache-sized gradient runs).
    ...(values['batch-size'] === undefined ? {} : { batchSize: numberFlag(values, 'batch-size', 256, 1, 1 << 20, true) }),
  });
}

/** Loads a data spec given under `flag` (default --data); errors from the spec or its files name the flag. */
export function loadDataFlag(spec: string, flag = '--data'): Promise<Dataset> {
  return namingFlag(flag, () => loadData(spec));
}

/** Reads a float input array from .npy (float32, or float64 converted). */
export function readFloatInput(file: string, what: string): Float32Tensor {
  const t = namingFlagSync(what, () => readNpy(file, what));
  if (t.dtype === 'float32') return t as Float32Tensor;
  if (t.dtype === 'float64') return { data: toFloat32Checked(t.data as Float64Array, what), shape: t.shape, dtype: 'float32' };
  throw new BulwarkError('BULWARK_E_DTYPE', `${what}: ${file} holds ${t.dtype}; a float32 array is expected`, { hint: 'Save it with numpy.save(path, x.astype(numpy.float32)).' });
}

/** Reads integer class labels from .npy. */
export function readLabels(file: string, what: string): Int32Array {
  const t: Tensor = namingFlagSync(what, () => readNpy(file, what));
  if (t.shape.length !== 1) throw new BulwarkError('BULWARK_E_LABELS', `${what}: labels must be a 1-D array, got shape [${t.shape.join(',')}]`);
  if (!/^u?int/.test(t.dtype)) {
    throw new BulwarkError('BULWARK_E_LABELS', `${what}: labels must be integers, got ${t.dtype}`, { hint: 'Save them with numpy.save(path, y.astype(numpy.int64)).' });
  }
  return classIds(t.data as ArrayLike<number | bigint>, what);
}

/** What inputsFromFlags needs of a model: its input shape, and (local models) its input and label checks. */
export interface InputChecker {
  inputShape: readonly number[];
  checkInput?(x: Float32Tensor): void;
  checkLabels?(labels: ArrayLike<number>, n: number, what: string): void;
}

/**
 * Runs the model's own input checks (shape, non-finite values, label count and range) on the arrays of the flags, so
 * their errors name the flag ("--input: input has shape ...", "--labels: labels has 3 entries for 4 inputs") instead
 * of surfacing later from inside the model call.
 */
function checkAgainstModel(model: InputChecker | undefined, x: Float32Tensor, y: Int32Array | undefined, xFlag: string, yFlag: string): void {
  if (!model) return;
  if (model.checkInput) namingFlagSync(xFlag, () => model.checkInput!(x));
  if (y && model.checkLabels) namingFlagSync(yFlag, () => model.checkLabels!(y, x.shape[0]!, 'labels'));
}

/**
 * Refuses --data given together with --input or --labels (the data spec brings its own inputs and labels, so the
 * other flag would be ignored) and --labels without --input. Commands call it before loading the model.
 */
export function checkInputFlags(values: Record<string, unknown>): void {
  const given = (k: string) => values[k] !== undefined;
  if (given('data') && given('input')) throw new BulwarkError('BULWARK_E_USAGE', 'give either --input or --data, not both', { hint: '--data SPEC brings inputs and labels; --input X.npy takes its labels from --labels Y.npy.' });
  if (given('data') && given('labels')) throw new BulwarkError('BULWARK_E_USAGE', '--labels goes with --input; --data brings its own labels, so give one of --data or --input/--labels', { hint: 'Drop --labels, or give --input X.npy --labels Y.npy instead of --data.' });
  if (given('labels') && !given('input')) throw new BulwarkError('BULWARK_E_USAGE', '--labels needs --input X.npy (the inputs it labels)');
}

/**
 * The inputs (and labels when known) named by --input/--labels or --data. Given the model, a built-in dataset's
 * images are put in the model's input layout when it differs in a certain way (NHWC, flat rows; see fitLayout), and
 * `source` says so; --input arrays are taken as they are.
 */
export async function inputsFromFlags(values: Record<string, unknown>, opts: { labels: 'required' | 'optional'; model?: InputChecker }): Promise<{ x: Float32Tensor; y: Int32Array | undefined; source: string }> {
  const input = values['input'] as string | undefined;
  const data = values['data'] as string | undefined;
  checkInputFlags(values);
  if (!input && !data) throw new BulwarkError('BULWARK_E_USAGE', 'missing --input X.npy (or --data SPEC)');
  if (data) {
    const ds = await loadDataFlag(data);
    if (opts.labels === 'required' && !ds.y) throw new BulwarkError('BULWARK_E_LABELS', `--data ${data} has no labels`);
    const fit = opts.model ? fitLayout(ds.x, opts.model.inputShape) : { x: ds.x };
    checkAgainstModel(opts.model, fit.x, opts.labels === 'required' ? ds.y : undefined, '--data', '--data');
    return { x: fit.x, y: ds.y, source: fit.change ? `${data} (${fit.change} for the model)` : data };
  }
  const x = readFloatInput(input!, '--input');
  const labelsFile = values['labels'] as string | undefined;
  if (!labelsFile && opts.labels === 'required') throw new BulwarkError('BULWARK_E_USAGE', 'missing --labels Y.npy (integer class ids)');
  const y = labelsFile ? readLabels(labelsFile, '--labels') : undefined;
  checkAgainstModel(opts.model, x, opts.labels === 'required' ? y : undefined, '--input', '--labels');
  return { x, y, source: input! };
}
