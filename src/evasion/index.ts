/** Evasion: adversarial-example attacks, their shared types and the runner that verifies them. */
export * from './types.js';
export * from './options.js';
export * from './geometry.js';
export * from './runner.js';
export * from './whitebox/index.js';
export * from './blackbox/index.js';
export * from './evaluate/index.js';
export * from './defense/index.js';
