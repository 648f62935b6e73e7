"""
GPT-2 in one file, with Hybrid Sparse Attention (HSA) built in.

The model is GPT-2 as OpenAI described it. The one addition is the `attention` argument of
forward: None for dense causal attention (scaled_dot_product_attention, flash on GPUs), or a
sparse pattern from `model.hsa_pattern(...)`. The pattern is built outside the forward, once per
(pattern, window, sequence length), and cached; inside torch.compile it is an input like any
tensor, so switching patterns does not recompile. On GPUs a pattern is a set of FlexAttention
block masks, so no T x T mask ever exists there; on the CPU, where FlexAttention has no backward,
it is a boolean T x T mask for SDPA.

A speed option, off by default, `fp8_head`, trains the output layer and its loss in FP8
(FP8OutputLoss, at the end of the file); the plain path stays the reference.

Patterns (query i attends key j, always j <= i), in the second half of this file:
  dense        every earlier key
  local        i - j < W
  strided      local, or (i - j) % S == 0                  (Child et al. 2019, "strided")
  fixed        i // S == j // S, or j % S == S - 1          (Child et al. 2019, "fixed", c=1)
  blocksparse  block-aligned strided: with b = attn_block, qb = i // b, kb = j // b,
               qb - kb < W // b, or (qb - kb) % (S // b) == 0
The first four are the papers' definitions. `blocksparse` keeps or drops whole b x b tiles, so
FlexAttention skips the dropped tiles' work: it is the pattern to use for speed.
"""

import functools
import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

try:
    from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention
except ImportError:  # torch < 2.5: only the boolean-mask path is available
    BlockMask = create_block_mask = flex_attention = None
try:  # newer torch asks for the log-sum-exp with an AuxRequest and deprecates return_lse=True
    from torch.nn.attention.flex_attention import AuxRequest
except ImportError:
    AuxRequest = None

ATTENTION_MODES = ("dense", "local", "strided", "fixed", "blocksparse")


@dataclass
class GPTConfig:
    block_size: int = 1024
    vocab_size: int = 50304  # GPT-2's 50257 padded up to a multiple of 64 for speed
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = False
    hsa_mode: str = "blocksparse"  # the sparse attention pattern
    attn_window: int = 256  # W: keys in the local window
    attn_stride: int = 512  # S: stride of the strided/summary keys
    attn_block: int = 128  # tile of the blocksparse pattern
    fp8_head: bool = False  # train the output layer and loss in FP8 (FP8OutputLoss)

    def __post_init__(self):
        """Any shape that cannot make a model is a one-line ValueError here."""
        W, S, b, T = self.attn_window, self.attn_stride, self.attn_block, self.block_size
        if min(self.block_size, self.vocab_size, self.n_layer, self.n_head, self.n_embd) <= 0:
            raise ValueError("block_size, vocab_size, n_layer, n_head and n_embd must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout={self.dropout} must lie in [0, 1)")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}")
        if self.hsa_mode == "dense":
            raise ValueError("hsa_mode='dense' is no sparse pattern; hsa_phases=() keeps attention dense")
        if self.hsa_mode not in ATTENTION_MODES:
            raise ValueError(f"unknown attention mode {self.hsa_mode!r}; choose one of {ATTENTION_MODES}")
        if not (0 < W <= T and 0 < S <= T):
            raise ValueError(f"attn_window={W} and attn_stride={S} must lie in [1, block_size={T}]")
        if b <= 0 or W % b or S % b:
            raise ValueError(f"attn_window={W} and attn_stride={S} must be multiples of attn_block={b} "
                             "(the blocksparse pattern keeps whole tiles)")


