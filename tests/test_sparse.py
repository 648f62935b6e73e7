"""The MST machinery against hand computations and brute-force references, and its defaults
against train.py's."""

import dataclasses
import inspect
import math
import os

import numpy as np
import pytest
import torch

from configurator import load_config, settings_block
from flops import attention_training_flops, linear_training_flops, training_flops_per_token
from model import GPT, GPTConfig
from runs import short_ramp_warnings
from runtime import apply_masks, hsa_window_growth
from sparse import (EMBEDDING, GROW_CRITERIA, MixedSparsity, SparsitySchedule, optimizer_groups, optimizer_step,
                    set_density_scaled_rates, sparse_parameters, spread_density)


# -- Erdős–Rényi --------------------------------------------------------------------------

def test_er_two_layers_by_hand():
    # Layers 4x4 (raw score 8/16 = 0.5) and 2x8 (raw 10/16 = 0.625), 16 weights each.
    # Target density 0.5 of 32 weights = 16 live: eps * (0.5*16 + 0.625*16) = 16, eps = 8/9.
    d = spread_density([(4, 4), (2, 8)], 0.5)
    assert d == pytest.approx([4 / 9, 5 / 9])


def test_er_overflowing_layer_becomes_dense_and_rest_is_resolved():
    # A 1x2 layer has raw score 1.5: at density 0.9 it would exceed 1, so it is made dense
    # and the 10x10 layer (raw 0.2) takes the rest: 0.9 * 102 - 2 = 89.8 of its 100 weights.
    d = spread_density([(1, 2), (10, 10)], 0.9)
    assert d == pytest.approx([1.0, 0.898])


def test_er_gpt2_124m_layer_set_by_hand():
    C = 768
    shapes = [(3 * C, C), (C, C), (4 * C, C), (C, 4 * C)] * 12  # c_attn, attn.c_proj, c_fc, mlp.c_proj
    d = spread_density(shapes, 0.1)
    raw = {"qkv": (3 * C + C) / (3 * C * C), "proj": 2 * C / (C * C), "fc": 5 * C / (4 * C * C)}
    numel = {"qkv": 3 * C * C, "proj": C * C, "fc": 4 * C * C}
    # the live budget: 10% of 12 * (3 + 1 + 4 + 4) C^2 weights
    eps = 0.1 * 12 * 12 * C * C / (12 * (raw["qkv"] * numel["qkv"] + raw["proj"] * numel["proj"]
                                         + 2 * raw["fc"] * numel["fc"]))
    assert d[:4] == pytest.approx([eps * raw["qkv"], eps * raw["proj"], eps * raw["fc"], eps * raw["fc"]])
    live = sum(di * r * c for di, (r, c) in zip(d, shapes))
    assert live == pytest.approx(0.1 * sum(r * c for r, c in shapes))
    # raw * numel per layer is 4C + 2C + 5C + 5C, so 0.1 * 12 * 12 C^2 = eps * 12 * 16 C
    assert eps == pytest.approx(0.1 * 12 * C / 16)


def test_uniform_distribution():
    assert spread_density([(4, 4), (2, 8)], 0.3, distribution="uniform") == [0.3, 0.3]


# -- Sparsity Variation --------------------------------------------------------------------

def schedule(**kw):
    args = dict(max_iters=1000, sparsify_end=0.2, ultra_end=0.7, restore_end=0.9, initial_sparsity=0.0,
                peak_sparsity=0.9, final_sparsity=0.0, update_interval=50, drop_fraction=0.3)
    args.update(kw)
    return SparsitySchedule(**args)


def test_schedule_boundaries_and_phases():
    s = schedule()
    assert s.target_sparsity(0) == 0.0 and s.phase(0) == "sparsify"
    assert s.target_sparsity(100) == pytest.approx(0.9 * (1 - 0.5 ** 3))  # the cubic at mid-ramp
    assert s.target_sparsity(200) == 0.9 and s.phase(200) == "ultra"
    assert s.target_sparsity(699) == 0.9 and s.phase(700) == "restoration"
    assert s.target_sparsity(700) == pytest.approx(0.9)
    assert s.target_sparsity(800) == pytest.approx(0.9 * 0.5 ** 3)
    assert s.target_sparsity(900) == 0.0 and s.phase(900) == "final"
    late = schedule(restoration_shape="late")
    assert late.target_sparsity(800) == pytest.approx(0.9 * (1 - 0.5 ** 3))


