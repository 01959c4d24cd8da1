export * from './context.js';
export * from './registry.js';
export * from './normalize.js';
export * from './walker.js';
export * from './heads.js';
