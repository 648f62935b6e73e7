"""GPT-2 and Hybrid Sparse Attention against brute-force definitions and a float64 reference."""

import math
import types
import warnings

import pytest
import torch

from model import ATTENTION_MODES, GPT, GPTConfig, flex_pattern, pattern_density, pattern_mask_mod

T, W, S, BLOCK = 48, 8, 12, 4


def brute_force_allowed(mode, i, j, window=W, stride=S, block=BLOCK):
    """The patterns as the papers state them, one (query, key) pair at a time."""
    if j > i:
        return False
    if mode == "dense":
        return True
    if mode == "local":
        return i - j < window
    if mode == "strided":  # Child et al.: the previous `window` positions, and every stride-th one back
        return i - j < window or (i - j) % stride == 0
    if mode == "fixed":  # Child et al.: the own block, and the last ("summary") cell of every block
        return i // stride == j // stride or j % stride == stride - 1
    if mode == "blocksparse":  # whole tiles: the nearest window/block tiles, then every stride/block-th tile back
        qb, kb = i // block, j // block
        return qb - kb < window // block or (qb - kb) % (stride // block) == 0
    raise AssertionError(mode)


def brute_force_mask(mode, n=T):
    return torch.tensor([[brute_force_allowed(mode, i, j) for j in range(n)] for i in range(n)])


@pytest.mark.parametrize("mode", ATTENTION_MODES)
def test_pattern_matches_brute_force(mode):
    i = torch.arange(T)
    mask = pattern_mask_mod(mode, W, S, BLOCK)(None, None, i[:, None], i[None, :])
    assert torch.equal(mask, brute_force_mask(mode))
    assert pattern_density(mode, T, W, S, BLOCK) == pytest.approx(brute_force_mask(mode).sum().item() / (T * (T + 1) / 2))


def test_blocksparse_keeps_whole_tiles():
    mask = brute_force_mask("blocksparse")
    tiles = mask.view(T // BLOCK, BLOCK, T // BLOCK, BLOCK).transpose(1, 2).flatten(2)
    for qb in range(T // BLOCK):
        for kb in range(qb):  # strictly below the diagonal, a tile is all kept or all dropped
            assert tiles[qb, kb].all() or not tiles[qb, kb].any()


def reference_attention(q, k, v, allowed):
    """float64 softmax attention written out with an explicit mask."""
    q, k, v = q.double(), k.double(), v.double()
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.size(-1))
    scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def model_config(**kw):
    args = dict(block_size=T, vocab_size=97, n_layer=2, n_head=2, n_embd=16, attn_window=W, attn_stride=S,
                attn_block=BLOCK)
    args.update(kw)
    return GPTConfig(**args)


def reference_forward(model, idx, mode):
    """The whole GPT forward in float64 with the brute-force mask: an independent re-derivation."""
    sd = {k: v.double() for k, v in model.state_dict().items()}
    c = model.config
    B, n = idx.shape
    allowed = brute_force_mask(mode, n)
    x = sd["transformer.wte.weight"][idx] + sd["transformer.wpe.weight"][:n]
    ln = lambda x, p: torch.nn.functional.layer_norm(x, (c.n_embd,), sd[p + ".weight"])
    for layer in range(c.n_layer):
        p = f"transformer.h.{layer}."
        h = ln(x, p + "ln_1") @ sd[p + "attn.c_attn.weight"].T
        q, k, v = (t.view(B, n, c.n_head, -1).transpose(1, 2) for t in h.split(c.n_embd, dim=2))
        y = reference_attention(q, k, v, allowed).transpose(1, 2).reshape(B, n, c.n_embd)
        x = x + y @ sd[p + "attn.c_proj.weight"].T
        h = torch.nn.functional.gelu(ln(x, p + "ln_2") @ sd[p + "mlp.c_fc.weight"].T)
        x = x + h @ sd[p + "mlp.c_proj.weight"].T
    return ln(x, "transformer.ln_f") @ sd["lm_head.weight"].T


@pytest.mark.parametrize("backend", ["mask", "flex"])
@pytest.mark.parametrize("mode", ATTENTION_MODES)
def test_model_output_matches_float64_reference(mode, backend):
    torch.manual_seed(0)
    model = GPT(model_config()).eval()
    idx = torch.randint(0, 97, (2, T))
    targets = torch.randint(0, 97, (2, T))
    attention = model.hsa_pattern(T, "cpu", mode=mode, backend=backend)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FlexAttention warns that it runs uncompiled on the CPU
        logits, loss = model(idx, targets, attention)
    ref = reference_forward(model, idx, mode)
    assert torch.allclose(logits.double(), ref, atol=2e-5, rtol=1e-4)
    ref_loss = torch.nn.functional.cross_entropy(ref.view(-1, 97), targets.view(-1))
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-5)


