export * from './session.js';
export * from './probe.js';
export * from './model.js';
export * from './remote.js';
