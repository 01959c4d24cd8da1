export * from './proto.js';
export * from './ir.js';
export * from './builder.js';
export * from './shapes.js';
