#!/usr/bin/python3
"""Train a small Grok-1 on the King James Bible, on the CPU, deterministically.

The network is model.py's (spec ../shared/docs/GROK1.md §2), only smaller: RMSNorms before and after
each sublayer, grouped-query attention with rotate-half RoPE, logits scaled then capped at 30*tanh(z/30),
8 experts of which the top 2 run with raw softmax gates (not renormalised), tanh-GELU-gated experts, a tied
embedding with the input and output multipliers. The tokenizer is SentencePiece BPE trained on the same text
with Grok-1's special ids and the arguments of groak's own trainer (src/tokenizer/tokenizer.cpp).

Output (--out DIR): a Hugging Face folder in the hpcai-tech layout (config.json, model.safetensors in F32,
torch [out, in]) plus tokenizer.model, heldout.txt, train.txt and train_log.json. `groak convert --format xai`
turns it into xAI's ckpt-0 (int8 weights, bf16 scales), which is what the repository ships.

Needs Debian's python3-torch, python3-sentencepiece and bible-kjv (the `bible` program and the KJV text).
Deterministic for a given seed, thread count and machine (torch's CPU kernels are; see --threads).
"""
import argparse
import json
import math
import os
import re
import struct
import subprocess
import sys
import time

# glibc returns big freed blocks to the system by default and torch frees many per step: keep them (1.6x).
if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
    os.environ.update(MALLOC_MMAP_THRESHOLD_="4294967296", MALLOC_TRIM_THRESHOLD_="68719476736",
                      MALLOC_TOP_PAD_="1073741824")
    os.execv(sys.executable, [sys.executable] + sys.argv)
# BLAS threads are fixed before torch loads: OpenBLAS reads its count once (results depend on it).
_threads = next((sys.argv[i + 1] for i, v in enumerate(sys.argv[:-1]) if v == "--threads"), "2")
os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = _threads

import numpy as np  # noqa: E402
import sentencepiece as spm  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

# ---------------------------------------------------------------------------------------------
# Corpus: the KJV from Debian's bible-kjv-text (public domain in most of the world; the Crown's
# letters patent in the UK do not cover a model's weights). One paragraph per chapter.


def read_kjv():
    """[(book, chapter, text)] in canonical order, verses of a chapter joined by one space."""
    try:
        out = subprocess.run(["bible", "-f", "gen1:1-rev22:21"], capture_output=True, text=True, check=True).stdout
    except FileNotFoundError:
        sys.exit("train_grok: the `bible` program is missing; apt-get install bible-kjv bible-kjv-text")
    chapters, key = [], None
    ref = re.compile(r"^(\S+?)(\d+):(\d+)\s+(.*)$")
    for line in out.splitlines():
        m = ref.match(line)
        if not m:
            if line.strip():
                sys.exit(f"train_grok: unexpected line from `bible`: {line[:80]!r}")
            continue
        book, chap, text = m.group(1), int(m.group(2)), m.group(4).strip()
        if (book, chap) != key:
            chapters.append([book, chap, []])
            key = (book, chap)
        chapters[-1][2].append(text)
    if len(chapters) != 1189:
        sys.exit(f"train_grok: expected the 1189 chapters of the KJV, `bible` gave {len(chapters)}")
    return [(b, c, " ".join(v)) for b, c, v in chapters]


def train_tokenizer(verses_path, vocab, prefix):
    # The arguments of groak's train_tokenizer (src/tokenizer/tokenizer.cpp), Grok-1's special ids.
    spm.set_random_generator_seed(42)
    spm.SentencePieceTrainer.train(
        input=verses_path, model_prefix=prefix, model_type="bpe", vocab_size=vocab, byte_fallback=True,
        character_coverage=1.0, pad_id=0, pad_piece="[PAD]", bos_id=1, bos_piece="[BOS]", eos_id=2,
        eos_piece="[EOS]", unk_id=3, unk_piece="[UNK]", unk_surface="[UNK]", normalization_rule_name="identity",
        split_digits=True, add_dummy_prefix=True, remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True, max_sentencepiece_length=16, hard_vocab_limit=True, num_threads=1,
        minloglevel=2)


# ---------------------------------------------------------------------------------------------
# The model (model.py's math; names follow the hpcai-tech port that groak reads)


def rms_norm(x, scale, eps):
    # x: [..., d]; f32 throughout (the official norm runs in f32)
    return scale * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def gelu_tanh(x):
    return F.gelu(x, approximate="tanh")


