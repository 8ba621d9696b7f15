#!/usr/bin/env python3
"""Dequantises every tensor of a GGUF file with llama.cpp's gguf-py (its numpy implementation of each type)
and writes tensor k's values to OUTDIR/k.f32 (little-endian float32, in file order), one line per tensor on
stdout: "k name type". tests/quant_iquants_test.cpp compares groak's dequantize_row with these bit for bit.

  PYTHONPATH=/path/to/llama.cpp/gguf-py /usr/bin/python3 tests/gguf_py_dequant.py FILE.gguf OUTDIR
"""
import os
import sys

import numpy as np
from gguf import GGUFReader, quants


def main():
    path, out = sys.argv[1], sys.argv[2]
    r = GGUFReader(path)
    for k, t in enumerate(r.tensors):
        v = quants.dequantize(np.asarray(t.data), t.tensor_type)
        np.ascontiguousarray(v, dtype="<f4").tofile(os.path.join(out, f"{k}.f32"))
        print(k, t.name, t.tensor_type.name)


if __name__ == "__main__":
    main()
