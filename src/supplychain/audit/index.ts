/**
 * The audit log: append-only, hash-chained records in the registry's database, with signed checkpoints.
 * See docs/REGISTRY.md ("Audit log").
 */
export { canonicalJson, sha256Hex, type JsonObject, type JsonValue } from './canonical.js';
export { AUDIT_RECORD_VERSION, GENESIS_HASH, MAX_AUDIT_DATA_BYTES, checkEvent, defaultActor, parseRecord, recordHash, recordText, type AuditEvent, type AuditRecord } from './record.js';
export {
  auditSignerFromEd25519,
  auditSignerFromKey,
  auditVerifierFromEd25519,
  auditVerifierFromKey,
  loadAuditSigner,
  loadAuditVerifier,
  type AuditSigner,
  type AuditVerifier,
  type CheckpointAlg,
  type CheckpointSignatures,
} from './keys.js';
export {
  CHECKPOINT_PAYLOAD_TYPE,
  CHECKPOINT_TYPE,
  assertAuditIntact,
  checkpointMessage,
  checkpointText,
  verifyAuditRows,
  type AuditHead,
  type AuditIssue,
  type AuditIssueKind,
  type AuditVerifyResult,
  type CheckpointPayload,
  type StoredAuditRow,
  type StoredCheckpoint,
} from './verify.js';
export { AuditLog, DEFAULT_CHECKPOINT_EVERY, auditDdl, verifyAuditExport, type AuditExportLine, type AuditLogOptions } from './log.js';

import type { AuditLog } from './log.js';
import type { AuditEvent, AuditRecord } from './record.js';

/**
 * Appends an event to an audit log: the entry point for components that record decisions (the gateway, incident
 * response). The record is chained, stored and, every `checkpointEvery` records, covered by a signed checkpoint.
 * @param log a log from {@link AuditLog.open} or `registry.audit`
 * @param event what happened
 * @returns the stored record
 * @throws BulwarkError BULWARK_E_ARG (malformed event), BULWARK_E_LIMIT, BULWARK_E_DB
 * @example await appendAudit(registry.audit, { action: 'gateway.decision', subject: 'req-17', data: { allowed: true } });
 */
export function appendAudit(log: AuditLog, event: AuditEvent): Promise<AuditRecord> {
  return log.append(event);
}
