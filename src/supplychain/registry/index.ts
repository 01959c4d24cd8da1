/**
 * The model registry: content-addressed blobs, immutable versions, aliases with recorded rollback, lineage, a
 * signature and scan policy, SQLite or PostgreSQL metadata, and an audit record for every change.
 * See docs/REGISTRY.md.
 */
export {
  LATEST,
  MODEL_NAME_PATTERN,
  REGISTRY_SCHEMA_VERSION,
  Registry,
  TAG_PATTERN,
  aliasStack,
  openRegistry,
  withRegistry,
  parseModelRef,
  type AliasMove,
  type DatasetInput,
  type DatasetRef,
  type Lineage,
  type ModelSummary,
  type PushOptions,
  type PushResult,
  type RegistryIssue,
  type RegistryOptions,
  type RegistryVerifyResult,
  type TrainingInfo,
  type VersionInfo,
} from './registry.js';
export { BlobStore, type StagedBlob } from './blobs.js';
export { readPolicyFile, resolvePolicy, type PolicyFile, type PolicyOverrides, type RegistryPolicy, type ScanMode } from './policy.js';
export { assertSignatureValid, verifyBlobSignature, type BlobSignatureCheck } from './signature.js';
export { isPostgresUrl, openSqlDb, redactUrl, type OpenSqlOptions, type SqlDb, type SqlExecutor, type SqlParam, type TableName } from './sql.js';
