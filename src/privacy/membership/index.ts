/** Membership inference: the loss-threshold attack, LiRA, ROC analysis and the audit. */
export * from './roc.js';
export * from './scores.js';
export * from './lira.js';
export * from './audit.js';
