"""
Speed and memory of MST against dense training, measured in one process on one GPU.

    python bench.py                       # GPT-2 124M at T=1024 (B=16) and T=4096 (B=4)
    python bench.py --hsa_mode strided --shapes 4096x4:256:512     # another pattern, W and S
    python bench.py --smoke               # a tiny model on the CPU: checks the code path only

Without --smoke it needs a CUDA GPU.

For each sequence length it times, with the same model, batch and optimizer:
  (a) dense       plain GPT-2 training
  (b) masked      MST at 90% sparsity (masks applied to gradients and weights), dense attention
  (c) hsa         (b) with Hybrid Sparse Attention, as in the ultra-sparse phase
  (d) update      one topology update (prune and regrow) on its own
and (a)-(c) again with the output layer and loss in FP8 (fp8_head; where the GPU has FP8), all
against (a), the nanoGPT-equivalent step.
plus every attention pattern alone (forward + backward) against flash causal attention, in GPU
time (the sum of its kernels' durations, from the profiler) and in wall time per call, and its
largest difference from attention with the pattern's boolean mask.
Results are printed and written to --out (out/bench.md) as a markdown table.
"""

import argparse
import os
import time
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch._dynamo.utils import counters
from torch.nn.attention import SDPBackend, sdpa_kernel

from flops import training_flops_per_token
from model import ATTENTION_MODES, GPT, GPTConfig, flex_pattern, pattern_density, pattern_mask_mod, sparse_attention
from runtime import fail, gpu_peak_flops, has_fp8
from sparse import EMBEDDING, MixedSparsity, SparsitySchedule, optimizer_step, sparse_parameters

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--smoke", action="store_true", help="tiny model, few steps, CPU friendly")
parser.add_argument("--shapes", default="1024x16:256:512,4096x4:256:1024",
                    help="comma-separated TxB:W:S (sequence length, batch, HSA window and stride; W:S optional)")
parser.add_argument("--steps", type=int, default=30, help="timed steps per configuration")
parser.add_argument("--warmup", type=int, default=8, help="untimed steps first (compilation happens here)")
parser.add_argument("--hsa_mode", default="blocksparse")
parser.add_argument("--out", default=os.path.join("out", "bench.md"), help="the report (default: out/bench.md)")
args = parser.parse_args()

device = "cuda" if torch.cuda.is_available() else "cpu"
if device == "cpu" and not args.smoke:  # GPT-2 124M on the CPU would fill the memory before its first step
    fail("bench.py measures a GPU and this torch sees no CUDA device; python bench.py --smoke runs its code "
         "path on a tiny model on the CPU")
if args.smoke:
    shapes, steps, warmup = [(64, 2, 16, 32)], 2, 1
    model_kw = dict(n_layer=2, n_head=2, n_embd=32, vocab_size=512, attn_block=16)
else:
    shapes = []
    for spec in args.shapes.split(","):
        size, *window_stride = spec.split(":")
        shapes.append(tuple(int(v) for v in size.split("x")) + tuple(int(v) for v in window_stride or (256, 512)))
    steps, warmup = args.steps, args.warmup
    model_kw = dict(n_layer=12, n_head=12, n_embd=768, vocab_size=50304, attn_block=128)
use_compile = device == "cuda"
autocast = torch.autocast(device, dtype=torch.bfloat16) if device == "cuda" else torch.autocast(device, enabled=False)
torch.backends.cuda.matmul.allow_tf32 = True
peak = gpu_peak_flops(device)


def sync():
    if device == "cuda":
        torch.cuda.synchronize()


