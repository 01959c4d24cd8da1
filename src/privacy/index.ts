/**
 * The privacy domain barrel: model inversion, model extraction (attacks, output hardening, PRADA) and machine
 * unlearning (SISA); accounting, DP-SGD and membership inference add their own export lines.
 */
export * from './inversion/index.js';
export * from './extraction/index.js';
export * from './unlearning/index.js';
