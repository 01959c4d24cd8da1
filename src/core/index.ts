export * from './errors.js';
export * from './tensor.js';
export * from './rng.js';
export * from './fsio.js';
export * from './zip.js';
export * from './progress.js';
export * from './atomic.js';
export * from './quote.js';
