/** Black-box evasion: score-based (Square), decision-based (HopSkipJump) and gradient-estimation (NES, SPSA) attacks. */
export { square, squareDefinition, pSchedule, pseudoGaussianPattern, type SquareOptions } from './square.js';
export { hopSkipJump, hsjDefinition, type HsjOptions } from './hsj.js';
export { nes, nesDefinition, type NesOptions } from './nes.js';
export { withEstimatedGradient, EstimatedGradientModel, estimateGradient, estimatorSettings, type EstimatorOptions, type EstimatorSettings } from './estimator.js';
export { QueryLedger, queryStats } from './queries.js';
export { headLoss, scoresOf, marginOf, crossEntropyOf } from './losses.js';
