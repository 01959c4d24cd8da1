/**
 * The pickle import policy: an allowlist of what legitimate checkpoints import (torch storages and rebuild
 * helpers, NumPy arrays and dtypes, a few containers) and a severity-ranked blocklist. Anything on neither list
 * is "unknown" and is reported, never passed silently. docs/SCANNER.md explains the policy.
 */
import type { Severity } from './findings.js';

/** The verdict on one imported global. */
export type Verdict =
  | { kind: 'allowed' }
  | { kind: 'blocked'; severity: Severity; reason: string }
  | { kind: 'unknown'; severity: Severity; reason: string };

/** Python 2 module names that pickle's fix_imports maps to Python 3 (the subset that matters for judging). */
const IMPORT_MAPPING: Record<string, string> = {
  __builtin__: 'builtins',
  exceptions: 'builtins',
  copy_reg: 'copyreg',
  cPickle: 'pickle',
  commands: 'subprocess',
  UserDict: 'collections',
  UserList: 'collections',
  UserString: 'collections',
  urllib2: 'urllib.request',
  httplib: 'http.client',
  SocketServer: 'socketserver',
  cStringIO: 'io',
  StringIO: 'io',
  _winreg: 'winreg',
  thread: '_thread',
  dummy_thread: '_dummy_thread',
  Queue: 'queue',
  repr: 'reprlib',
  __main__: '__main__',
};

/** Exact `module.name` entries that legitimate checkpoints import. */
const ALLOW_EXACT = new Set<string>([
  // PyTorch rebuild helpers (torch/_utils.py, torch/_tensor.py) and friends
  ...[
    '_rebuild_tensor', '_rebuild_tensor_v2', '_rebuild_tensor_v3', '_rebuild_parameter', '_rebuild_parameter_with_state',
    '_rebuild_parameter_v2', '_rebuild_qtensor', '_rebuild_sparse_tensor', '_rebuild_sparse_csr_tensor', '_rebuild_nested_tensor',
    '_rebuild_device_tensor_from_numpy', '_rebuild_device_tensor_from_cpu_tensor', '_rebuild_meta_tensor_no_storage',
    '_rebuild_wrapper_subclass', '_rebuild_xla_tensor', '_rebuild_mlc_tensor',
  ].map((n) => `torch._utils.${n}`),
  'torch._tensor._rebuild_from_type', 'torch._tensor._rebuild_from_type_v2', 'torch._tensor.Tensor', 'torch.Tensor',
  'torch.nn.parameter.Parameter', 'torch.nn.parameter.UninitializedParameter', 'torch.nn.parameter.UninitializedBuffer', 'torch.nn.parameter.Buffer',
  'torch.Size', 'torch.device', 'torch.storage.TypedStorage', 'torch.storage.UntypedStorage', 'torch.storage._LegacyStorage',
  'torch.storage._load_from_bytes', 'torch.serialization._get_layout', 'torch.torch_version.TorchVersion',
  'torch.strided', 'torch.sparse_coo', 'torch.sparse_csr', 'torch.sparse_csc', 'torch.sparse_bsr', 'torch.sparse_bsc', 'torch._mkldnn',
  'torch.contiguous_format', 'torch.channels_last', 'torch.channels_last_3d', 'torch.preserve_format',
  'torch.per_tensor_affine', 'torch.per_channel_affine', 'torch.per_tensor_symmetric', 'torch.per_channel_symmetric', 'torch.per_channel_affine_float_qparams',
  // NumPy arrays, dtypes and scalars (1.x and 2.x module paths)
  'numpy.ndarray', 'numpy.dtype', 'numpy.matrix', 'numpy.ma.core._mareconstruct', 'numpy.ma.core.MaskedArray',
  'numpy.core.multiarray._reconstruct', 'numpy._core.multiarray._reconstruct',
  'numpy.core.multiarray.scalar', 'numpy._core.multiarray.scalar',
  'numpy.core.numeric._frombuffer', 'numpy._core.numeric._frombuffer',
  'numpy.random._pickle.__randomstate_ctor', 'numpy.random._pickle.__generator_ctor', 'numpy.random._pickle.__bit_generator_ctor',
  'numpy.random.mtrand.RandomState', 'numpy.random._generator.Generator',
  // containers and value types
  'collections.OrderedDict', 'collections.defaultdict', 'collections.Counter', 'collections.deque',
  'builtins.set', 'builtins.frozenset', 'builtins.slice', 'builtins.range', 'builtins.complex', 'builtins.bytearray', 'builtins.bytes',
  'builtins.int', 'builtins.float', 'builtins.str', 'builtins.list', 'builtins.dict', 'builtins.tuple', 'builtins.bool', 'builtins.object',
  'builtins.Ellipsis', 'builtins.NotImplemented',
  'copyreg._reconstructor', 'copyreg.__newobj__', 'copyreg.__newobj_ex__', '_codecs.encode',
  'datetime.datetime', 'datetime.date', 'datetime.time', 'datetime.timedelta', 'datetime.timezone',
  'decimal.Decimal', 'fractions.Fraction', 'uuid.UUID', 'argparse.Namespace',
  'pathlib.PosixPath', 'pathlib.WindowsPath', 'pathlib.PurePosixPath', 'pathlib.PureWindowsPath', 'pathlib.Path',
  // TorchScript's list and tensor builders (torch/jit/_pickle.py), used by torch.jit.save archives
  ...['build_intlist', 'build_tensorlist', 'build_doublelist', 'build_boollist', 'build_tensor_from_id', 'restore_type_tag'].map((n) => `torch.jit._pickle.${n}`),
  // joblib's array placeholders (the array bytes that follow them are checked by the pickle reader)
  'joblib.numpy_pickle.NumpyArrayWrapper', 'joblib.numpy_pickle_compat.NDArrayWrapper', 'joblib.numpy_pickle_compat.ZNDArrayWrapper',
  'sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper',
]);

