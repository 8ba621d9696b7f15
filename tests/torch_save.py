#!/usr/bin/python3
"""Real torch.save files for tests/torch_bin_test.cpp (needs Debian's python3-torch; the tests skip without it).

  torch_save.py cases DIR            archives of the cases below, written by torch itself
  torch_save.py load FILE            torch.load(FILE, weights_only=True), printed as JSON {name: [dtype, shape, values]}
  torch_save.py ports MANIFEST       state dicts of raw bf16 tensors listed in MANIFEST (JSON), saved as torch.save shards

Nothing here is needed to build or run groak.
"""
import collections
import json
import os
import sys

import numpy as np
import torch


class Evil:
    """A pickle that would run a shell command when unpickled by Python (never by groak)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, ("touch " + self.marker,))


def cases(out):
    os.makedirs(out, exist_ok=True)
    # Element types; values exact in every type (k / 4).
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 4
    torch.save({"bf16": base.to(torch.bfloat16), "f16": base.to(torch.float16), "f32": base,
                "i64": torch.arange(5, dtype=torch.int64)}, os.path.join(out, "dtypes.bin"))
    # Views share one storage: a slice at storage offset 5, and the whole vector.
    big = torch.arange(20, dtype=torch.float32)
    torch.save({"slice": big[5:11].view(2, 3), "whole": big}, os.path.join(out, "views.bin"))
    # module.state_dict(): an OrderedDict with _metadata.
    lin = torch.nn.Linear(4, 3)
    with torch.no_grad():
        lin.weight.copy_(torch.arange(12, dtype=torch.float32).reshape(3, 4))
        lin.bias.copy_(torch.tensor([-1.0, 0.5, 2.0]))
    torch.save(lin.to(torch.bfloat16).state_dict(), os.path.join(out, "module.bin"))
    # A parameter pickles through torch._utils._rebuild_parameter.
    torch.save({"p": torch.nn.Parameter(torch.full((2, 2), 3.0))}, os.path.join(out, "param.bin"))
    # Not contiguous: a transposed matrix.
    torch.save({"t": torch.arange(6, dtype=torch.float32).reshape(2, 3).t()}, os.path.join(out, "transposed.bin"))
    # The legacy (pre-1.6) format.
    torch.save({"x": torch.ones(2)}, os.path.join(out, "legacy.bin"), _use_new_zipfile_serialization=False)
    # Code that torch.load would run.
    torch.save({"x": Evil(os.path.join(out, "pwned"))}, os.path.join(out, "evil.bin"))
    # For byte-comparison with groak's writer: names that collide with no other string of the pickle.
    torch.save({"w.a": torch.zeros(3, 4, dtype=torch.bfloat16), "w.b": torch.zeros(2, dtype=torch.float32)},
               os.path.join(out, "plain_dict.bin"))
    sd = collections.OrderedDict()
    sd["w.a"] = torch.zeros(3, 4, dtype=torch.bfloat16)
    sd["w.b"] = torch.zeros(2, dtype=torch.float32)
    sd._metadata = collections.OrderedDict([("", {"version": 1})])
    torch.save(sd, os.path.join(out, "ordered_dict.bin"))


def load(path):
    sd = torch.load(path, weights_only=True)
    out = {}
    for name, t in sd.items():
        out[name] = [str(t.dtype).replace("torch.", ""), list(t.shape), t.float().flatten().tolist()]
    print(json.dumps(out))


def ports(manifest_path):
    with open(manifest_path) as f:
        manifest = json.load(f)
    for shard in manifest["shards"]:
        sd = collections.OrderedDict() if shard["ordered"] else {}
        for t in shard["tensors"]:
            raw = np.fromfile(t["raw"], dtype=np.int16)
            sd[t["name"]] = torch.from_numpy(raw.copy()).view(torch.bfloat16).reshape(t["shape"])
        torch.save(sd, shard["file"])


if __name__ == "__main__":
    {"cases": cases, "load": load, "ports": ports}[sys.argv[1]](sys.argv[2])
