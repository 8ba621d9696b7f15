"""The router and attention softmaxes of shared/tools/ref_grok.py (float64 numpy model.py), for probe_test.cpp.

usage: probe_ref.py REF_GROK_DIR MODEL_DIR TOKENS(comma separated) OUT_DIR
writes OUT_DIR/router.f64 [T, L, E], OUT_DIR/attention.f64 [L, nq, T, T] and OUT_DIR/hidden.f64 [L, T, d]
(the residual stream after each layer), little-endian float64.
"""
import os
import sys

import numpy as np

sys.path.insert(0, sys.argv[1])
import ref_grok as R  # noqa: E402

model_dir, tokens, out = sys.argv[2], [int(t) for t in sys.argv[3].split(",")], sys.argv[4]
captured = {"router": [], "attention": []}
softmax = R.softmax


def recording_softmax(x, axis=-1):
    y = softmax(x, axis=axis)
    # attention weights are [nkv, group, T, S]; the router's probabilities [T, E] (Model.attention / moe)
    captured["attention" if y.ndim == 4 else "router"].append(y.copy())
    return y


R.softmax = recording_softmax
m = R.Model(R.Checkpoint(model_dir))
m.forward(tokens)
T = len(tokens)
router = np.stack(captured["router"]).transpose(1, 0, 2)  # [T, L, E]
attention = np.stack([a.reshape(-1, T, T) for a in captured["attention"]])  # [L, nq, T, T]: head = kv·group + g
hidden = np.stack(m.hidden[1:])  # [L, T, d]
router.astype("<f8").tofile(os.path.join(out, "router.f64"))
attention.astype("<f8").tofile(os.path.join(out, "attention.f64"))
hidden.astype("<f8").tofile(os.path.join(out, "hidden.f64"))
