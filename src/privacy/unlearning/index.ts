/** Machine unlearning: SISA training (sharded, isolated, sliced, aggregated) with exact forgetting. */
export { SisaEnsemble, type SisaOptions, type SisaManifest, type ShardRecord, type ForgetRecord } from './sisa.js';