/** torch dtypes, imported as attributes of the torch module. */
const TORCH_DTYPES = new Set([
  'float32', 'float', 'float64', 'double', 'float16', 'half', 'bfloat16', 'complex32', 'chalf', 'complex64', 'cfloat', 'complex128', 'cdouble',
  'uint8', 'int8', 'int16', 'short', 'int32', 'int', 'int64', 'long', 'bool', 'uint16', 'uint32', 'uint64',
  'quint8', 'qint8', 'qint32', 'quint4x2', 'quint2x4', 'float8_e4m3fn', 'float8_e5m2', 'float8_e4m3fnuz', 'float8_e5m2fnuz',
]);

/** NumPy scalar types (numpy.float32 and so on) that dtype pickles may name. */
const NUMPY_SCALARS = /^(bool_|bool|u?int(8|16|32|64)|float(16|32|64|128)|complex(64|128|256)|longlong|ulonglong|half|single|double|longdouble|intc|uintc|intp|uintp|str_|bytes_|void|object_|datetime64|timedelta64)$/;

/** Whole modules (and their submodules) that no checkpoint needs, with the severity of importing from them. */
const BLOCK_MODULES: [string, Severity, string][] = [
  ['os', 'critical', 'operating-system interface (command execution, file access)'],
  ['posix', 'critical', 'operating-system interface (os.system pickles as posix.system)'],
  ['nt', 'critical', 'operating-system interface (os.system pickles as nt.system on Windows)'],
  ['subprocess', 'critical', 'runs commands'],
  ['_posixsubprocess', 'critical', 'runs commands'],
  ['popen2', 'critical', 'runs commands'],
  ['pty', 'critical', 'spawns processes'],
  ['runpy', 'critical', 'runs Python modules and files'],
  ['ctypes', 'critical', 'calls native code'],
  ['_ctypes', 'critical', 'calls native code'],
  ['cffi', 'critical', 'calls native code'],
  ['importlib', 'critical', 'imports arbitrary modules'],
  ['imp', 'critical', 'imports and loads arbitrary modules'],
  ['_imp', 'critical', 'imports and loads arbitrary modules'],
  ['zipimport', 'critical', 'imports code from archives'],
  ['marshal', 'critical', 'loads Python bytecode'],
  ['code', 'critical', 'evaluates Python code'],
  ['codeop', 'critical', 'compiles Python code'],
  ['pickle', 'critical', 'nested deserialization (pickle.loads)'],
  ['_pickle', 'critical', 'nested deserialization (pickle.loads)'],
  ['dill', 'critical', 'nested deserialization'],
  ['cloudpickle', 'critical', 'nested deserialization'],
  ['shelve', 'critical', 'nested deserialization'],
  ['joblib', 'critical', 'nested deserialization (joblib.load)'],
  ['multiprocessing', 'critical', 'spawns processes'],
  ['concurrent', 'high', 'runs callables in workers'],
  ['asyncio', 'critical', 'spawns processes (create_subprocess_shell)'],
  ['pdb', 'critical', 'evaluates Python code (pdb.run)'],
  ['bdb', 'critical', 'evaluates Python code'],
  ['timeit', 'critical', 'evaluates Python code (timeit.timeit)'],
  ['profile', 'critical', 'evaluates Python code (profile.run)'],
  ['cProfile', 'critical', 'evaluates Python code (cProfile.run)'],
  ['trace', 'critical', 'evaluates Python code'],
  ['doctest', 'critical', 'evaluates Python code'],
  ['pydoc', 'critical', 'runs a pager command'],
  ['IPython', 'critical', 'evaluates Python code'],
  ['pip', 'critical', 'installs packages'],
  ['setuptools', 'critical', 'builds and runs code'],
  ['distutils', 'critical', 'builds and runs code'],
  ['ensurepip', 'critical', 'installs packages'],
  ['_winapi', 'critical', 'Windows process API'],
  ['numpy.f2py', 'critical', 'compiles and loads code'],
  ['numpy.distutils', 'critical', 'builds and runs code'],
  ['numpy.ctypeslib', 'critical', 'calls native code'],
  ['torch.utils.cpp_extension', 'critical', 'compiles and loads C++ code'],
  ['torch.hub', 'critical', 'downloads and runs code'],
  ['torch._inductor', 'critical', 'compiles and loads code'],
  ['torch.package', 'high', 'loads packaged code'],
  ['torch.jit', 'high', 'loads TorchScript'],
  ['torch._C', 'high', 'native bindings'],
  ['torch.distributed', 'high', 'network and remote calls'],
  ['sys', 'high', 'interpreter state (sys.modules, sys.exit)'],
  ['socket', 'high', 'network access'],
  ['_socket', 'high', 'network access'],
  ['ssl', 'high', 'network access'],
  ['socketserver', 'high', 'network access'],
  ['http', 'high', 'network access'],
  ['urllib', 'high', 'network access'],
  ['requests', 'high', 'network access'],
  ['httpx', 'high', 'network access'],
  ['ftplib', 'high', 'network access'],
  ['smtplib', 'high', 'network access'],
  ['telnetlib', 'high', 'network access'],
  ['poplib', 'high', 'network access'],
  ['imaplib', 'high', 'network access'],
  ['xmlrpc', 'high', 'remote calls'],
  ['webbrowser', 'high', 'opens URLs, runs a browser command'],
  ['shutil', 'high', 'file operations (rmtree, copy, move)'],
  ['tempfile', 'high', 'file creation'],
  ['glob', 'high', 'file-system listing'],
  ['io', 'high', 'file access (io.open, FileIO)'],
  ['_io', 'high', 'file access (FileIO)'],
  ['fileinput', 'high', 'file access'],
  ['linecache', 'high', 'file access'],
  ['tarfile', 'high', 'archive extraction'],
  ['zipfile', 'high', 'archive extraction'],
  ['mmap', 'high', 'memory-mapped file access'],
  ['fcntl', 'high', 'file descriptor control'],
  ['signal', 'high', 'signal handlers'],
  ['threading', 'high', 'runs callables in threads'],
  ['_thread', 'high', 'runs callables in threads'],
  ['gc', 'high', 'interpreter internals'],
  ['inspect', 'high', 'reflection'],
  ['types', 'high', 'constructs code, functions and modules'],
  ['operator', 'high', 'reflection helpers (attrgetter, methodcaller, getitem)'],
  ['functools', 'high', 'callable wrappers (partial, reduce) that hide a call'],
  ['logging.config', 'high', 'configuration that imports and listens'],
  ['yaml', 'high', 'nested deserialization'],
  ['pandas.io.pickle', 'critical', 'nested deserialization (read_pickle)'],
  ['winreg', 'high', 'Windows registry'],
];