class Grok(torch.nn.Module):
    def __init__(s, c, gen):
        super().__init__()
        s.c = c
        d, hd, f, E = c["hidden_size"], c["head_dim"], c["intermediate_size"], c["num_experts"]
        hq, hkv, V = c["num_attention_heads"], c["num_key_value_heads"], c["vocab_size"]

        def w(*shape, std=0.02):
            return torch.nn.Parameter(torch.randn(*shape, generator=gen) * std)

        def ones(n):
            return torch.nn.Parameter(torch.ones(n))

        s.embed = w(V, d)  # [V, d], tied with the output
        s.norm = ones(d)
        s.layers = torch.nn.ModuleList()
        for _ in range(c["num_hidden_layers"]):
            L = torch.nn.Module()
            L.q, L.k, L.v, L.o = w(hq * hd, d), w(hkv * hd, d), w(hkv * hd, d), w(d, hq * hd)  # [out, in]
            L.n0, L.n1, L.n2, L.n3 = ones(d), ones(d), ones(d), ones(d)
            L.router = w(E, d)  # [E, d]
            L.lin, L.lin_v, L.lin_1 = w(E, f, d), w(E, f, d), w(E, d, f)  # [E, out, in]
            s.layers.append(L)

    def rope(s, x):
        # x: [B, T, H, hd]; rotate-half pairing (i with i + hd/2), positions 0..T-1
        T, hd = x.shape[1], x.shape[3]
        inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))  # [hd/2]
        ang = torch.arange(T, dtype=torch.float32)[:, None] * inv[None, :]  # [T, hd/2]
        cos, sin = ang.cos()[None, :, None, :], ang.sin()[None, :, None, :]
        a, b = x[..., : hd // 2], x[..., hd // 2:]
        return torch.cat([a * cos - b * sin, b * cos + a * sin], dim=-1)

    def attention(s, L, x):
        c = s.c
        B, T, _ = x.shape
        hq, hkv, hd = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
        q = s.rope((x @ L.q.T).view(B, T, hq, hd))  # [B, T, hq, hd]
        k = s.rope((x @ L.k.T).view(B, T, hkv, hd))  # [B, T, hkv, hd]
        v = (x @ L.v.T).view(B, T, hkv, hd)
        rep = hq // hkv  # q head h reads kv head h // rep
        k = k.repeat_interleave(rep, dim=2)
        v = v.repeat_interleave(rep, dim=2)
        z = torch.einsum("bthd,bshd->bhts", q, k) * c["attn_output_multiplier"]  # [B, hq, T, T]
        z = 30.0 * torch.tanh(z / 30.0)
        mask = torch.ones(T, T, dtype=torch.bool).tril()
        z = z.masked_fill(~mask, -1e30)
        p = torch.softmax(z, dim=-1)
        o = torch.einsum("bhts,bshd->bthd", p, v).reshape(B, T, hq * hd)
        return o @ L.o.T

    def moe(s, L, x):
        # x: [N, d]; returns y [N, d] and the load-balancing terms
        E, k = s.c["num_experts"], s.c["num_experts_per_tok"]
        probs = torch.softmax(x @ L.router.T, dim=-1)  # [N, E], over all experts
        gate, idx = probs.topk(k, dim=-1)  # [N, k]; raw gates, not renormalised
        y = torch.zeros_like(x)
        for e in range(E):
            rows, slot = (idx == e).nonzero(as_tuple=True)
            if rows.numel() == 0:
                continue
            xe = x[rows]  # [n_e, d]
            he = gelu_tanh(xe @ L.lin[e].T) * (xe @ L.lin_v[e].T)  # [n_e, f]
            y.index_add_(0, rows, (he @ L.lin_1[e].T) * gate[rows, slot, None])
        frac = F.one_hot(idx, E).float().sum(1).mean(0) / k  # [E] share of routed slots
        aux = E * (frac * probs.mean(0)).sum()  # Switch Transformer's balance loss; 1.0 when uniform
        return y, aux

    def forward(s, tokens):
        c = s.c
        eps = c["rms_norm_eps"]
        B, T = tokens.shape
        h = s.embed[tokens] * c["embedding_multiplier_scale"]  # [B, T, d]
        aux = 0.0
        for L in s.layers:
            a = s.attention(L, rms_norm(h, L.n0, eps))
            h = h + rms_norm(a, L.n1, eps)
            m, a_l = s.moe(L, rms_norm(h, L.n2, eps).reshape(B * T, -1))
            h = h + rms_norm(m.view(B, T, -1), L.n3, eps)
            aux = aux + a_l
        hf = rms_norm(h, s.norm, eps)
        return (hf @ s.embed.T) * c["output_multiplier_scale"], aux / len(s.layers)  # [B, T, V]


# ---------------------------------------------------------------------------------------------
# Export: hpcai-tech names, torch layout [out, in], F32 safetensors


def hf_tensors(model):
    t = {"model.embed_tokens.weight": model.embed, "model.norm.scale": model.norm}
    for i, L in enumerate(model.layers):
        p = f"model.layers.{i}."
        t[p + "attn.q_proj.weight"], t[p + "attn.k_proj.weight"] = L.q, L.k
        t[p + "attn.v_proj.weight"], t[p + "attn.o_proj.weight"] = L.v, L.o
        t[p + "pre_attn_norm.scale"], t[p + "post_attn_norm.scale"] = L.n0, L.n1
        t[p + "pre_moe_norm.scale"], t[p + "post_moe_norm.scale"] = L.n2, L.n3
        t[p + "moe_block.gate.weight"] = L.router
        for e in range(model.c["num_experts"]):
            q = f"{p}moe_block.experts.{e}."
            t[q + "linear.weight"], t[q + "linear_v.weight"], t[q + "linear_1.weight"] = L.lin[e], L.lin_v[e], L.lin_1[e]
    return {k: v.detach().contiguous().numpy().astype("<f4") for k, v in t.items()}


# Grok-1's constants (GROK1.md §1). Training uses the small model's own (sqrt(d) in, 1/sqrt(head) on the
# logits); the export folds the difference into the weights, exactly, so the files carry Grok-1's values and
# run unchanged in engines that hard-code them (llama.cpp does).
GROK1_EMB_MULT, GROK1_ATTN_MULT, GROK1_OUT_MULT = 78.38367176906169, 0.08838834764831845, 0.5773502691896257


def to_grok1_constants(t, c):
    """t: hf_tensors' dict (numpy f32), c: config; both changed in place to an equivalent model with
    Grok-1's multipliers. Embedding rows in: E*m = E'*M with E' = E*m/M; tied logits out: the final norm's
    scale takes M/m back. Attention logits: q*k*a = (q*a/A)*k*A."""
    m, a = c["embedding_multiplier_scale"], c["attn_output_multiplier"]
    t["model.embed_tokens.weight"] *= np.float32(m / GROK1_EMB_MULT)
    t["model.norm.scale"] *= np.float32(GROK1_EMB_MULT / m)
    for i in range(c["num_hidden_layers"]):
        t[f"model.layers.{i}.attn.q_proj.weight"] *= np.float32(a / GROK1_ATTN_MULT)
    c.update(embedding_multiplier_scale=GROK1_EMB_MULT, attn_output_multiplier=GROK1_ATTN_MULT,
             output_multiplier_scale=GROK1_OUT_MULT)


def read_safetensors(path):
    with open(path, "rb") as f:
        b = f.read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8: 8 + n])
    return {k: np.frombuffer(b[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]], dtype="<f4")
            .reshape(v["shape"]).copy() for k, v in h.items() if k != "__metadata__"}