class GPT(nn.Module):

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # tied input and output embeddings
        self.apply(self._init_weights)
        # GPT-2: residual projections get std 0.02/sqrt(2 * n_layer), so that the residual
        # stream's variance does not grow with depth.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))
        self._patterns = {}  # (mode, window, backend, T, device) -> the pattern forward takes

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self, non_embedding=True):
        n = sum(p.numel() for p in self.parameters())
        return n - self.transformer.wpe.weight.numel() if non_embedding else n

    def forward(self, idx, targets=None, attention=None):
        """Logits and mean cross-entropy; `attention` is None (dense) or from hsa_pattern()."""
        B, T = idx.size()
        if T > self.config.block_size:
            raise ValueError(f"sequence of length {T} exceeds block_size {self.config.block_size}")
        pos = torch.arange(T, dtype=torch.long, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x, attention)
        x = self.transformer.ln_f(x)
        if targets is None:  # generation: only the last position's logits are needed
            return self.lm_head(x[:, [-1], :]), None
        if self.config.fp8_head and self.training:
            logits, loss = FP8OutputLoss.apply(x.view(B * T, -1), self.lm_head.weight, targets.view(-1))
            return logits.view(B, T, -1), loss
        logits = self.lm_head(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        return logits, loss

    def hsa_window(self, T, growth=0.0):
        """The local window after growing `growth` of the way from attn_window to T, in whole tiles."""
        W, b = self.config.attn_window, self.config.attn_block
        return min(T, W + int(growth * (T - W)) // b * b)

    def hsa_pattern(self, T, device, window=None, mode=None, backend=None):
        """The `attention` argument of forward for a sparse pattern at sequence length T: the
        config's hsa_mode and attn_window unless `mode` and `window` say otherwise. None when the
        pattern keeps every causal pair. backend: 'flex' (default on CUDA) or 'mask' (elsewhere)."""
        mode, window = mode or self.config.hsa_mode, min(T, window or self.config.attn_window)
        if mode not in ATTENTION_MODES:
            raise ValueError(f"unknown attention mode {mode!r}; choose one of {ATTENTION_MODES}")
        if keeps_every_pair(mode, T, window):
            return None
        backend = backend or ("flex" if torch.device(device).type == "cuda" else "mask")
        key = (mode, window, backend, T, str(device))
        if key not in self._patterns:
            c = self.config
            if backend == "flex":
                if create_block_mask is None:
                    raise RuntimeError("sparse attention on CUDA needs torch>=2.5 (FlexAttention)")
                self._patterns[key] = flex_pattern(mode, T, window, c.attn_stride, c.attn_block, device)
            else:
                i = torch.arange(T, device=device)
                self._patterns[key] = pattern_mask_mod(mode, window, c.attn_stride, c.attn_block)(
                    None, None, i[:, None], i[None, :])
        return self._patterns[key]

    def attention_density(self, T, window=None, mode=None):
        """Kept (query, key) pairs of a sparse pattern (arguments as hsa_pattern) over those of dense
        causal attention, for FLOP counting."""
        c = self.config
        window = min(T, window or c.attn_window)
        return pattern_density(mode or c.hsa_mode, T, window, c.attn_stride, c.attn_block)

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, generator=None, mode="dense"):
        for _ in range(max_new_tokens):
            context = idx if idx.size(1) <= self.config.block_size else idx[:, -self.config.block_size:]
            attention = self.hsa_pattern(context.size(1), idx.device, mode=mode)
            logits, _ = self(context, attention=attention)
            logits = logits[:, -1, :] / temperature
            if top_k is not None:
                kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, [-1]]
                logits = logits.masked_fill(logits < kth, -float("inf"))
            next_id = torch.multinomial(F.softmax(logits, dim=-1), num_samples=1, generator=generator)
            idx = torch.cat((idx, next_id), dim=1)
        return idx


class Block(nn.Module):

    def __init__(self, config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x, attention):
        x = x + self.attn(self.ln_1(x), attention)
        return x + self.mlp(self.ln_2(x))


class CausalSelfAttention(nn.Module):

    def __init__(self, config):
        super().__init__()
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head, self.dropout = config.n_head, config.dropout

    def forward(self, x, attention):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        dropout_p = self.dropout if self.training else 0.0
        if attention is None:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
        elif isinstance(attention, torch.Tensor):  # boolean (T, T) mask: the CPU path
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attention, dropout_p=dropout_p)
        else:  # FlexAttention block masks (it has no attention dropout)
            y = sparse_attention(q, k, v, attention)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):

    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x))))


# -----------------------------------------------------------------------------
# Hybrid Sparse Attention: the patterns, and how FlexAttention runs them on GPUs.
#
# FlexAttention's Triton kernels work on 128 x 128 tiles (FLEX_BLOCK): a pattern tile (attn_block)
# smaller than that is still exact, the kernel then skips only whole 128-tiles. `strided` and
# `fixed` pick single key columns in every tile, so one block mask over them would skip nothing.
# They are therefore computed in two parts over disjoint key sets, each of which does skip work,
# and merged exactly through the log-sum-exp of each part (`merge_partial_attention`):
#   strided  the local window, plus the strided keys (i - j >= W, (i - j) % S == 0). Ordering
#            the positions by i mod S puts every query's strided keys in its own contiguous run
#            of T/S positions, so that part becomes block-diagonal.
#   fixed    the own S-block, plus the T/S "summary" keys j % S == S - 1 of earlier blocks,
#            gathered into a short key sequence.

