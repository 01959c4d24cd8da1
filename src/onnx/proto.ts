import protobuf from 'protobufjs';
import { BulwarkError } from '../core/errors.js';

/**
 * The ONNX protobuf schema (onnx.proto, IR version 10), written as a protobufjs reflection descriptor.
 * Field numbers are those of the ONNX format; names are camelCase as protobufjs exposes them.
 */
const r = (type: string, id: number) => ({ rule: 'repeated', type, id });
const packed = (type: string, id: number) => ({ rule: 'repeated', type, id, options: { packed: true } });
const f = (type: string, id: number) => ({ type, id });

const SCHEMA = {
  nested: {
    onnx: {
      nested: {
        StringStringEntryProto: { fields: { key: f('string', 1), value: f('string', 2) } },
        OperatorSetIdProto: { fields: { domain: f('string', 1), version: f('int64', 2) } },
        TensorShapeProto: {
          fields: { dim: r('Dimension', 1) },
          nested: {
            Dimension: {
              oneofs: { value: { oneof: ['dimValue', 'dimParam'] } },
              fields: { dimValue: f('int64', 1), dimParam: f('string', 2), denotation: f('string', 3) },
            },
          },
        },
        TypeProto: {
          oneofs: { value: { oneof: ['tensorType', 'sequenceType', 'mapType', 'optionalType', 'sparseTensorType'] } },
          fields: {
            tensorType: f('Tensor', 1),
            sequenceType: f('Sequence', 4),
            mapType: f('Map', 5),
            optionalType: f('Optional', 9),
            sparseTensorType: f('SparseTensor', 8),
            denotation: f('string', 6),
          },
          nested: {
            Tensor: { fields: { elemType: f('int32', 1), shape: f('TensorShapeProto', 2) } },
            Sequence: { fields: { elemType: f('TypeProto', 1) } },
            Map: { fields: { keyType: f('int32', 1), valueType: f('TypeProto', 2) } },
            Optional: { fields: { elemType: f('TypeProto', 1) } },
            SparseTensor: { fields: { elemType: f('int32', 1), shape: f('TensorShapeProto', 2) } },
          },
        },
        ValueInfoProto: { fields: { name: f('string', 1), type: f('TypeProto', 2), docString: f('string', 3), metadataProps: r('StringStringEntryProto', 4) } },
        TensorProto: {
          fields: {
            dims: packed('int64', 1),
            dataType: f('int32', 2),
            segment: f('Segment', 3),
            floatData: packed('float', 4),
            int32Data: packed('int32', 5),
            stringData: r('bytes', 6),
            int64Data: packed('int64', 7),
            name: f('string', 8),
            docString: f('string', 12),
            rawData: f('bytes', 9),
            externalData: r('StringStringEntryProto', 13),
            dataLocation: f('int32', 14),
            doubleData: packed('double', 10),
            uint64Data: packed('uint64', 11),
            metadataProps: r('StringStringEntryProto', 16),
          },
          nested: { Segment: { fields: { begin: f('int64', 1), end: f('int64', 2) } } },
        },
        SparseTensorProto: { fields: { values: f('TensorProto', 1), indices: f('TensorProto', 2), dims: packed('int64', 3) } },
        AttributeProto: {
          fields: {
            name: f('string', 1),
            refAttrName: f('string', 21),
            docString: f('string', 13),
            type: f('int32', 20),
            f: f('float', 2),
            i: f('int64', 3),
            s: f('bytes', 4),
            t: f('TensorProto', 5),
            g: f('GraphProto', 6),
            sparseTensor: f('SparseTensorProto', 22),
            tp: f('TypeProto', 14),
            floats: packed('float', 7),
            ints: packed('int64', 8),
            strings: r('bytes', 9),
            tensors: r('TensorProto', 10),
            graphs: r('GraphProto', 11),
            sparseTensors: r('SparseTensorProto', 23),
            typeProtos: r('TypeProto', 15),
          },
        },
        NodeProto: {
          fields: {
            input: r('string', 1),
            output: r('string', 2),
            name: f('string', 3),
            opType: f('string', 4),
            domain: f('string', 7),
            overload: f('string', 8),
            attribute: r('AttributeProto', 5),
            docString: f('string', 6),
            metadataProps: r('StringStringEntryProto', 9),
          },
        },
        GraphProto: {
          fields: {
            node: r('NodeProto', 1),
            name: f('string', 2),
            initializer: r('TensorProto', 5),
            sparseInitializer: r('SparseTensorProto', 15),
            docString: f('string', 10),
            input: r('ValueInfoProto', 11),
            output: r('ValueInfoProto', 12),
            valueInfo: r('ValueInfoProto', 13),
            quantizationAnnotation: r('TensorAnnotation', 14),
            metadataProps: r('StringStringEntryProto', 16),
          },
        },
        TensorAnnotation: { fields: { tensorName: f('string', 1), quantParameterTensorNames: r('StringStringEntryProto', 2) } },
        TrainingInfoProto: {
          fields: {
            initialization: f('GraphProto', 1),
            algorithm: f('GraphProto', 2),
            initializationBinding: r('StringStringEntryProto', 3),
            updateBinding: r('StringStringEntryProto', 4),
          },
        },
        FunctionProto: {
          fields: {
            name: f('string', 1),
            input: r('string', 4),
            output: r('string', 5),
            attribute: r('string', 6),
            attributeProto: r('AttributeProto', 11),
            node: r('NodeProto', 7),
            docString: f('string', 8),
            opsetImport: r('OperatorSetIdProto', 9),
            domain: f('string', 10),
            overload: f('string', 13),
            valueInfo: r('ValueInfoProto', 12),
            metadataProps: r('StringStringEntryProto', 14),
          },
        },
        ModelProto: {
          fields: {
            irVersion: f('int64', 1),
            opsetImport: r('OperatorSetIdProto', 8),
            producerName: f('string', 2),
            producerVersion: f('string', 3),
            domain: f('string', 4),
            modelVersion: f('int64', 5),
            docString: f('string', 6),
            graph: f('GraphProto', 7),
            metadataProps: r('StringStringEntryProto', 14),
            trainingInfo: r('TrainingInfoProto', 20),
            functions: r('FunctionProto', 25),
          },
        },
      },
    },
  },
};