def write_safetensors(path, tensors):
    header, off = {}, 0
    for name, a in tensors.items():
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        off += a.nbytes
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for a in tensors.values():
            f.write(a.tobytes())
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (results depend on it)")
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--d", type=int, default=256)
    ap.add_argument("--ffn", type=int, default=768)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--heldout-every", type=int, default=25, help="every N-th chapter is held out")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    # Without it the CPU's index_put_(accumulate=True) (the embedding's and the experts' gathers, backwards)
    # adds in parallel with atomics, and two runs differ in the last bits after a few steps.
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(a.seed)
    os.makedirs(a.out, exist_ok=True)
    t0 = time.time()

    chapters = read_kjv()
    held = [t for i, (_, _, t) in enumerate(chapters) if i % a.heldout_every == a.heldout_every - 1]
    train = [t for i, (_, _, t) in enumerate(chapters) if i % a.heldout_every != a.heldout_every - 1]
    train_text, held_text = "\n".join(train) + "\n", "\n".join(held) + "\n"
    for name, text in (("train.txt", train_text), ("heldout.txt", held_text)):
        with open(os.path.join(a.out, name), "w", encoding="utf-8") as f:
            f.write(text)
    # The tokenizer learns from the training chapters only, one verse-sized sentence per line.
    # Relative names: the trainer records its input and prefix in the model, which must not depend on --out.
    here = os.getcwd()
    os.chdir(a.out)
    with open("verses.tmp", "w", encoding="utf-8") as f:
        for t in train:
            f.write(re.sub(r"(?<=[.;:?!]) (?=[A-Z])", "\n", t) + "\n")
    train_tokenizer("verses.tmp", a.vocab, "tokenizer")
    os.remove("verses.tmp")
    os.remove("tokenizer.vocab")
    os.chdir(here)
    sp = spm.SentencePieceProcessor(model_file=os.path.join(a.out, "tokenizer.model"))
    train_ids = torch.tensor(sp.encode(train_text), dtype=torch.long)
    held_ids = torch.tensor(sp.encode(held_text), dtype=torch.long)
    print(f"corpus: {len(train)} + {len(held)} chapters, {len(train_ids)} + {len(held_ids)} tokens", flush=True)

    hd = 64
    c = {
        "architectures": ["Grok1ModelForCausalLM"], "model_type": "grok-1",
        "vocab_size": a.vocab, "hidden_size": a.d, "intermediate_size": a.ffn, "num_hidden_layers": a.layers,
        "num_attention_heads": a.d // hd, "num_key_value_heads": max(1, a.d // hd // 2), "head_dim": hd,
        "num_experts": 8, "num_experts_per_tok": 2, "max_position_embeddings": a.seq, "rms_norm_eps": 1e-5,
        "attn_output_multiplier": 1.0 / math.sqrt(hd), "embedding_multiplier_scale": math.sqrt(a.d),
        "output_multiplier_scale": 1.0 / math.sqrt(3.0), "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2,
        "rope_theta": 10000.0, "hidden_act": "gelu_pytorch_tanh", "tie_word_embeddings": True,
    }
    gen = torch.Generator().manual_seed(a.seed)
    model = Grok(c, gen)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and n != "embed"]
    rest = [p for n, p in model.named_parameters() if p.dim() < 2 or n == "embed"]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95), eps=1e-8)
    warm = max(1, a.steps // 20)

    def lr_at(step):  # linear warm-up, cosine down to a tenth
        if step < warm:
            return a.lr * (step + 1) / warm
        t = (step - warm) / max(1, a.steps - warm)
        return a.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))

    def held_loss():
        model.eval()
        n = (len(held_ids) - 1) // a.seq
        x = held_ids[: n * a.seq].view(n, a.seq)
        y = held_ids[1: n * a.seq + 1].view(n, a.seq)
        tot = 0.0
        with torch.no_grad():
            for i in range(0, n, a.batch):
                logits, _ = model(x[i: i + a.batch])
                tot += F.cross_entropy(logits.reshape(-1, a.vocab), y[i: i + a.batch].reshape(-1),
                                       reduction="sum").item()
        model.train()
        return tot / (n * a.seq)

    log = {"config": c, "args": vars(a), "torch": torch.__version__, "steps": [], "heldout": []}
    t_train = time.time()
    for step in range(a.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        starts = torch.randint(0, len(train_ids) - a.seq - 1, (a.batch,), generator=gen)
        x = torch.stack([train_ids[s: s + a.seq] for s in starts.tolist()])  # [B, T]
        y = torch.stack([train_ids[s + 1: s + a.seq + 1] for s in starts.tolist()])
        logits, aux = model(x)
        loss = F.cross_entropy(logits.reshape(-1, a.vocab), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        (loss + 0.01 * aux).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 25 == 0 or step == a.steps - 1:
            el = time.time() - t_train
            print(f"step {step:5d}  loss {loss.item():.4f}  aux {aux.item():.3f}  lr {lr_at(step):.2e}  {el:.0f} s",
                  flush=True)
            log["steps"].append([step, round(loss.item(), 4), round(aux.item(), 4), round(el, 1)])
        if (step + 1) % 500 == 0 and step + 1 < a.steps:
            hl = held_loss()
            log["heldout"].append([step + 1, round(hl, 4)])
            print(f"held-out loss {hl:.4f} (ppl {math.exp(hl):.1f})", flush=True)
    hl = held_loss()
    log["heldout"].append([a.steps, round(hl, 4)])
    log["train_seconds"] = round(time.time() - t_train, 1)
    log["total_seconds"] = round(time.time() - t0, 1)
    print(f"held-out loss {hl:.4f} (ppl {math.exp(hl):.1f}); {log['train_seconds']} s training", flush=True)

    tensors, c_out = hf_tensors(model), dict(c)
    to_grok1_constants(tensors, c_out)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(c_out, f, indent=2)
        f.write("\n")
    write_safetensors(os.path.join(a.out, "model.safetensors"), tensors)
    with open(os.path.join(a.out, "train_log.json"), "w") as f:
        json.dump(log, f, indent=1)
        f.write("\n")
    # Greedy continuation from torch, for comparing with groak on the same weights.
    ids = sp.encode("In the beginning God")
    with torch.no_grad():
        for _ in range(24):
            logits, _ = model(torch.tensor([ids]))
            ids.append(int(logits[0, -1].argmax()))
    print("torch greedy:", repr(sp.decode(ids)), flush=True)
    with open(os.path.join(a.out, "torch_greedy.json"), "w") as f:
        json.dump({"prompt": "In the beginning God", "ids": ids}, f)
        f.write("\n")


if __name__ == "__main__":
    main()
