/**
 * Hardening: adversarial training (PGD-AT, TRADES, FGSM-RS), randomized smoothing (PREDICT / CERTIFY), interval bound
 * propagation, feature squeezing and preprocessing defenses with BPDA. See docs/HARDENING.md.
 */
export * from './model.js';
export * from './adversarial.js';
export * from './stats.js';
export * from './smoothing.js';
export * from './ibp.js';
export * from './ibp-train.js';
export * from './squeeze.js';
export * from './vjp.js';
export * from './squeeze-adaptive.js';
