/**
 * Model extraction: attacks that clone a model through its prediction API (Knockoff Nets, Jacobian-based dataset
 * augmentation), output-hardening defenses, and the PRADA detector.
 */
export { DEFAULT_CLONE_ARCH, clonePredict, type CloneOptions, type CurvePoint, type ExtractionResult } from './clone.js';
export { knockoffNets, kmeans, noisePool, type KnockoffOptions } from './knockoff.js';
export { jacobianAugmentation, type JacobianOptions } from './jacobian.js';
export { hardenOutput, toProbabilities, type Hardening } from './harden.js';
export { PradaDetector, pradaGuard, type PradaOptions, type PradaVerdict } from './prada.js';
export { shapiroWilk, type ShapiroWilkResult } from './shapiro.js';