def test_schedule_monotonic_within_phases():
    s = schedule(initial_sparsity=0.2, final_sparsity=0.1)
    warm = [s.target_sparsity(t) for t in range(0, 200)]
    restore = [s.target_sparsity(t) for t in range(700, 900)]
    assert all(a < b for a, b in zip(warm, warm[1:]))
    assert all(a > b for a, b in zip(restore, restore[1:]))
    assert warm[0] == pytest.approx(0.2) and s.target_sparsity(950) == 0.1


def test_drop_fraction_cosine():
    s = schedule(drop_fraction=0.4)
    assert s.current_drop_fraction(0) == pytest.approx(0.4)
    assert s.current_drop_fraction(450) == pytest.approx(0.2)
    assert s.current_drop_fraction(900) == pytest.approx(0.0)
    per_phase = schedule(drop_fraction=0.4, drop_schedule="phase")
    assert per_phase.current_drop_fraction(200) == pytest.approx(0.4)  # restarts at each phase
    assert per_phase.current_drop_fraction(450) == pytest.approx(0.2)


@pytest.mark.parametrize("kw", [dict(peak_sparsity=1.0), dict(initial_sparsity=-0.1), dict(ultra_end=0.1),
                                dict(restore_end=1.001), dict(update_interval=0), dict(drop_schedule="x"),
                                dict(sparsify_start=0.3), dict(hsa_phases=("warmup",))])
def test_schedule_rejects_bad_values(kw):
    with pytest.raises(ValueError):
        schedule(**kw)


def test_update_steps():
    s = schedule(restore_end=0.91)
    steps = [t for t in range(1000) if s.is_update_step(t)]
    assert steps[:2] == [50, 100] and steps[-2:] == [900, 910]  # restore_end always updates
    s = schedule(restore_end=1.0)  # restoration to the very end: the last step updates
    assert [t for t in range(1000) if s.is_update_step(t)][-2:] == [950, 999]


# -- prune and regrow ----------------------------------------------------------------------

def tiny_model(seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(block_size=16, vocab_size=64, n_layer=2, n_head=2, n_embd=16, attn_window=8,
                         attn_stride=8, attn_block=4))


def gpt_sparsity(model, schedule, embedding_max_sparsity=1.0, **kw):
    """MST on GPT as train.py sets it up: every Linear weight, the tied embedding under its cap."""
    return MixedSparsity(sparse_parameters(model), schedule, {EMBEDDING: embedding_max_sparsity}, **kw)


def make_sparse(model, grow_mode="mixed", **kw):
    return gpt_sparsity(model, schedule(**kw), 0.0, grow_mode=grow_mode, seed=3)


