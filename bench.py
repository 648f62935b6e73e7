"""
Speed and memory of MST against dense training, measured in one process on one GPU.

    python bench.py                       # GPT-2 124M at T=1024 (B=16) and T=4096 (B=4)
    python bench.py --smoke               # a tiny model on the CPU: checks the code path only

For each sequence length it times, with the same model, batch and optimizer:
  (a) dense       plain GPT-2 training
  (b) masked      MST at 90% sparsity (masks applied to gradients and weights), dense attention
  (c) hsa         (b) with Hybrid Sparse Attention, as in the ultra-sparse phase
  (d) update      one topology update (prune and regrow) on its own
plus every attention pattern alone (forward + backward) against flash causal attention.
Results are printed and written to --out as a markdown table.
"""

import argparse
import time

import torch
import torch.nn.functional as F
from torch._dynamo.utils import counters

from model import ATTENTION_MODES, GPT, GPTConfig, pattern_density, pattern_mask_mod
from sparse import MixedSparsity, SparsitySchedule, training_flops_per_token

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--smoke", action="store_true", help="tiny model, few steps, CPU friendly")
parser.add_argument("--shapes", default="1024x16,4096x4", help="comma-separated TxB pairs")
parser.add_argument("--steps", type=int, default=30, help="timed steps per configuration")
parser.add_argument("--warmup", type=int, default=8, help="untimed steps first (compilation happens here)")
parser.add_argument("--hsa_mode", default="blocksparse")
parser.add_argument("--attn_window", type=int, default=256)
parser.add_argument("--attn_stride", type=int, default=512)
parser.add_argument("--out", default="bench.md")
args = parser.parse_args()

device = "cuda" if torch.cuda.is_available() else "cpu"
if args.smoke:
    shapes, steps, warmup = [(64, 2)], 2, 1
    model_kw = dict(n_layer=2, n_head=2, n_embd=32, vocab_size=512, attn_block=16)
    args.attn_window, args.attn_stride = 16, 32
else:
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    steps, warmup = args.steps, args.warmup
    model_kw = dict(n_layer=12, n_head=12, n_embd=768, vocab_size=50304, attn_block=128)
use_compile = device == "cuda"
autocast = torch.autocast(device, dtype=torch.bfloat16) if device == "cuda" else torch.autocast(device, enabled=False)
torch.backends.cuda.matmul.allow_tf32 = True
peak = 989e12 if device == "cuda" and any(k in torch.cuda.get_device_name() for k in ("H100", "H200")) else None


def sync():
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, n):
    """Mean seconds per call of fn over n calls (after the caller's warm-up)."""
    sync()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    sync()
    return (time.perf_counter() - t) / n


