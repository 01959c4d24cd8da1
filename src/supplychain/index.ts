export * from './signing/index.js';
export * from './crypto/index.js';
export * from './scan/index.js';