def fake_step(model, opt, seed):
    """A real backward, so that Adam state exists and gradients are dense."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 64, (4, 16), generator=g)
    _, loss = model(x, x)
    opt.zero_grad()
    loss.backward()


def test_update_hits_exact_counts_and_zeroes_weights_and_moments():
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sp = make_sparse(model, max_iters=200, sparsify_end=0.2, ultra_end=0.7, restore_end=0.9, update_interval=10)
    for step in range(1, 200):
        fake_step(model, opt, step)
        if sp.schedule.is_update_step(step):
            old = [g.mask.clone() for g in sp.groups]
            sp.prune_and_regrow(step, opt)
            targets = sp.target_counts(sp.schedule.update_target(step))
            for g, o, n in zip(sp.groups, old, targets):
                assert (g.mask.sum(dim=1) == n).all() and g.live == n
                grown = g.mask & ~o
                for i, p in enumerate(g.params):
                    flat = p.detach().reshape(-1)
                    assert (flat[grown[i]] == 0).all()  # grown weights start at 0
                    assert (flat[~g.mask[i]] == 0).all()
                    st = opt.state[p]
                    for moment in ("exp_avg", "exp_avg_sq"):
                        m = st[moment].reshape(-1)
                        assert (m[~g.mask[i]] == 0).all() and (m[grown[i]] == 0).all()
        sp.apply_to_gradients()
        opt.step()
        sp.apply_to_weights()
        if step in (50, 100):  # in ultra, masked weights and moments stay exactly 0 between updates
            for g in sp.groups:
                for i, p in enumerate(g.params):
                    assert (p.detach().reshape(-1)[~g.mask[i]] == 0).all()
                    assert (opt.state[p]["exp_avg"].reshape(-1)[~g.mask[i]] == 0).all()
        if step == 100:
            assert sp.density() == pytest.approx(0.1, abs=0.01)
        if step == 180:
            break
    assert sp.density() == 1.0  # restoration ends at dense


@pytest.mark.parametrize("grow_mode", ["gradient", "random", "mixed"])
def test_prune_and_grow_follow_their_rules(grow_mode):
    """Brute force: pruned = smallest |w| among live; grown-by-gradient = largest |g| among dead."""
    model = tiny_model(1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sp = make_sparse(model, grow_mode=grow_mode, sparsify_end=0, initial_sparsity=0.5, peak_sparsity=0.5,
                     drop_fraction=0.4)
    fake_step(model, opt, 0)
    opt.step()
    sp.apply_to_weights()
    fake_step(model, opt, 1)
    g = sp.groups[0]
    old = g.mask.clone()
    weights = torch.stack([p.detach().reshape(-1).clone() for p in g.params])
    grads = torch.stack([p.grad.reshape(-1).clone() for p in g.params])
    n_live = g.live
    n_swap = int(sp.schedule.current_drop_fraction(50) * n_live)
    sp.prune_and_regrow(50, opt)
    n_grad = {"gradient": n_swap, "random": 0, "mixed": round(0.75 * n_swap)}[grow_mode]
    for i in range(len(g.params)):
        live_idx = np.flatnonzero(old[i].numpy())
        dead_idx = np.flatnonzero(~old[i].numpy())
        pruned = set(np.flatnonzero((old[i] & ~g.mask[i]).numpy()))
        grown = set(np.flatnonzero((~old[i] & g.mask[i]).numpy()))
        assert len(pruned) == n_swap and len(grown) == n_swap
        w = weights[i].abs().numpy().astype(np.float64)
        expected_pruned = set(live_idx[np.argsort(w[live_idx], kind="stable")[:n_swap]])
        assert pruned == expected_pruned
        gr = grads[i].abs().numpy().astype(np.float64)
        by_grad = set(dead_idx[np.argsort(-gr[dead_idx], kind="stable")[:n_grad]])
        assert by_grad <= grown  # the gradient picks are the top-|g| dead weights
        rest = grown - by_grad
        assert len(rest) == n_swap - n_grad  # the remainder is drawn at random among the other dead
        if grow_mode == "random" and n_swap >= 10:
            # random picks are not the top-gradient ones (would happen by chance with tiny odds)
            top = set(dead_idx[np.argsort(-gr[dead_idx])[:n_swap]])
            assert grown != top


def test_sparse_parameter_selection():
    model = tiny_model()
    names = [n for n, _ in sparse_parameters(model)]
    # every Linear weight: the blocks' four, then the lm_head, named as the embedding it is tied with
    assert names == [f"transformer.h.{i}.{m}.weight" for i in range(2)
                     for m in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")] + ["transformer.wte.weight"]
    assert sparse_parameters(model)[-1][1] is model.lm_head.weight
    assert "transformer.wte.weight" not in gpt_sparsity(tiny_model(), schedule(), 0.0).layer_densities()
    assert "transformer.wte.weight" in gpt_sparsity(tiny_model(), schedule(), 0.5).layer_densities()
    # and only Linear weights: not an embedding of its own, a norm's gain or a bare 2-D parameter
    other = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 6), torch.nn.LayerNorm(6),
                                torch.nn.Linear(6, 2))
    other.register_parameter("table", torch.nn.Parameter(torch.zeros(3, 3)))
    assert [(n, tuple(p.shape)) for n, p in sparse_parameters(other)] == [("1.weight", (6, 4)), ("3.weight", (2, 6))]


def test_built_in_growing_criteria_and_whether_they_read_the_dense_gradient():
    assert {name: GROW_CRITERIA[name].reads_dense_gradient for name in ("gradient", "random", "mixed")} == {
        "gradient": True, "random": False, "mixed": True}  # as train.py counted them: all but random
    assert make_sparse(tiny_model(), grow_mode="random").reads_dense_gradient is False
    with pytest.raises(ValueError, match="grow_mode='magnitude' must be one of"):
        make_sparse(tiny_model(), grow_mode="magnitude")


def test_state_dict_round_trip():
    model = tiny_model()
    sp = make_sparse(model, sparsify_end=0, initial_sparsity=0.7, peak_sparsity=0.7)
    state = sp.state_dict()
    other = make_sparse(tiny_model(5), sparsify_end=0, initial_sparsity=0.2, peak_sparsity=0.7)
    other.load_state_dict(state)
    for a, b in zip(sp.groups, other.groups):
        assert torch.equal(a.mask, b.mask) and a.live == b.live
    assert torch.equal(torch.rand(5, generator=sp.generator), torch.rand(5, generator=other.generator))


# -- FLOPs ---------------------------------------------------------------------------------

def test_flops_by_hand():
    # A Linear of 10 weights at density 0.5: 4*10*0.5 forward and input gradient, 2*10*0.5 weight gradient
    assert linear_training_flops(10, 0.5) == pytest.approx(30)
    # a dense-gradient step pays the full weight gradient: 4*20*0.25 + 2*20
    assert linear_training_flops(20, 0.25, dense_weight_gradient=True) == pytest.approx(60)
    # attention, one layer, n_embd 4, T 3, pattern density 0.5: 12 * 4 * 0.5 * (3+1)/2 = 48
    assert attention_training_flops(1, 4, 3, 0.5) == pytest.approx(48)
    # dense GPT-2 124M, 1024 tokens: the familiar 6N per token plus causal attention
    model = GPT(GPTConfig(n_layer=12, n_head=12, n_embd=768, vocab_size=50304, block_size=1024))
    numels, attention_shape = {n: p.numel() for n, p in sparse_parameters(model)}, (12, 768, 1024)
    N_blocks, N_head = 12 * 12 * 768 ** 2, 50304 * 768
    assert training_flops_per_token(numels, attention_shape) == pytest.approx(
        6 * (N_blocks + N_head) + 12 * 12 * 768 * 512.5)
    # with densities: each named weight at its density, the rest dense, attention scaled
    name = "transformer.h.0.mlp.c_fc.weight"
    sparse = training_flops_per_token(numels, attention_shape, {name: 0.1, "transformer.wte.weight": 0.5}, 0.25)
    expected = (6 * (N_blocks + N_head) - 6 * 4 * 768 ** 2 * 0.9 - 6 * N_head * 0.5
                + 12 * 12 * 768 * 512.5 * 0.25)
    assert sparse == pytest.approx(expected)


def test_er_counts_every_layer_of_a_group():
    # With the embedding included, groups differ in size (8 block layers of 4 shapes, 1 embedding):
    # the global density must still be the target, and each layer's count its ER share.
    model = tiny_model()
    sp = gpt_sparsity(model, schedule(sparsify_end=0, initial_sparsity=0.9, peak_sparsity=0.9), 1.0)
    assert sp.density() == pytest.approx(0.1, abs=1e-3)
    shapes = [tuple(p.shape) for _, p in sparse_parameters(model)]
    expected = spread_density(shapes, 0.1)
    got = sp.layer_densities()
    for (name, _), d in zip(sparse_parameters(model), expected):
        assert got[name] == pytest.approx(d, abs=1e-2)


# -- the levers: a dense start, the last update, the attention window, the embedding's cap ----

def test_dense_start_holds_initial_sparsity_until_sparsify_start():
    s = schedule(sparsify_start=0.1, initial_sparsity=0.0)
    assert [s.phase(t) for t in (0, 99, 100, 199, 200)] == ["initial", "initial", "sparsify", "sparsify", "ultra"]
    assert s.target_sparsity(99) == 0.0
    assert s.target_sparsity(150) == pytest.approx(0.9 * (1 - 0.5 ** 3))  # the cubic over [100, 200)


def test_phase_boundaries_follow_max_iters():
    for max_iters in (10, 1000, 600000):
        s = schedule(max_iters=max_iters)
        assert s.bounds == [0, round(0.2 * max_iters), round(0.7 * max_iters), round(0.9 * max_iters)]


@pytest.mark.parametrize("update_interval", [7, 10])
def test_last_update_lands_on_final_sparsity_when_restoration_runs_to_the_end(update_interval):
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sp = gpt_sparsity(model, schedule(max_iters=60, sparsify_end=0.2, ultra_end=0.6, restore_end=1.0,
                                      update_interval=update_interval, final_sparsity=0.0), 1.0, seed=3)
    updates = [t for t in range(60) if sp.schedule.is_update_step(t)]
    assert updates[-1] == 59
    assert sp.schedule.target_sparsity(59) > 0  # the ramp itself has not arrived at step 59 ...
    for step in updates:
        fake_step(model, opt, step)
        sp.prune_and_regrow(step, opt)
    assert sp.density() == 1.0  # ... but the last update lands on final_sparsity anyway
    assert all(g.mask.all() for g in sp.groups)


def test_hsa_window_growth():
    fixed = schedule(hsa_phases=("ultra", "restoration"))
    follows = schedule(hsa_phases=("ultra", "restoration"), hsa_window_follows_sparsity=True)
    for s in (fixed, follows):
        assert hsa_window_growth(s, 100) is None and hsa_window_growth(s, 950) is None  # sparsify, final: dense
        assert hsa_window_growth(s, 300) == 0.0  # ultra: the pattern as configured
    assert hsa_window_growth(fixed, 800) == 0.0
    assert hsa_window_growth(follows, 800) == pytest.approx(1 - 0.5 ** 3)  # 1 - target / peak
    growth = [hsa_window_growth(follows, t) for t in range(700, 900)]
    assert growth[0] == 0.0 and all(a < b for a, b in zip(growth, growth[1:])) and growth[-1] < 1.0


def test_embedding_sparsity_is_capped_and_the_other_layers_keep_their_share():
    model = tiny_model()
    s = schedule(sparsify_end=0, initial_sparsity=0.9, peak_sparsity=0.9)
    uncapped = gpt_sparsity(model, s, 1.0).layer_densities()
    capped = gpt_sparsity(tiny_model(), s, 0.5).layer_densities()
    assert uncapped["transformer.wte.weight"] < 0.5
    assert capped["transformer.wte.weight"] == pytest.approx(0.5, abs=1e-3)
    for name, density in uncapped.items():
        if name != "transformer.wte.weight":
            assert capped[name] == density
    with pytest.raises(ValueError, match=r"max_sparsity=1.5 of transformer.wte.weight must lie in \[0, 1\]"):
        gpt_sparsity(tiny_model(), s, 1.5)
    with pytest.raises(ValueError, match="not among the weights"):  # a cap on a name that is not a weight
        MixedSparsity(sparse_parameters(tiny_model()), s, {"transformer.wte": 0.5})


def test_masks_are_saved_by_name_and_applied_by_name():
    model = tiny_model()
    sp = make_sparse(model, sparsify_end=0, initial_sparsity=0.7, peak_sparsity=0.7)
    masks = sp.state_dict()["masks"]
    assert set(masks) == {n for n, _ in sparse_parameters(model)} - {EMBEDDING}  # capped at 0: no mask
    other = tiny_model(5)
    apply_masks(other, masks)
    for name, p in other.named_parameters():
        if name in masks:
            assert (p.detach().reshape(-1)[~masks[name]] == 0).all() and (p.detach().reshape(-1)[masks[name]] != 0).all()
    with pytest.raises(ValueError):
        apply_masks(other, {"transformer.h.0.mlp.c_fc.weight": torch.ones(3, dtype=torch.bool)})


# -- optimizer levers: a grown weight's Adam state, density-aware rates ----------------------

def test_grown_weights_second_moment_is_seeded_with_their_gradient_squared():
    """grown_adam_state='gradient': where a weight grows, exp_avg_sq = its dense gradient squared and
    exp_avg = 0; the weights that stay live keep their moments. Its first AdamW step, by hand in
    float64: m = (1 - b1) g, v = b2 g^2 + (1 - b2) g^2 = g^2, so it moves lr (1 - b1) |g| / |g| / bc1."""
    model = tiny_model(2)
    b1, b2, lr = 0.9, 0.95, 1e-2
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(b1, b2), weight_decay=0.0, eps=1e-12)
    sp = gpt_sparsity(model, schedule(sparsify_end=0, initial_sparsity=0.5, peak_sparsity=0.5, drop_fraction=0.5),
                      grown_adam_state="gradient", seed=3)
    for step in range(3):  # settled moments for the live weights
        fake_step(model, opt, step)
        optimizer_step(opt, model.parameters(), sp)
    fake_step(model, opt, 3)
    g = sp.groups[0]
    p = g.params[0]
    old, before = g.mask[0].clone(), {k: v.clone() for k, v in opt.state[p].items()}
    grad = p.grad.reshape(-1).clone().double()
    sp.prune_and_regrow(50, opt)
    weight = p.detach().reshape(-1).clone().double()
    grown, kept = g.mask[0] & ~old, g.mask[0] & old
    assert grown.sum() > 0
    v, m = opt.state[p]["exp_avg_sq"].reshape(-1), opt.state[p]["exp_avg"].reshape(-1)
    assert torch.allclose(v[grown].double(), grad[grown] ** 2, rtol=1e-6, atol=0) and (m[grown] == 0).all()
    assert torch.equal(v[kept], before["exp_avg_sq"].reshape(-1)[kept])
    assert (v[~g.mask[0]] == 0).all()
    optimizer_step(opt, model.parameters(), sp)  # step 4 of this tensor
    t = 4
    expected = -lr * (1 - b1) * grad[grown].sign() / (1 - b1 ** t) * ((1 - b2 ** t) ** 0.5)
    moved = p.detach().reshape(-1).double()[grown]  # grown weights start at 0
    assert (weight[grown] == 0).all()
    assert torch.allclose(moved, expected, rtol=1e-5)
    # the default starts them cold: the same step then moves (1 - b1) / sqrt(1 - b2) times as far
    assert (1 - b1) / (1 - b2) ** 0.5 == pytest.approx(0.447, abs=1e-3)
    with pytest.raises(ValueError, match="grown_adam_state"):
        gpt_sparsity(tiny_model(), schedule(), grown_adam_state="warm")


@pytest.mark.parametrize("power", [1.0, 0.5])
def test_density_lr_scaling_gives_each_mask_group_lr_over_its_density(power):
    model = tiny_model(4)
    sp = gpt_sparsity(model, schedule(sparsify_end=0, initial_sparsity=0.6, peak_sparsity=0.6), 1.0, seed=3)
    groups = optimizer_groups(model, 0.1, sp)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))  # each parameter once
    assert [g["weight_decay"] for g in groups[:2]] == [0.1, 0.0]
    opt = torch.optim.AdamW(groups, lr=1.0)
    set_density_scaled_rates(opt, 3e-3, sp, density_power=power)
    for group in opt.param_groups:
        if "mask_group" in group:
            mg = sp.groups[group["mask_group"]]
            assert group["params"] == mg.params and group["weight_decay"] == 0.1
            live = int(mg.mask[0].sum())  # counted from the mask itself
            assert group["lr"] == pytest.approx(3e-3 * math.sqrt(mg.numel / live) ** (2 * power))
        else:
            assert group["lr"] == 3e-3
    assert len(opt.param_groups) == 2 + len(sp.groups)
    # without MST, or without the option, the two plain groups of AdamW
    assert len(optimizer_groups(model, 0.1)) == 2

# -- one set of defaults: sparse.py's are train.py's ----------------------------------------

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# MixedSparsity's keyword for train.py's sparsity_distribution; its seed is the run's, not the method's, and
# its max_sparsity a cap per weight, which train.py sets from embedding_max_sparsity (checked below)
TRAIN_PY_NAME = {"distribution": "sparsity_distribution"}
NOT_METHOD = {"seed", "max_sparsity"}


def test_sparse_py_defaults_are_train_pys():
    settings = settings_block(os.path.join(REPO, "train.py"))
    assert {"out_dir", "max_iters", "grow_mode", "attn_block"} <= set(settings)  # the whole block was read
    defaults = {f.name: f.default for f in dataclasses.fields(SparsitySchedule)
                if f.default is not dataclasses.MISSING}
    defaults.update({name: p.default for name, p in inspect.signature(MixedSparsity).parameters.items()
                     if p.default is not inspect.Parameter.empty and name not in NOT_METHOD})
    assert len(defaults) == 13 + 4  # every SparsitySchedule field but max_iters; MixedSparsity's keywords
    for name, default in defaults.items():
        setting = TRAIN_PY_NAME.get(name, name)
        assert setting in settings, f"train.py has no setting {setting}"
        assert (default, type(default)) == (settings[setting], type(settings[setting])), name
    # MixedSparsity caps no weight by default; train.py's default embedding cap caps nothing either
    s = schedule(sparsify_end=0, initial_sparsity=0.9, peak_sparsity=0.9)
    assert (MixedSparsity(sparse_parameters(tiny_model()), s).layer_densities()
            == gpt_sparsity(tiny_model(), s, settings["embedding_max_sparsity"]).layer_densities())


def test_a_ramp_with_fewer_than_two_updates_is_named_and_the_default_job_ramps():
    """Masks follow the target only at topology updates (every ΔT steps, and the last one at the end of
    restoration), so a ramp with fewer than two of them inside is a jump, and is named. The default job
    has at least three in each ramp (counted here by that rule, step by step)."""
    short = SparsitySchedule(max_iters=240, sparsify_end=0.03, update_interval=12)
    # the ramp is steps 0-6 (round(0.03 * 240) = 7): no multiple of 12; restoration, 216-239, holds 216,
    # 228 and 239
    assert short_ramp_warnings(short) == ["0 topology update(s) in the sparsify ramp (update_interval=12): "
                                          "the sparsity jumps"]
    # sparsify 0-47 holds 12, 24 and 36; restoration, 233-239, only the last step
    assert short_ramp_warnings(SparsitySchedule(max_iters=240, sparsify_end=0.2, ultra_end=0.97,
                                                update_interval=12)) == [
        "1 topology update(s) in the restoration ramp (update_interval=12): the sparsity jumps"]
    assert short_ramp_warnings(SparsitySchedule(max_iters=240, sparsify_end=0.03, update_interval=12,
                                                peak_sparsity=0.0)) == []  # nothing moves: no ramp to warn of

    defaults = settings_block(os.path.join(REPO, "train.py"))
    job = {**defaults, **load_config(defaults, [os.path.join(REPO, "config", "mst_tiny.py")])}
    schedule = SparsitySchedule(**{f.name: job[f.name] for f in dataclasses.fields(SparsitySchedule)})
    steps, every = job["max_iters"], job["update_interval"]
    ramps = {"sparsify": range(0, round(job["sparsify_end"] * steps)),
             "restoration": range(round(job["ultra_end"] * steps), steps)}
    for name, ramp in ramps.items():
        updates = [t for t in ramp if t > 0 and (t % every == 0 or t == steps - 1)]
        assert len(updates) >= 3, (name, updates)
    assert short_ramp_warnings(schedule) == []