/** Exact entries of otherwise unblocked modules. */
const BLOCK_EXACT: Record<string, [Severity, string]> = {
  'builtins.eval': ['critical', 'evaluates Python code'],
  'builtins.exec': ['critical', 'executes Python code'],
  'builtins.execfile': ['critical', 'executes a Python file'],
  'builtins.compile': ['critical', 'compiles Python code'],
  'builtins.__import__': ['critical', 'imports arbitrary modules'],
  'builtins.apply': ['critical', 'calls an arbitrary callable'],
  'builtins.reload': ['critical', 'reloads modules'],
  'builtins.input': ['critical', 'Python 2 input() evaluates'],
  'builtins.breakpoint': ['high', 'starts a debugger'],
  'builtins.open': ['high', 'opens files'],
  'builtins.file': ['high', 'opens files'],
  'builtins.getattr': ['high', 'reflection: reaches any attribute (getattr(os, "system"))'],
  'builtins.setattr': ['high', 'reflection: overwrites attributes'],
  'builtins.delattr': ['high', 'reflection: deletes attributes'],
  'builtins.globals': ['high', 'reflection: module globals'],
  'builtins.locals': ['high', 'reflection'],
  'builtins.vars': ['high', 'reflection'],
  'builtins.dir': ['medium', 'reflection'],
  'builtins.exit': ['high', 'stops the interpreter'],
  'builtins.quit': ['high', 'stops the interpreter'],
  'builtins.memoryview': ['medium', 'raw memory views'],
  'builtins.help': ['medium', 'runs a pager'],
  'builtins.print': ['low', 'writes output'],
  'torch.load': ['critical', 'nested torch.load (unpickles another file)'],
  'torch.serialization.load': ['critical', 'nested torch.load'],
  'torch.serialization._load': ['critical', 'nested torch.load'],
  'torch.serialization._legacy_load': ['critical', 'nested torch.load'],
  'torch.fx.graph_module.reduce_graph_module': ['critical', 'executes Python source embedded in the pickle'],
  'torch.fx.graph_module.reduce_package_graph_module': ['critical', 'executes Python source embedded in the pickle'],
  'torch.fx.graph_module.reduce_deploy_graph_module': ['critical', 'executes Python source embedded in the pickle'],
  'torch.fx.graph_module._forward_from_src': ['critical', 'executes Python source'],
  'torch.fx.graph_module._exec_with_source': ['critical', 'executes Python source'],
  'numpy.testing._private.utils.runstring': ['critical', 'executes Python code'],
  'numpy.load': ['high', 'loads another file (possibly with pickles)'],
  'numpy.lib.npyio.load': ['high', 'loads another file'],
  'numpy.fromfile': ['high', 'reads files'],
  'numpy.loadtxt': ['high', 'reads files'],
  'numpy.genfromtxt': ['high', 'reads files'],
  'numpy.memmap': ['high', 'maps files'],
  'pandas.read_pickle': ['critical', 'nested deserialization'],
  'copyreg.add_extension': ['high', 'changes the pickle extension registry'],
  'copyreg.remove_extension': ['high', 'changes the pickle extension registry'],
  'types.CodeType': ['critical', 'constructs a code object'],
  'types.FunctionType': ['critical', 'constructs a function from a code object'],
  'types.LambdaType': ['critical', 'constructs a function from a code object'],
};

