/**
 * Neural networks Bulwark builds itself: layers that emit ONNX, built-in architectures and a spec language,
 * optimizers and schedules, and the training loop.
 */
export * from './layers.js';
export * from './network.js';
export * from './optim.js';
export * from './train.js';
export * from './zoo.js';
