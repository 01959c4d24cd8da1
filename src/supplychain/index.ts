export * from './signing/index.js';
export * from './crypto/index.js';
export * from './scan/index.js';
export * from './registry/index.js';
export * from './audit/index.js';
export * from './bom/index.js';
