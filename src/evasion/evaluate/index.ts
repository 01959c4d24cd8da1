/**
 * Robustness evaluation: the AutoAttack-style ensemble (Croce & Hein 2020, arXiv:2003.01690), robustness curves and
 * gradient-masking checks (Athalye, Carlini & Wagner 2018, arXiv:1802.00420).
 */
export { BUDGETS, SUITES, ENSEMBLE_PAPERS, resolveSuite, memberAttack, memberPaper, type Budget, type MemberSpec, type SuiteSpec } from './suites.js';
export { runEnsemble, type EnsembleOptions, type EnsembleResult, type MemberReport, type EvalProgress } from './ensemble.js';
export { robustnessCurve, curveEpsList, type CurveOptions, type CurvePoint, type RobustnessCurve } from './curves.js';
export { maskingChecks, isReliable, MASKING_CHECK_IDS, MASKING_THRESHOLDS, type MaskingCheck, type MaskingCheckId, type MaskingOptions } from './masking.js';
export { evaluateRobustness, summarizeEvaluation, sampleIndices, type EvaluateOptions, type RobustnessEvaluation, type EvaluationSummary } from './evaluate.js';
export { checkData, checkEps, parseNorm, boxDiameter, gradientsAvailable, type EvalNorm } from './validate.js';
