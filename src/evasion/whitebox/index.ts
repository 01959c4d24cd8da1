/** White-box attacks: each a function `(model, x, y, options) => Promise<AttackResult>` plus its definition. */
export { fgsm, fgsmDefinition, type FgsmOptions } from './fgsm.js';
export { pgd, pgdDefinition, pgdCraft, scheduledStep, type PgdOptions, type StepSchedule } from './pgd.js';
export { cw, cwDefinition, type CwOptions } from './cw.js';
export { deepfool, deepfoolDefinition, deepfoolBatch, type DeepFoolOptions } from './deepfool.js';
export { apgd, apgdCe, apgdDlr, apgdDefinition, apgdCeDefinition, apgdDlrDefinition, apgdCheckpoints, type ApgdOptions } from './apgd.js';
export { fab, fabDefinition, projectOnHyperplaneBox, type FabOptions } from './fab.js';
export { uap, uapDefinition, universalPerturbation, applyUniversal, type UapOptions } from './uap.js';
export { patch, patchDefinition, pastePatch, patchSide, type PatchOptions } from './patch.js';
export { objective, ascentDirection, randomInBall, logitDifferences, Adam, type AttackLoss, type Objective } from './common.js';
