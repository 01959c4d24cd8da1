/**
 * The model-file scanner: pickles (every opcode, memo and stack tracked), PyTorch zip / legacy / tar checkpoints,
 * joblib, NumPy .npy / .npz, nested archives, ONNX, safetensors and Keras. See docs/SCANNER.md.
 */
export { scanFile, scanBytes, scanPaths, sniffFormat, type ScanResult, type ScanFormat } from './scanner.js';
export { SCAN_DEFAULTS, type ScanOptions, type ScannedItem } from './context.js';
export { SCAN_RULES, SEVERITIES, severityRank, type ScanFinding, type ScanEvidence, type ScanRule, type ScanRuleId, type Severity } from './findings.js';
export { judgeGlobal, normalizeGlobal, type Verdict, type PolicyOptions } from './policy.js';
export { PICKLE_OPCODES, HIGHEST_PROTOCOL, type PickleOpcode } from './pickle.js';
export { renderText, renderJson, renderSarif, sarifLevel } from './report.js';
export { STANDARD_ONNX_DOMAINS } from './onnx.js';
export { SAFETENSORS_DTYPE_BITS } from './safetensors.js';