const root = protobuf.Root.fromJSON(SCHEMA);
const ModelType = root.lookupType('onnx.ModelProto');
const TensorType = root.lookupType('onnx.TensorProto');

/** A 64-bit integer as protobufjs decodes it (a Long) or a plain number. */
export type Int64 = number | { toNumber(): number; low: number; high: number; unsigned?: boolean };

export interface StringStringEntryProto { key: string; value: string }
export interface OperatorSetIdProto { domain?: string; version?: Int64 }
export interface DimensionProto { dimValue?: Int64; dimParam?: string; denotation?: string }
export interface TypeProto {
  tensorType?: { elemType?: number; shape?: { dim?: DimensionProto[] } };
  sequenceType?: { elemType?: TypeProto };
  mapType?: { keyType?: number; valueType?: TypeProto };
  optionalType?: { elemType?: TypeProto };
  sparseTensorType?: { elemType?: number; shape?: { dim?: DimensionProto[] } };
  denotation?: string;
}
export interface ValueInfoProto { name?: string; type?: TypeProto; docString?: string }
export interface TensorProto {
  dims?: Int64[];
  dataType?: number;
  floatData?: number[];
  int32Data?: number[];
  stringData?: Uint8Array[];
  int64Data?: Int64[];
  name?: string;
  docString?: string;
  rawData?: Uint8Array;
  externalData?: StringStringEntryProto[];
  dataLocation?: number;
  doubleData?: number[];
  uint64Data?: Int64[];
  segment?: { begin?: Int64; end?: Int64 };
}
export interface AttributeProto {
  name?: string;
  refAttrName?: string;
  type?: number;
  f?: number;
  i?: Int64;
  s?: Uint8Array;
  t?: TensorProto;
  g?: GraphProto;
  floats?: number[];
  ints?: Int64[];
  strings?: Uint8Array[];
  tensors?: TensorProto[];
  graphs?: GraphProto[];
  tp?: TypeProto;
}
export interface NodeProto {
  input?: string[];
  output?: string[];
  name?: string;
  opType?: string;
  domain?: string;
  attribute?: AttributeProto[];
  docString?: string;
}
export interface GraphProto {
  node?: NodeProto[];
  name?: string;
  initializer?: TensorProto[];
  sparseInitializer?: unknown[];
  docString?: string;
  input?: ValueInfoProto[];
  output?: ValueInfoProto[];
  valueInfo?: ValueInfoProto[];
}
export interface ModelProto {
  irVersion?: Int64;
  opsetImport?: OperatorSetIdProto[];
  producerName?: string;
  producerVersion?: string;
  domain?: string;
  modelVersion?: Int64;
  docString?: string;
  graph?: GraphProto;
  metadataProps?: StringStringEntryProto[];
  trainingInfo?: unknown[];
  functions?: { name?: string; domain?: string; node?: NodeProto[] }[];
}