FLEX_BLOCK = 128


class FlexPattern(NamedTuple):
    near: object  # BlockMask over the keys in natural order
    far: object  # BlockMask over the rest, laid out as sparse_attention does; None if `near` is all
    mode: str
    stride: int


def causal(b, h, q, k):
    return q >= k


def pattern_mask_mod(mode, window, stride, block):
    """The pattern as a FlexAttention mask_mod; it also broadcasts over index grids."""
    if mode == "dense":
        return causal
    if mode == "local":
        return lambda b, h, q, k: (q >= k) & (q - k < window)
    if mode == "strided":
        return lambda b, h, q, k: (q >= k) & ((q - k < window) | ((q - k) % stride == 0))
    if mode == "fixed":
        return lambda b, h, q, k: (q >= k) & ((q // stride == k // stride) | (k % stride == stride - 1))
    if mode == "blocksparse":
        window_blocks, stride_blocks = window // block, stride // block
        def mask_mod(b, h, q, k):
            block_distance = q // block - k // block
            return (q >= k) & ((block_distance < window_blocks) | (block_distance % stride_blocks == 0))
        return mask_mod
    raise ValueError(f"unknown attention mode {mode!r}; choose one of {ATTENTION_MODES}")


def keeps_every_pair(mode, T, window):
    """Whether the pattern is dense causal attention: a window that spans the sequence keeps every pair
    (fixed's blocks do not grow with it)."""
    return mode == "dense" or (mode != "fixed" and window >= T)


@functools.lru_cache(maxsize=None)  # asked every training step; the answer never changes
def pattern_density(mode, T, window, stride, block):
    """Kept (query, key) pairs of the pattern over those of a dense causal mask."""
    i = torch.arange(T)
    kept = pattern_mask_mod(mode, window, stride, block)(None, None, i[:, None], i[None, :]).sum().item()
    return kept / (T * (T + 1) / 2)


def flex_pattern(mode, T, window, stride, block, device):
    """The FlexAttention block masks of a pattern (see FlexPattern)."""
    def block_mask(mask_mod, kv_len=T):
        return create_block_mask(mask_mod, None, None, T, kv_len, device=device, BLOCK_SIZE=FLEX_BLOCK)

    if mode == "strided" and T % stride == 0 and T > max(window, stride):
        group, min_steps = T // stride, -(-window // stride)  # positions per residue class; ceil(W / S)
        # in residue order, position p holds i = (p % group) * stride + p // group
        far = lambda b, h, q, k: (q // group == k // group) & (q - k >= min_steps)
        near = block_mask(pattern_mask_mod("local", window, stride, block))
        return FlexPattern(near, block_mask(far), mode, stride)
    if mode == "fixed" and T > stride:
        near = lambda b, h, q, k: (q >= k) & (q // stride == k // stride)
        far = lambda b, h, q, k: k < q // stride  # summary key k sits at position k * stride + stride - 1
        return FlexPattern(block_mask(near), block_mask(far, T // stride), mode, stride)
    mask = block_mask(pattern_mask_mod(mode, window, stride, block))
    if mode == "blocksparse" and block % FLEX_BLOCK == 0:
        # Every kept tile is whole, so inside a tile only the causal rule decides. Handing the
        # kernel that rule instead of the pattern's own lets every window share one compiled
        # kernel: a window that grows during training compiles nothing new.
        mask = BlockMask.from_kv_blocks(mask.kv_num_blocks, mask.kv_indices, mask.full_kv_num_blocks,
                                        mask.full_kv_indices, BLOCK_SIZE=mask.BLOCK_SIZE, mask_mod=causal,
                                        seq_lengths=mask.seq_lengths)
    return FlexPattern(mask, None, mode, stride)


def merge_partial_attention(y_near, lse_near, y_far, lse_far):
    """Attention over the union of two disjoint key sets, from each set's output and log-sum-exp.

    Each part is a softmax normalised over its own keys; the whole softmax weighs them by their
    normalisers, exp(lse_near) and exp(lse_far). A query with no far keys has lse_far = -inf,
    so its weight is 0.
    """
    far_weight = torch.sigmoid(lse_far - lse_near).unsqueeze(-1).to(y_near.dtype)
    return y_near + far_weight * (y_far - y_near)


def flex_attention_lse(q, k, v, block_mask):
    """FlexAttention's output and each query's log-sum-exp, in the API of the torch at hand."""
    if AuxRequest is None:
        return flex_attention(q, k, v, block_mask=block_mask, return_lse=True)
    y, aux = flex_attention(q, k, v, block_mask=block_mask, return_aux=AuxRequest(lse=True))
    return y, aux.lse


def sparse_attention(q, k, v, pattern):
    if pattern.far is None:
        return flex_attention(q, k, v, block_mask=pattern.near)
    y_near, lse_near = flex_attention_lse(q, k, v, block_mask=pattern.near)
    stride = pattern.stride
    if pattern.mode == "strided":
        # positions as a (T/S, S) grid; transposing it orders them by i mod S, and back
        T = q.size(2)
        regroup = lambda t, rows: t.unflatten(2, (rows, T // rows)).transpose(2, 3).flatten(2, 3)
        y_far, lse_far = flex_attention_lse(*(regroup(t, T // stride) for t in (q, k, v)), block_mask=pattern.far)
        y_far, lse_far = regroup(y_far, stride), regroup(lse_far, stride)
    else:  # fixed: the last key of every block
        y_far, lse_far = flex_attention_lse(q, k[:, :, stride - 1::stride], v[:, :, stride - 1::stride],
                                            block_mask=pattern.far)
    return merge_partial_attention(y_near, lse_near, y_far, lse_far)


# -----------------------------------------------------------------------------
# The output layer and its loss in FP8, for training on GPUs that have it (Hopper, Ada).
# The output layer's three matrix multiplies (the logits, and the gradients of its input and of the
# tied embedding) are a third of the model's, and these GPUs multiply FP8 at twice the bf16 rate.
# Each operand is rounded to FP8 with one scale per tensor; products accumulate in float32.
# The loss is computed in the same function so that the backward can write the logits' gradient
# straight to FP8: that gradient is (softmax - one_hot) / n, and |softmax - one_hot| <= 1 gives
# its scale without a pass to measure it.

E4M3, E5M2 = getattr(torch, "float8_e4m3fn", None), getattr(torch, "float8_e5m2", None)


def to_fp8(t, dtype):
    """t rounded to `dtype`, scaled so that its largest magnitude is the format's largest value, and
    the inverse scale that undoes it."""
    scale = torch.finfo(dtype).max / t.abs().amax().float().clamp(min=1e-12)
    return (t.float() * scale).to(dtype), scale.reciprocal()


class FP8OutputLoss(torch.autograd.Function):
    """(logits, loss) of x @ weight.T and its mean cross-entropy against targets (-1: ignored).
    Activations and weights are rounded to e4m3 (more precision), the gradient to e5m2 (more range).
    The logits it returns are for reading; the gradient flows through the loss."""

    @staticmethod
    def forward(ctx, x, weight, targets):
        x8, x_inv = to_fp8(x, E4M3)
        w8, w_inv = to_fp8(weight, E4M3)
        # _scaled_mm takes its first operand row-major and its second column-major
        logits = torch._scaled_mm(x8, w8.t(), scale_a=x_inv, scale_b=w_inv, out_dtype=torch.bfloat16)
        lse = torch.logsumexp(logits.float(), dim=-1)  # the loss by hand: the backward reuses lse
        counted = targets != -1
        target_logits = logits.gather(1, targets.clamp(min=0)[:, None]).squeeze(1).float()
        n = counted.sum()
        loss = torch.where(counted, lse - target_logits, 0.0).sum() / n
        ctx.save_for_backward(x8, x_inv, w8, w_inv, logits, lse, targets, n)
        ctx.mark_non_differentiable(logits)
        return logits, loss

    @staticmethod
    def backward(ctx, _, grad_loss):
        x8, x_inv, w8, w_inv, logits, lse, targets, n = ctx.saved_tensors
        vocab = torch.arange(logits.size(1), device=logits.device)
        softmax_minus_one_hot = torch.exp(logits.float() - lse[:, None]) - (vocab == targets[:, None]).float()
        limit = torch.finfo(E5M2).max
        g8 = torch.where((targets != -1)[:, None], softmax_minus_one_hot * limit, 0.0).to(E5M2)
        g_inv = grad_loss.float() / (n * limit)
        # both products reduce over a dimension of g8, and FP8 products want it contiguous in both
        # operands: over the vocabulary for grad_x (g8 as it is), over the tokens for grad_w (g8.T)
        grad_x = torch._scaled_mm(g8, w8.t().contiguous().t(), scale_a=g_inv, scale_b=w_inv,
                                  out_dtype=torch.bfloat16)
        grad_w = torch._scaled_mm(g8.t().contiguous(), x8.t().contiguous().t(), scale_a=g_inv, scale_b=x_inv,
                                  out_dtype=torch.float32)
        return grad_x, grad_w, None