/** Attribute names that make any global suspicious when they appear in a dotted name or as the name. */
const DANGEROUS_NAMES = new Set([
  'eval', 'exec', 'execfile', 'compile', '__import__', 'system', 'popen', 'popen2', 'popen3', 'popen4', 'getoutput', 'getstatusoutput',
  'check_output', 'check_call', 'spawn', 'spawnl', 'spawnle', 'spawnlp', 'spawnv', 'spawnve', 'spawnvp', 'execl', 'execle', 'execlp', 'execv',
  'execve', 'execvp', 'runstring', 'run_path', 'run_module', 'load_inline', 'import_module', 'loads', 'load', 'startfile', 'fork', 'kill',
  '__builtins__', '__globals__', '__subclasses__', '__getattribute__', '__code__', '__reduce__', '__reduce_ex__', '__setstate__',
  '__class__', '__bases__', '__mro__', '__dict__', '__init_subclass__', '__loader__', '__spec__',
]);

/** Module roots whose appearance inside a dotted attribute path means a traversal to a dangerous module. */
const DANGEROUS_SEGMENTS = new Set(['os', 'posix', 'nt', 'subprocess', 'sys', 'builtins', '__builtin__', 'importlib', 'ctypes', 'socket', 'shutil', 'pty', 'runpy', 'marshal', 'pickle']);

