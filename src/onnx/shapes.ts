/** A value's shape: fixed dims as numbers, -1 for dims that follow the batch size (or another free input dim). */
export interface ValueShape {
  dims: number[];
  elemType: number;
  /** The value itself, for small values that do not depend on any graph input (folded constants). */
  value?: ArrayLike<number | bigint>;
}

export type ShapeMap = Map<string, ValueShape>;
