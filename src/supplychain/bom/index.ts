/** ML-BOM export: registry versions as CycloneDX 1.6 JSON (machine-learning-model with modelCard). */
export {
  CYCLONEDX_SPEC_VERSION,
  buildMlBom,
  type CdxComponent,
  type CdxHash,
  type CdxModelCard,
  type CdxPerformanceMetric,
  type CdxProperty,
  type CycloneDxBom,
  type MlBomOptions,
} from './cyclonedx.js';