/** AttributeProto.AttributeType values. */
export const ATTR = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, GRAPH: 5, FLOATS: 6, INTS: 7, STRINGS: 8, TENSORS: 9, GRAPHS: 10, SPARSE_TENSOR: 11, SPARSE_TENSORS: 12, TYPE_PROTO: 13, TYPE_PROTOS: 14 } as const;

/** Converts a protobufjs int64 to a JS number (exact below 2^53; saturating beyond). */
export function int64(v: Int64 | undefined | null): number {
  if (v === undefined || v === null) return 0;
  if (typeof v === 'number') return v;
  return v.toNumber();
}

/**
 * Decodes ONNX protobuf bytes into a ModelProto.
 * @throws BulwarkError BULWARK_E_ONNX_PARSE when the bytes are not a valid ONNX model
 */
export function decodeModel(bytes: Uint8Array, source = 'the model'): ModelProto {
  let msg: ModelProto;
  try {
    msg = ModelType.decode(bytes) as unknown as ModelProto;
  } catch (e) {
    const reason = (e as Error).message;
    if (e instanceof RangeError || /index out of range/.test(reason)) {
      // protobufjs reports a field or length that runs past the end of the buffer as "index out of range".
      throw new BulwarkError('BULWARK_E_ONNX_PARSE', `${source} is truncated or corrupt: the ONNX protobuf runs past the end of its ${bytes.length} bytes`, {
        hint: 'The file was cut short (an interrupted download or copy?) or damaged; fetch or export it again and check it with onnx.checker.',
      });
    }
    throw new BulwarkError('BULWARK_E_ONNX_PARSE', `${source} is not a readable ONNX model: ${reason}`);
  }
  if (!msg.graph || !msg.opsetImport || msg.opsetImport.length === 0) {
    const missing = !msg.graph ? 'graph' : 'opset_import';
    // A file that starts like a model (its first field, ir_version, is set) but lacks its graph was most likely cut short.
    if (Number(msg.irVersion ?? 0) > 0) {
      throw new BulwarkError('BULWARK_E_ONNX_PARSE', `${source} is truncated or corrupt: it starts as an ONNX model (ir_version ${String(msg.irVersion ?? '?')}) but has no ${missing} in its ${bytes.length} bytes`, {
        hint: 'The file was cut short (an interrupted download or copy?) or damaged; fetch or export it again and check it with onnx.checker.',
      });
    }
    throw new BulwarkError('BULWARK_E_ONNX_PARSE', `${source} is not an ONNX model: the protobuf has no graph or no opset_import (is this another file format?)`);
  }
  return msg;
}

/** Encodes a ModelProto to ONNX protobuf bytes. */
export function encodeModel(model: ModelProto): Uint8Array {
  return ModelType.encode(model as Record<string, unknown>).finish();
}

/** Decodes a single TensorProto (used for .pb tensor files). */
export function decodeTensor(bytes: Uint8Array): TensorProto {
  try {
    return TensorType.decode(bytes) as unknown as TensorProto;
  } catch (e) {
    throw new BulwarkError('BULWARK_E_ONNX_PARSE', `not a readable ONNX TensorProto: ${(e as Error).message}`);
  }
}