def dense_flex_attention(q, k, v, block_mask, return_lse=False, return_aux=None):
    """FlexAttention's contract written out densely (CPU FlexAttention has no backward); the
    log-sum-exp as older (return_lse) and newer torch (return_aux) hand it back."""
    i = torch.arange(q.size(-2))[:, None]
    j = torch.arange(k.size(-2))[None, :]
    allowed = block_mask.mask_mod(None, None, i, j)
    # a large negative rather than -inf, so that rows with no keys keep finite gradients
    scores = (q @ k.transpose(-1, -2) / math.sqrt(q.size(-1))).masked_fill(~allowed, -1e9)
    lse = torch.logsumexp(scores, dim=-1)
    out = torch.exp(scores - lse.unsqueeze(-1)) @ v
    if return_aux is not None:
        return out, types.SimpleNamespace(lse=lse if return_aux.lse else None)
    return (out, lse) if return_lse else out


@pytest.mark.parametrize("mode", ["strided", "fixed"])
def test_flex_attention_is_called_without_deprecated_arguments(mode):
    """The two-part patterns ask FlexAttention for its log-sum-exp; newer torch deprecates asking with
    return_lse=True, and bench.py --smoke printed the warning."""
    model = GPT(model_config()).eval()
    pattern = model.hsa_pattern(T, "cpu", mode=mode, backend="flex")
    assert pattern.far is not None
    with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model(torch.randint(0, 97, (1, T)), None, pattern)
    assert not [w for w in caught if "deprecated" in str(w.message)], [str(w.message) for w in caught]


@pytest.mark.parametrize("mode", ["strided", "fixed"])
def test_two_part_attention_gradients_match_the_single_mask(mode, monkeypatch):
    """strided and fixed run on the GPU as two disjoint parts merged by log-sum-exp; the loss and
    every gradient must equal those of the one boolean mask, in float64."""
    import model as model_module
    monkeypatch.setattr(model_module, "flex_attention", dense_flex_attention)
    torch.manual_seed(0)
    idx, targets = torch.randint(0, 97, (2, T)), torch.randint(0, 97, (2, T))
    results = {}
    for backend in ("mask", "flex"):
        torch.manual_seed(1)
        model = GPT(model_config()).double()
        pattern = model.hsa_pattern(T, "cpu", mode=mode, backend=backend)
        if backend == "flex":
            assert pattern.far is not None  # the far part exists: the merge is what is tested
        loss = model(idx, targets, pattern)[1]
        loss.backward()
        results[backend] = (loss.item(), [p.grad.clone() for p in model.parameters()])
    assert results["flex"][0] == pytest.approx(results["mask"][0], rel=1e-12)
    for g_flex, g_mask in zip(results["flex"][1], results["mask"][1]):
        assert torch.allclose(g_flex, g_mask, atol=1e-12, rtol=1e-9)


@pytest.mark.parametrize("mode,n,split", [("strided", T, True), ("strided", T - 4, False), ("fixed", T, True),
                                           ("fixed", S, False), ("local", T, False), ("blocksparse", T, False)])
def test_flex_pattern_splits_only_where_it_can(mode, n, split):
    """strided needs S to divide T for its residue order; with no earlier block, fixed has no far part."""
    near, far, _, _ = flex_pattern(mode, n, W, S, BLOCK, torch.device("cpu"))
    assert (far is not None) == split
    if not split:  # the one block mask is the whole pattern
        i = torch.arange(n)
        assert torch.equal(near.mask_mod(None, None, i[:, None], i[None, :]), brute_force_mask(mode, n))


def test_sparse_attention_changes_the_output_and_switches_back():
    torch.manual_seed(0)
    model = GPT(model_config()).eval()
    idx = torch.randint(0, 97, (1, T))
    with torch.no_grad():
        dense = model(idx, idx)[0]
        local = model(idx, idx, model.hsa_pattern(T, "cpu", mode="local"))[0]
        again = model(idx, idx)[0]
    assert not torch.allclose(dense, local)
    assert torch.equal(dense, again)