def gpu_time(fn, n):
    """Mean GPU seconds per call: the summed durations of the kernels it launches. Unlike wall time,
    this leaves out the host's launch overhead, which the full model hides behind other layers."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(n):
            fn()
        sync()
    return sum(e.self_device_time_total for e in prof.key_averages()) / 1e6 / n


def timed(fn, n):
    """Mean seconds per call of fn over n calls (after the caller's warm-up)."""
    sync()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    sync()
    return (time.perf_counter() - t) / n


rows, attention_rows = [], []
for T, B, window, stride in shapes:
    torch._dynamo.reset()  # each shape compiles afresh, with static shapes
    torch.manual_seed(0)
    config = GPTConfig(block_size=T, attn_window=window, attn_stride=stride, **model_kw)
    raw = GPT(config).to(device)
    model = torch.compile(raw, dynamic=False) if use_compile else raw
    optimizer = torch.optim.AdamW(raw.parameters(), lr=1e-4, weight_decay=0.1, betas=(0.9, 0.95),
                                  fused=device == "cuda")
    x = torch.randint(0, config.vocab_size, (B, T), device=device)
    y = torch.roll(x, -1, dims=1)
    # Ultra-sparse state from step 0: the warm-up ramp is skipped so that (b) runs at 90% at once. The
    # topology moves at every update (drop_fraction 0.3), or (d) would time an update that changes nothing.
    schedule = SparsitySchedule(max_iters=1000, sparsify_end=0.0, ultra_end=1.0, restore_end=1.0,
                                initial_sparsity=0.9, peak_sparsity=0.9, drop_fraction=0.3)
    sparsity, attention = None, None

    def train_step():
        with autocast:
            _, loss = model(x, y, attention)
        loss.backward()
        optimizer_step(optimizer, raw.parameters(), sparsity, grad_clip=1.0)

    dense_flops = B * T * training_flops_per_token({n: p.numel() for n, p in sparse_parameters(raw)},
                                                   (config.n_layer, config.n_embd, T))
    results, masks = {}, None
    for fp8_head in (False, True) if has_fp8(device) else (False,):
        raw.config.fp8_head = fp8_head
        for name in ("dense", "masked", "hsa"):
            if name != "dense" and masks is None:  # after (a), so that (a)'s memory holds no masks
                masks = MixedSparsity(sparse_parameters(raw), schedule, {EMBEDDING: 0.0})  # the block Linears only
            sparsity = masks if name != "dense" else None
            attention = raw.hsa_pattern(T, device, mode=args.hsa_mode) if name == "hsa" else None
            for _ in range(warmup):
                train_step()
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            seconds = timed(train_step, steps)
            memory = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
            results[name + (" fp8 head" if fp8_head else "")] = (seconds, memory)
    raw.config.fp8_head = False

    # (d) the topology update alone; it needs gradients, so leave one backward's worth in place
    with autocast:
        _, loss = model(x, y, attention)
    loss.backward()
    sparsity.prune_and_regrow(500, optimizer)  # the first call allocates its buffers: a one-off cost
    update_seconds = timed(lambda: sparsity.prune_and_regrow(500, optimizer), max(steps // 5, 2))
    optimizer.zero_grad(set_to_none=True)

    # torch.compile must not recompile per step: flip the attention mode back and forth and
    # count the frames compiled; a second round of flips should add none.
    frames_before = counters["frames"]["total"]
    for attention in (None, raw.hsa_pattern(T, device, mode=args.hsa_mode)) * 2:
        train_step()
    recompiles = counters["frames"]["total"] - frames_before

    base_seconds, base_memory = results["dense"]
    for name, (seconds, memory) in results.items():
        rows.append(dict(T=T, B=B, config=name, ms=seconds * 1e3, tok_s=B * T / seconds,
                         mfu=dense_flops / seconds / peak if peak else None, mem=memory,
                         speed=base_seconds / seconds, mem_ratio=memory / base_memory if base_memory == base_memory else None))
    # nanoGPT's MFU formula counts 6 FLOPs per parameter and token plus full (not causal) attention
    nanogpt_flops = B * T * (6 * raw.num_params() + 12 * config.n_layer * config.n_embd * T)
    rows.append(dict(T=T, B=B, config="update", ms=update_seconds * 1e3, tok_s=None, mfu=None, mem=None,
                     speed=None, mem_ratio=None,
                     note=f"amortised over ΔT=100: {update_seconds / 100 / results['masked'][0] * 100:.2f}% of a step; "
                          f"frames compiled by 4 extra mode flips: {recompiles}; HSA W={window}, S={stride}"
                          + (f"; (a) MFU by nanoGPT's formula {nanogpt_flops / base_seconds / peak * 100:.1f}%" if peak else "")))

    # every attention pattern alone, forward + backward, against flash causal, through model.py's own code
    if device == "cuda" or args.smoke:
        H, D = config.n_head, config.n_embd // config.n_head
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        q, k, v = (torch.randn(B, H, T, D, device=device, dtype=dtype, requires_grad=device == "cuda") for _ in range(3))
        grad_out = torch.randn_like(q)
        position = torch.arange(T, device=device)
        # PyTorch picks the causal kernel itself (cuDNN's on an H200 with torch 2.11); both are timed
        causal_kernels = {"flash causal": SDPBackend.FLASH_ATTENTION}
        if device == "cuda":
            causal_kernels["cudnn causal"] = SDPBackend.CUDNN_ATTENTION
        for mode in [*causal_kernels, *ATTENTION_MODES[1:]]:
            if mode in causal_kernels:
                def attend(backend=causal_kernels[mode]):
                    with sdpa_kernel(backend) if device == "cuda" else nullcontext():
                        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:
                pattern = flex_pattern(mode, T, window, stride, config.attn_block, device)
                compiled = torch.compile(sparse_attention, dynamic=False) if device == "cuda" else sparse_attention
                attend = lambda: compiled(q, k, v, pattern)
            run = (lambda: attend().backward(grad_out)) if device == "cuda" else attend  # CPU flex: forward only
            pattern_mode = "dense" if mode in causal_kernels else mode
            with torch.no_grad():  # against SDPA with the brute-force boolean mask
                mask = pattern_mask_mod(pattern_mode, window, stride, config.attn_block)(None, None, position[:, None],
                                                                                         position[None, :])
                error = (attend().float() - F.scaled_dot_product_attention(q, k, v, attn_mask=mask).float()).abs().max()
            for _ in range(3):
                run()
            seconds = timed(run, steps)
            kernel_seconds = gpu_time(run, steps) if device == "cuda" else seconds
            if mode == "flash causal":
                flash_seconds = kernel_seconds
            attention_rows.append(dict(T=T, mode=mode, ms=kernel_seconds * 1e3, wall_ms=seconds * 1e3,
                                       speed=flash_seconds / kernel_seconds, error=error.item(),
                                       density=pattern_density(pattern_mode, T, window, stride, config.attn_block)))
    del model, raw, optimizer, sparsity
    if device == "cuda":
        torch.cuda.empty_cache()

fmt = lambda v, f: "-" if v is None else format(v, f)
gpu = torch.cuda.get_device_name() if device == "cuda" else "CPU"
lines = [f"GPU: {gpu}, torch {torch.__version__}, GPT-2 {model_kw['n_layer']}x{model_kw['n_embd']}, "
         f"{'bf16, compiled' if use_compile else 'fp32, eager'}; HSA = {args.hsa_mode}; {steps} timed steps", "",
         "| T | B | config | ms/step | tokens/s | MFU | peak mem GiB | speed vs (a) | mem vs (a) |",
         "|---|---|---|---|---|---|---|---|---|"]
for r in rows:
    lines.append(f"| {r['T']} | {r['B']} | {r['config']} | {r['ms']:.2f} | {fmt(r['tok_s'], ',.0f')} | "
                 f"{fmt(r['mfu'] and r['mfu'] * 100, '.1f')}{'%' if r['mfu'] else ''} | {fmt(r['mem'], '.2f')} | "
                 f"{fmt(r['speed'], '.3f')} | {fmt(r['mem_ratio'], '.3f')} |")
notes = [f"- T={r['T']}: topology update {r['ms']:.1f} ms; {r['note']}" for r in rows if r["config"] == "update"]
lines += [""] + notes + ["", "| T | attention (fwd+bwd) | GPU ms | wall ms | kept pairs vs causal | speed vs flash "
                         "(GPU time) | max error vs bool mask |", "|---|---|---|---|---|---|---|"]
for r in attention_rows:
    lines.append(f"| {r['T']} | {r['mode']} | {r['ms']:.3f} | {r['wall_ms']:.3f} | {r['density']:.3f} | "
                 f"{r['speed']:.2f} | {r['error']:.1e} |")
report = "\n".join(lines)
print(report)
os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
with open(args.out, "w") as f:
    f.write(report + "\n")