/** Normalizes Python 2 names the way pickle's fix_imports would. */
export function normalizeGlobal(module: string, name: string): { module: string; name: string } {
  const m = IMPORT_MAPPING[module] ?? module;
  if (m === 'builtins' && name === 'xrange') return { module: m, name: 'range' };
  if (m === 'builtins' && name === 'unicode') return { module: m, name: 'str' };
  if (m === 'builtins' && name === 'long') return { module: m, name: 'int' };
  if (m === 'builtins' && name === 'basestring') return { module: m, name: 'str' };
  if (module === 'UserDict' && name === 'IterableUserDict') return { module: 'collections', name: 'UserDict' };
  return { module: m, name };
}

function moduleBlock(module: string): [Severity, string] | undefined {
  for (const [m, sev, why] of BLOCK_MODULES) {
    if (module === m || module.startsWith(m + '.')) return [sev, why];
  }
  return undefined;
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
const MODULE_PATH = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;

/** Options that change the verdict for a scan. */
export interface PolicyOptions {
  /** Extra `module.name` entries to allow. */
  allow?: ReadonlySet<string>;
  /** The pickle comes from a TorchScript archive: `__torch__.*` globals are TorchScript classes, not Python imports. */
  torchscript?: boolean;
}

/**
 * Judges one global that a pickle imports (GLOBAL, STACK_GLOBAL, INST).
 * @param module the module string as written in the pickle
 * @param name the attribute name (may be dotted: pickle protocol 4 resolves dotted names attribute by attribute)
 * @returns allowed, blocked (with severity and reason), or unknown (with severity and reason)
 * @example judgeGlobal('posix', 'system') // { kind: 'blocked', severity: 'critical', ... }
 */
export function judgeGlobal(module: string, name: string, opts: PolicyOptions = {}): Verdict {
  const n = normalizeGlobal(module, name);
  const full = `${n.module}.${n.name}`;
  const rawFull = `${module}.${name}`;
  if (!MODULE_PATH.test(n.module) || !MODULE_PATH.test(n.name)) {
    return { kind: 'unknown', severity: 'high', reason: 'module or attribute name is not a plain Python identifier path' };
  }
  const dotted = n.name.includes('.');
  // Exact allowlist entries are plain names, so they cannot hide a traversal; everything else meets the
  // blocklist first, so an allowed prefix never hides one like torch + "os.system".
  if (!dotted && (ALLOW_EXACT.has(full) || opts.allow?.has(full) || opts.allow?.has(rawFull))) return { kind: 'allowed' };
  const exact = BLOCK_EXACT[full] ?? BLOCK_EXACT[rawFull];
  if (exact) return { kind: 'blocked', severity: exact[0], reason: exact[1] };
  const mod = moduleBlock(n.module) ?? moduleBlock(module);
  if (mod) {
    if (n.module === 'io' && (n.name === 'BytesIO' || n.name === 'StringIO')) return { kind: 'unknown', severity: 'low', reason: 'in-memory stream' };
    return { kind: 'blocked', severity: mod[0], reason: `${n.module}: ${mod[1]}` };
  }
  const segs = n.name.split('.');
  if (dotted) {
    for (const s of segs.slice(0, -1)) {
      if (DANGEROUS_SEGMENTS.has(s) || moduleBlock(s)) return { kind: 'blocked', severity: 'critical', reason: `dotted name reaches the module '${s}' through attributes` };
    }
    for (const s of segs) {
      if (s.startsWith('__') && s.endsWith('__')) return { kind: 'blocked', severity: 'high', reason: `dotted name traverses the special attribute '${s}'` };
    }
  }
  if (!dotted) {
    if ((n.module === 'torch' || n.module === 'torch.cuda') && /^[A-Z][A-Za-z0-9]*Storage$/.test(n.name)) return { kind: 'allowed' };
    if (n.module === 'torch' && TORCH_DTYPES.has(n.name)) return { kind: 'allowed' };
    if ((n.module === 'numpy' || n.module === 'numpy.core.numerictypes' || n.module === 'numpy._core.numerictypes') && NUMPY_SCALARS.test(n.name)) return { kind: 'allowed' };
    if ((n.module === 'numpy.dtypes') && /^[A-Za-z0-9]+DType$/.test(n.name)) return { kind: 'allowed' };
    // Layer classes of torch.nn, instantiated by a full-module save; their constructors and __setstate__ are benign.
    if (n.module.startsWith('torch.nn.modules.') && /^[A-Z][A-Za-z0-9_]*$/.test(n.name)) return { kind: 'allowed' };
    if (opts.torchscript && (n.module === '__torch__' || n.module.startsWith('__torch__.'))) return { kind: 'allowed' };
  }
  const last = segs[segs.length - 1]!;
  if (DANGEROUS_NAMES.has(last) || segs.some((s) => DANGEROUS_NAMES.has(s))) {
    return { kind: 'unknown', severity: 'high', reason: `not on the allowlist, and '${last}' is named like an execution or reflection helper` };
  }
  if (dotted) return { kind: 'unknown', severity: 'medium', reason: 'not on the allowlist; the dotted name is resolved attribute by attribute' };
  if (!IDENT.test(last)) return { kind: 'unknown', severity: 'medium', reason: 'unusual name' };
  return { kind: 'unknown', severity: 'low', reason: 'not on the allowlist of what legitimate checkpoints import' };
}

/** Modules whose names in a Keras config count as dangerous (shares the pickle blocklist). */
export function isBlockedModule(module: string): boolean {
  const root = IMPORT_MAPPING[module] ?? module;
  return moduleBlock(root) !== undefined || root === 'builtins';
}

/** Callables that deserialize a bytes argument: the bytes are scanned as a nested file. */
export const NESTED_LOADERS = new Set(['torch.storage._load_from_bytes', 'pickle.loads', '_pickle.loads', 'dill.loads', 'cloudpickle.loads', 'marshal.loads']);
