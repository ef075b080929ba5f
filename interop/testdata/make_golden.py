#!/usr/bin/env python3
"""Writes the golden files of //interop with the real Python ProxyStore.

Run from the repository root (numpy must be importable; Debian's
python3-numpy is used if the running python3 has none of its own):

    source /work/shared/python-proxystore/env.sh
    python3 interop/testdata/make_golden.py interop/testdata

Each <name>.bin is proxystore.serialize.serialize(value) of the value the
C++ tests expect (python_format_test.cc); each <name>.npy is the array
written by numpy.lib.format.write_array in the format version its name
gives (npy_test.cc). The output is deterministic for bytes, str and the
supported arrays: the C++ encoders must reproduce those files byte for byte.
"""

from __future__ import annotations

import io
import os
import sys


def import_numpy():
    try:
        import numpy
    except ImportError:
        # Debian's python3-numpy, for a python3 that is not Debian's own.
        sys.path.append('/usr/lib/python3/dist-packages')
        import numpy
    return numpy


def main() -> int:
    if len(sys.argv) != 2:
        print(f'usage: {sys.argv[0]} OUTPUT_DIR', file=sys.stderr)
        return 2
    out = sys.argv[1]
    np = import_numpy()
    import proxystore
    from proxystore.serialize import serialize

    serialized = {
        # bytes
        'bytes_empty': b'',
        'bytes_all': bytes(range(256)),
        'bytes_lines': b'US\nNP\n\x93NUMPY\n',
        # str
        'str_empty': '',
        'str_ascii': 'hello, world\n',
        'str_unicode': 'h\u00e9llo w\u00f6rld \u2014 \u65e5\u672c\u8a9e \U0001F40D',
        # numpy arrays of every supported dtype
        'np_bool': np.array([True, False, True, True]),
        'np_int8': np.array([-128, -1, 0, 1, 127], dtype='<i1'),
        'np_uint8_2x2': np.array([[0, 1], [254, 255]], dtype='<u1'),
        'np_int16': np.array([-32768, 0, 32767], dtype='<i2'),
        'np_uint16': np.array([0, 1, 65535], dtype='<u2'),
        'np_int32_2x3': np.arange(6, dtype='<i4').reshape(2, 3),
        'np_uint32': np.array([0, 4294967295], dtype='<u4'),
        'np_int64': np.array([-2**63, -1, 0, 2**63 - 1], dtype='<i8'),
        'np_uint64': np.array([0, 2**64 - 1], dtype='<u8'),
        'np_float32': np.array([0.5, -1.25, np.inf, 3.4028235e38],
                               dtype='<f4'),
        'np_float64': np.array([0.1, -0.0, np.inf, -np.inf, np.nan, 1e308],
                               dtype='<f8'),
        # shapes and orders
        'np_float64_0d': np.array(2.5, dtype='<f8'),
        'np_bool_0d': np.array(True),
        'np_int32_empty': np.zeros(0, dtype='<i4'),
        'np_float32_0x3': np.zeros((0, 3), dtype='<f4'),
        'np_int16_fortran_2x3': np.asfortranarray(
            np.arange(6, dtype='<i2').reshape(2, 3)),
        'np_uint8_2x3x4': np.arange(24, dtype='<u1').reshape(2, 3, 4),
        # numpy dtypes without a C++ counterpart (Unimplemented)
        'np_big_endian': np.array([1, 2], dtype='>i4'),
        'np_float16': np.array([1.5], dtype='<f2'),
        'np_complex128': np.array([1 + 2j], dtype='<c16'),
        'np_unicode': np.array(['ab', 'c']),
        'np_object': np.array([1, 'a', None], dtype=object),
        'np_structured': np.zeros(2, dtype=[('x', '<i4'), ('y', '<f8')]),
        # Python objects (Unimplemented)
        'pickle_dict': {'a': 1, 'b': [1, 2]},
        'cloudpickle_lambda': lambda x: x + 1,
    }
    os.makedirs(out, exist_ok=True)
    for name, value in serialized.items():
        with open(os.path.join(out, name + '.bin'), 'wb') as f:
            f.write(serialize(value))

    # Plain .npy files of each format version.
    versions = {
        'v1_int32_2x3': ((1, 0), np.arange(6, dtype='<i4').reshape(2, 3)),
        'v2_float64': ((2, 0), np.array([1.0, -2.5, 1e-300], dtype='<f8')),
        'v3_int16_fortran': ((3, 0), np.asfortranarray(
            np.arange(6, dtype='<i2').reshape(3, 2))),
    }
    for name, (version, array) in versions.items():
        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, array, version=version)
        with open(os.path.join(out, name + '.npy'), 'wb') as f:
            f.write(buffer.getvalue())

    print(f'wrote {len(serialized)} .bin and {len(versions)} .npy files to '
          f'{out} (proxystore {proxystore.__version__}, numpy '
          f'{np.__version__}, Python {sys.version.split()[0]})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
