/**
 * The data layer: NumPy .npy/.npz, IDX and CSV readers, built-in datasets (MNIST, Fashion-MNIST), data specs
 * (`mnist:test[0:1000]`, `data.npz`, ...) and seeded mini-batching.
 */
export { readNpy, writeNpy, encodeNpy, readNpz, readNpzArrays, writeNpz, encodeNpz, type NpzArray } from './npy.js';
export { readIdx, type IdxOptions } from './idx.js';
export { readCsv, parseCsvTable, parseCsvRecords, type CsvOptions, type CsvTable, type CsvRecord } from './csv.js';
export {
  builtinSplit,
  clearDatasetCache,
  isBuiltinName,
  BUILTIN_DATASETS,
  FASHION_MNIST_CLASSES,
  type BuiltinName,
  type Split,
} from './datasets.js';
export { loadData, dataSpecFiles, parseDataSpec, resolveSlice, DATA_SPEC_FORMS, type Dataset, type DataSpec, type SliceSpec } from './spec.js';
export { MAX_CLASSES, classId, classIds, checkClassCount } from './labels.js';
export { batches, numBatches, type BatchOptions, type Batch } from './loader.js';