rows, attention_rows = [], []
for T, B in shapes:
    torch.manual_seed(0)
    config = GPTConfig(block_size=T, attn_window=args.attn_window, attn_stride=args.attn_stride, **model_kw)
    raw = GPT(config).to(device)
    model = torch.compile(raw) if use_compile else raw
    optimizer = torch.optim.AdamW(raw.parameters(), lr=1e-4, weight_decay=0.1, betas=(0.9, 0.95),
                                  fused=device == "cuda")
    x = torch.randint(0, config.vocab_size, (B, T), device=device)
    y = torch.roll(x, -1, dims=1)
    # Ultra-sparse state from step 0: the warm-up ramp is skipped so that (b) runs at 90% at once.
    schedule = SparsitySchedule(max_iters=1000, sparsify_end=0, ultra_end=1000, restore_end=1000,
                                initial_sparsity=0.9, peak_sparsity=0.9)
    sparsity = None

    def train_step():
        with autocast:
            _, loss = model(x, y)
        loss.backward()
        if sparsity is not None:
            sparsity.apply_to_gradients()
        torch.nn.utils.clip_grad_norm_(raw.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if sparsity is not None:
            sparsity.apply_to_weights()

    sparse_numels = [p.numel() for n, p in raw.named_parameters() if n.startswith("transformer.h.") and p.dim() == 2]
    dense_flops = B * T * training_flops_per_token(config.n_layer, config.n_embd, T, sparse_numels,
                                                   [1.0] * len(sparse_numels), raw.lm_head.weight.numel())
    results = {}
    for name in ("dense", "masked", "hsa"):
        if name == "masked":
            sparsity = MixedSparsity(raw, schedule)
        raw.set_attention(args.hsa_mode if name == "hsa" else "dense")
        for _ in range(warmup):
            train_step()
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        seconds = timed(train_step, steps)
        memory = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
        results[name] = (seconds, memory)

    # (d) the topology update alone; it needs gradients, so leave one backward's worth in place
    with autocast:
        _, loss = model(x, y)
    loss.backward()
    update_seconds = timed(lambda: sparsity.prune_and_regrow(500, optimizer), max(steps // 5, 2))
    optimizer.zero_grad(set_to_none=True)

    # torch.compile must not recompile per step: flip the attention mode back and forth and
    # count the frames compiled; a second round of flips should add none.
    frames_before = counters["frames"]["total"]
    for mode in ("dense", args.hsa_mode, "dense", args.hsa_mode):
        raw.set_attention(mode)
        train_step()
    recompiles = counters["frames"]["total"] - frames_before

    base_seconds, base_memory = results["dense"]
    for name, (seconds, memory) in results.items():
        rows.append(dict(T=T, B=B, config=name, ms=seconds * 1e3, tok_s=B * T / seconds,
                         mfu=dense_flops / seconds / peak if peak else None, mem=memory,
                         speed=base_seconds / seconds, mem_ratio=memory / base_memory if base_memory == base_memory else None))
    rows.append(dict(T=T, B=B, config="update", ms=update_seconds * 1e3, tok_s=None, mfu=None, mem=None,
                     speed=None, mem_ratio=None,
                     note=f"amortised over ΔT=100: {update_seconds / 100 / results['masked'][0] * 100:.2f}% of a step; "
                          f"frames compiled by 4 extra mode flips: {recompiles}"))

    # every attention pattern alone, forward + backward, against flash causal
    if device == "cuda" or args.smoke:
        H, D = config.n_head, config.n_embd // config.n_head
        q, k, v = (torch.randn(B, H, T, D, device=device, dtype=torch.bfloat16 if device == "cuda" else torch.float32,
                               requires_grad=True) for _ in range(3))
        grad_out = torch.randn_like(q)
        flash = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True).backward(grad_out)
        for _ in range(3):
            flash()
        flash_seconds = timed(flash, steps)
        attention_rows.append(dict(T=T, mode="flash causal", ms=flash_seconds * 1e3, density=1.0, speed=1.0))
        if device == "cuda":
            from torch.nn.attention.flex_attention import create_block_mask, flex_attention
            flex = torch.compile(flex_attention)
            for mode in ATTENTION_MODES[1:]:
                mask = create_block_mask(pattern_mask_mod(mode, args.attn_window, args.attn_stride, config.attn_block),
                                         None, None, T, T, device=device, BLOCK_SIZE=config.attn_block)
                run = lambda: flex(q, k, v, block_mask=mask).backward(grad_out)
                for _ in range(3):
                    run()
                seconds = timed(run, steps)
                attention_rows.append(dict(T=T, mode=mode, ms=seconds * 1e3, speed=flash_seconds / seconds,
                                           density=pattern_density(mode, T, args.attn_window, args.attn_stride,
                                                                   config.attn_block)))
    del model, raw, optimizer, sparsity
    if device == "cuda":
        torch.cuda.empty_cache()

fmt = lambda v, f: "-" if v is None else format(v, f)
gpu = torch.cuda.get_device_name() if device == "cuda" else "CPU"
lines = [f"GPU: {gpu}, torch {torch.__version__}, GPT-2 {model_kw['n_layer']}x{model_kw['n_embd']}, "
         f"{'bf16, compiled' if use_compile else 'fp32, eager'}; HSA = {args.hsa_mode} "
         f"(W={args.attn_window}, S={args.attn_stride}); {steps} timed steps", "",
         "| T | B | config | ms/step | tokens/s | MFU | peak mem GiB | speed vs (a) | mem vs (a) |",
         "|---|---|---|---|---|---|---|---|---|"]
for r in rows:
    lines.append(f"| {r['T']} | {r['B']} | {r['config']} | {r['ms']:.2f} | {fmt(r['tok_s'], ',.0f')} | "
                 f"{fmt(r['mfu'] and r['mfu'] * 100, '.1f')}{'%' if r['mfu'] else ''} | {fmt(r['mem'], '.2f')} | "
                 f"{fmt(r['speed'], '.3f')} | {fmt(r['mem_ratio'], '.3f')} |")
notes = [f"- T={r['T']}: topology update {r['ms']:.1f} ms; {r['note']}" for r in rows if r["config"] == "update"]
lines += [""] + notes + ["", "| T | attention (fwd+bwd) | ms | kept pairs vs causal | speed vs flash |",
                         "|---|---|---|---|---|"]
for r in attention_rows:
    lines.append(f"| {r['T']} | {r['mode']} | {r['ms']:.3f} | {r['density']:.3f} | {r['speed']:.2f} |")
report = "\n".join(lines)
print(report)
with open(args.out, "w") as f:
    f.write(report + "\n")