def test_model_shapes_init_and_tied_embedding():
    torch.manual_seed(0)
    cfg = model_config(n_layer=12, n_embd=64, n_head=4, vocab_size=50304, block_size=64, attn_window=32,
                       attn_stride=32, attn_block=16)
    model = GPT(cfg)
    assert model.lm_head.weight is model.transformer.wte.weight
    std_proj = model.transformer.h[0].mlp.c_proj.weight.std().item()
    std_fc = model.transformer.h[0].mlp.c_fc.weight.std().item()
    assert std_fc == pytest.approx(0.02, rel=0.05)
    assert std_proj == pytest.approx(0.02 / math.sqrt(24), rel=0.05)  # scaled residual init
    logits, _ = model(torch.zeros(2, 5, dtype=torch.long))
    assert logits.shape == (2, 1, 50304)


def test_attention_config_checks():
    with pytest.raises(ValueError):
        model_config(attn_window=6)  # not a multiple of attn_block
    with pytest.raises(ValueError):
        model_config(attn_stride=2 * T)  # does not fit block_size
    with pytest.raises(ValueError):
        model_config(hsa_mode="sliding")
    with pytest.raises(ValueError, match=r"hsa_phases=\(\) keeps attention dense"):
        model_config(hsa_mode="dense")  # no sparse pattern: it would silently train dense
    with pytest.raises(ValueError):
        model_config(n_embd=15)  # not divisible by n_head
    with pytest.raises(ValueError):
        GPT(model_config()).hsa_pattern(T, "cpu", mode="sliding")


