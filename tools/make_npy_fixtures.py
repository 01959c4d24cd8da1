#!/usr/bin/env python3
"""Writes small .npy/.npz files with real NumPy into fixtures/npy/, plus manifest.json describing the expected
contents (dtype, shape, C-order values), for the data-layer tests. Deterministic: rerunning gives the same files.

Usage: python3 tools/make_npy_fixtures.py
"""
import json
import os
import zipfile

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'fixtures', 'npy')

# One array per dtype, with values at the edges of each type's range.
ARRAYS = {
    'f4': np.array([[0.0, 1.5, -2.25], [3.4028235e38, 1e-45, 0.1]], dtype='<f4'),
    'f8': np.array([0.0, -1.5, 1e308, 5e-324, np.pi], dtype='<f8'),
    'i8': np.array([[-(2**63), 2**63 - 1], [-1, 123456789012345]], dtype='<i8'),
    'i4': np.array([-(2**31), 2**31 - 1, -1, 7], dtype='<i4'),
    'i2': np.array([-32768, 32767, -1, 5], dtype='<i2'),
    'u2': np.array([0, 65535, 258], dtype='<u2'),
    'u1': np.array([[0, 255, 7], [1, 2, 3]], dtype='|u1'),
    'i1': np.array([-128, 127, -1], dtype='|i1'),
    'b1': np.array([True, False, True, True], dtype='|b1'),
    'u4': np.array([0, 2**32 - 1, 16909060], dtype='<u4'),
    'u8': np.array([0, 2**64 - 1, 2**53 + 1], dtype='<u8'),
}
BIG_ENDIAN = ['f4', 'f8', 'i2', 'i4', 'i8', 'u2', 'u4', 'u8']


def values(a):
    """C-order values as JSON: floats as numbers (exact doubles), integers as strings (64-bit safe)."""
    flat = np.ascontiguousarray(a).reshape(-1)
    if a.dtype.kind == 'f':
        return [float(v) for v in flat]
    if a.dtype.kind == 'b':
        return [str(int(v)) for v in flat]
    return [str(int(v)) for v in flat]


def describe(a, **extra):
    d = {'dtype': a.dtype.str, 'shape': list(a.shape), 'values': values(a)}
    d.update(extra)
    return d


def save(manifest, name, a, version=None, **extra):
    path = os.path.join(OUT, name)
    with open(path, 'wb') as f:
        np.lib.format.write_array(f, a, version=version, allow_pickle=False)
    manifest[name] = describe(a, **extra)


def write_zip64_npz(path, arrays):
    """An .npz whose central directory and end record use ZIP64 fields (zipfile only does this for huge archives,
    so its thresholds are lowered for the duration of the write)."""
    limits = (zipfile.ZIP64_LIMIT, zipfile.ZIP_FILECOUNT_LIMIT)
    zipfile.ZIP64_LIMIT, zipfile.ZIP_FILECOUNT_LIMIT = 1, 0
    try:
        with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED, allowZip64=True) as z:
            for key, a in arrays.items():
                with z.open(key + '.npy', 'w', force_zip64=True) as f:
                    np.lib.format.write_array(f, a, allow_pickle=False)
    finally:
        zipfile.ZIP64_LIMIT, zipfile.ZIP_FILECOUNT_LIMIT = limits


def main():
    os.makedirs(OUT, exist_ok=True)
    m = {}
    for code, a in ARRAYS.items():
        save(m, f'le_{code}.npy', a)
    for code in BIG_ENDIAN:
        save(m, f'be_{code}.npy', ARRAYS[code].astype(ARRAYS[code].dtype.newbyteorder('>')))
    cube = np.arange(24, dtype='<f4').reshape(2, 3, 4) * 0.5
    save(m, 'fortran_f4.npy', np.asfortranarray(cube), fortran=True)
    save(m, 'fortran_be_i2.npy', np.asfortranarray(np.arange(-6, 6, dtype='>i2').reshape(3, 4)), fortran=True)
    save(m, 'v2_f4.npy', cube, version=(2, 0))
    save(m, 'v3_i4.npy', np.arange(10, dtype='<i4'), version=(3, 0))
    save(m, 'scalar_f8.npy', np.array(3.5, dtype='<f8'))
    save(m, 'empty_f4.npy', np.zeros((0, 3), dtype='<f4'))

    # Files Bulwark must refuse.
    np.save(os.path.join(OUT, 'object.npy'), np.array([1, 'a', None], dtype=object), allow_pickle=True)
    np.save(os.path.join(OUT, 'structured.npy'), np.zeros(2, dtype=[('a', '<i4'), ('b', '<f8')]))
    np.save(os.path.join(OUT, 'float16.npy'), np.ones(3, dtype='<f2'))

    x = (np.arange(24, dtype='<f4').reshape(6, 1, 2, 2) / 24).astype('<f4')
    y = np.array([0, 1, 2, 0, 1, 2], dtype='<i8')
    np.savez(os.path.join(OUT, 'xy.npz'), x=x, y=y)
    np.savez_compressed(os.path.join(OUT, 'xy_compressed.npz'), x=x, y=y)
    # Unnamed arrays become arr_0 (labels, int32) and arr_1 (inputs, float64): x/y are found by dtype.
    np.savez(os.path.join(OUT, 'positional.npz'), y.astype('<i4'), x.astype('<f8'))
    write_zip64_npz(os.path.join(OUT, 'zip64.npz'), {'x': x, 'y': y})
    m['npz'] = {'x': describe(x), 'y': describe(y)}

    with open(os.path.join(OUT, 'manifest.json'), 'w') as f:
        json.dump(m, f, indent=1, sort_keys=True)
        f.write('\n')


if __name__ == '__main__':
    main()
