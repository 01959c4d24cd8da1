/**
 * Reports: the assessment runner (`bulwark scan`), typed findings mapped to MITRE ATLAS and OWASP ML Top 10, CI
 * gates, and the HTML / JSON / SARIF renderers.
 */
export * from './types.js';
export { ATLAS_TECHNIQUES, OWASP_ML_TOP10, DOMAINS, FINDING_RULES, atlasUrl, owaspUrl, findingRule, makeFinding, type FindingRule, type TaxonomyDomain } from './taxonomy.js';
export { parseGates, evaluateGates, gateFindings, metricFormat, FRACTION_METRICS } from './gates.js';
export { renderHtml, renderBlock, lineChart, escapeHtml, formatValue } from './html.js';
export { renderReportSarif, sarifLevel, artifactUri } from './sarif.js';
export { encodePng, pngDataUri, crc32, imagePixels, perturbationPixels } from './png.js';
export { runAssessment, writeReport, defaultEps, gateMetrics, parseSections, SECTION_PARTS, SECTION_PROVIDERS, REPORT_TOOL_VERSION, type AssessmentOptions, type ReportFiles } from './assess.js';
export { demoModel, cacheDir, packageRoot, DEMO_DEFAULTS, DEMO_MODEL_FILE } from './demo.js';
export { hardeningProvider, smoothingSummary, headlineRadius, detectorEvasionSeverity, certifiedSeverity, HARDENING_METRICS, HARDENING_PARTS, HARDENING_SIZES, SMOOTHING_ALPHA, DETECTOR_FPR } from './sections/hardening.js';
export { privacyProvider, dpSeverity, membershipSeverity, extractionSeverity, inversionSeverity, PRIVACY_METRICS, PRIVACY_PARTS, PRIVACY_SIZES } from './sections/privacy.js';
export { readTrainRecord, type TrainRecord, type RecordLookup } from './sections/record.js';
export { statusFromFindings, maxSeverity, sectionParts, type SectionOptions, type AssessmentContext, type SectionProvider, type SectionProgress } from './sections/common.js';
export { evasionProvider, evasionSection, evasionFindings, exampleImages, vulnerabilitySeverity, EVASION_METRICS } from './sections/evasion.js';
export { supplyChainProvider } from './sections/supply-chain.js';
export { stageProgress, type StageEvent } from './progress.js';