def expand_block_mask(block_mask, n):
    """The (query, key) pairs a BlockMask lets through: whole tiles for its full blocks, its
    mask_mod inside its partial ones."""
    allowed = torch.zeros(n, n, dtype=torch.bool)
    size = block_mask.BLOCK_SIZE[0]
    i = torch.arange(n)
    inside = block_mask.mask_mod(None, None, i[:, None], i[None, :])
    for qb in range(-(-n // size)):
        rows = slice(qb * size, (qb + 1) * size)
        for counts, indices, full in ((block_mask.kv_num_blocks, block_mask.kv_indices, False),
                                      (block_mask.full_kv_num_blocks, block_mask.full_kv_indices, True)):
            for kb in indices[0, 0, qb, :counts[0, 0, qb]].tolist():
                cols = slice(kb * size, (kb + 1) * size)
                allowed[rows, cols] = True if full else inside[rows, cols]
    return allowed


@pytest.mark.parametrize("window", [128, 256, 384])
def test_blocksparse_block_mask_is_the_pattern_with_only_the_causal_rule_inside_tiles(window):
    """With 128-token tiles, the block mask carries the plain causal mask_mod, so that windows of
    every size share one compiled kernel; its tiles must still make exactly the pattern."""
    n, stride = 512, 256
    pattern = flex_pattern("blocksparse", n, window, stride, 128, torch.device("cpu"))
    assert pattern.far is None and pattern.near.mask_mod.__name__ == "causal"
    expected = torch.tensor([[brute_force_allowed("blocksparse", i, j, window, stride, 128) for j in range(n)]
                             for i in range(n)])
    assert torch.equal(expand_block_mask(pattern.near, n), expected)


def test_a_growing_window_compiles_nothing_new():
    """torch.compile guards on what forward is given: patterns of different windows must share one
    graph (checked with the eager backend: the guards are the same on every backend)."""
    from torch._dynamo.utils import counters
    torch._dynamo.reset()
    torch.manual_seed(0)
    n = 512
    model = GPT(model_config(block_size=n, attn_window=128, attn_stride=256, attn_block=128)).eval()
    compiled = torch.compile(model, backend="eager")
    idx = torch.randint(0, 97, (1, n))
    frames = []
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for window in (128, 256, 384, 128):
            compiled(idx, idx, model.hsa_pattern(n, "cpu", window, backend="flex"))
            frames.append(counters["frames"]["total"])
        compiled(idx, idx, None)  # dense attention: one more graph, once
        compiled(idx, idx, model.hsa_pattern(n, "cpu", 256, backend="flex"))
        frames.append(counters["frames"]["total"])
    assert frames[1:4] == [frames[0]] * 3
    assert frames[4] == frames[0] + 1
    torch._dynamo.reset()


def test_window_growth_in_whole_tiles_up_to_dense():
    model = GPT(model_config())  # T = 48, W = 8, tile 4
    # 8 + growth * 40 tokens, rounded down to whole tiles of 4
    assert [model.hsa_window(T, g) for g in (0.0, 0.09, 0.1, 0.5, 0.99, 1.0)] == [8, 8, 12, 28, 44, 48]
    assert model.hsa_pattern(T, "cpu", 48) is None  # the window covers the sequence: dense attention
    assert torch.equal(model.hsa_pattern(T, "cpu", 44), torch.tensor(
        [[brute_force_allowed("blocksparse", i, j, window=44) for j in range(T)] for i in range(T)]))
    assert model.attention_density(T, 44) == pattern_density("blocksparse", T, 44, S, BLOCK) < 1.0


# -- the output layer and loss in FP8 --------------------------------------------------------

def fp8_round(t, dtype):
    """A float64 copy of t after the per-tensor scaling and FP8 rounding, and the inverse scale."""
    scale = torch.finfo(dtype).max / t.abs().max().double()
    return (t.double() * scale).float().to(dtype).double(), 1 / scale


@pytest.fixture
def head_problem():
    torch.manual_seed(0)
    n, C, V = 96, 32, 80
    x = torch.randn(n, C, requires_grad=True)
    w = (0.2 * torch.randn(V, C)).requires_grad_()
    targets = torch.randint(0, V, (n,))
    targets[::5] = -1  # ignored positions
    return x, w, targets


def test_fp8_output_loss_is_the_float64_computation_on_fp8_operands(head_problem):
    """Every scale, layout and transpose of FP8OutputLoss against float64 products of the same
    FP8-rounded operands: what it may differ by is only the rounding of its logits to bf16."""
    from model import E4M3, E5M2, FP8OutputLoss
    x, w, targets = head_problem
    logits, loss = FP8OutputLoss.apply(x, w, targets)
    (3.0 * loss).backward()
    assert not logits.requires_grad

    xq, x_inv = fp8_round(x.detach(), E4M3)
    wq, w_inv = fp8_round(w.detach(), E4M3)
    exact_logits = (xq * x_inv) @ (wq * w_inv).T
    assert torch.allclose(logits.double(), exact_logits, rtol=2 ** -8, atol=1e-6)  # bf16 rounding of the output
    counted = targets != -1
    assert loss.item() == pytest.approx(
        torch.nn.functional.cross_entropy(logits.double(), targets, ignore_index=-1).item(), abs=1e-5)

    # the gradient: (softmax - one_hot) of the returned logits, rounded to e5m2 at the fixed scale
    limit = torch.finfo(E5M2).max
    probabilities = torch.softmax(logits.double(), dim=-1)
    one_hot = torch.nn.functional.one_hot(targets.clamp(min=0), logits.size(1)).double()
    gq = ((probabilities - one_hot) * counted[:, None] * limit).float().to(E5M2).double()
    g_scale = 3.0 / (counted.sum().item() * limit)
    relative = lambda a, b: ((a.double() - b).norm() / b.norm()).item()
    assert relative(x.grad, (gq @ wq) * g_scale * w_inv) < 1e-2  # grad_x comes back in bf16
    assert relative(w.grad, (gq.T @ xq) * g_scale * x_inv) < 1e-5
    assert x.grad[::5].abs().max() == 0  # ignored positions get no gradient


def test_fp8_output_loss_approximates_the_exact_loss_and_gradients(head_problem):
    from model import FP8OutputLoss
    x, w, targets = head_problem
    _, loss = FP8OutputLoss.apply(x, w, targets)
    loss.backward()
    xd, wd = x.detach().double().requires_grad_(), w.detach().double().requires_grad_()
    exact = torch.nn.functional.cross_entropy(xd @ wd.T, targets, ignore_index=-1)
    exact.backward()
    relative = lambda a, b: ((a.double() - b).norm() / b.norm()).item()
    assert loss.item() == pytest.approx(exact.item(), rel=1e-2)
    assert relative(x.grad, xd.grad) < 0.1 and relative(w.grad, wd.grad) < 0.1  # FP8 keeps 3 mantissa bits


def test_fp8_head_is_used_only_in_training():
    torch.manual_seed(0)
    kw = dict(block_size=T, vocab_size=64, n_layer=2, n_head=2, n_embd=16, attn_window=W, attn_stride=S,
              attn_block=BLOCK)
    plain, fp8 = GPT(GPTConfig(**kw)), GPT(GPTConfig(**kw, fp8_head=True))
    fp8.load_state_dict(plain.state_dict())
    idx = torch.randint(0, 64, (2, T))
    for m in (plain, fp8):
        m.eval()
    with torch.no_grad():
        assert torch.equal(plain(idx, idx)[0], fp8(idx, idx)[0])  # evaluation measures the bf16/fp32 model
    plain.train(), fp8.train()
    (logits_plain, loss_plain), (logits_fp8, loss_fp8) = plain(idx, idx), fp8(idx, idx)
    assert logits_fp8.shape == logits_plain.shape and not torch.equal(logits_fp8, logits_plain)
    assert loss_fp8.item() == pytest.approx(loss_plain.item(), rel=1e-2)
    loss_fp8.backward()
    assert fp8.lm_head.weight.grad is not None
