/** Bulwark: a deep-learning security toolkit for ONNX models. Each domain is also a subpath export (bulwark/runtime, ...). */
export * from './core/index.js';
export * from './onnx/index.js';
export * from './autodiff/index.js';
export * from './runtime/index.js';
