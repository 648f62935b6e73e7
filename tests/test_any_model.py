"""MST on models that are not model.py's GPT, through the public API as the README shows it: a small
MLP with module names of its own through every phase, its masks against Erdős–Rényi targets computed
here by bisection and its FLOP count by hand; growing criteria defined in this file (outside the
project's files), in that loop and in train.py; the README's section run as written."""

import os
import re

import numpy as np
import pytest
import torch

from flops import training_flops_per_token
from sparse import (GROW_CRITERIA, MixedSparsity, SparsitySchedule, grow_criterion, highest, optimizer_groups,
                    optimizer_step, set_density_scaled_rates, sparse_parameters)
from test_train import args_for, make_toy_data, read_metrics, run_in_process

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH = 16


class MLP(torch.nn.Module):
    """Names that are nobody's GPT: `inp`, `mid`, `out`, and a linear `shortcut` kept dense."""

    def __init__(self):
        super().__init__()
        self.inp, self.mid, self.out = torch.nn.Linear(12, 48), torch.nn.Linear(48, 40), torch.nn.Linear(40, 4)
        self.shortcut = torch.nn.Linear(12, 4, bias=False)

    def forward(self, x):
        return self.out(torch.relu(self.mid(torch.relu(self.inp(x))))) + self.shortcut(x)


SHAPES = {"inp.weight": (48, 12), "mid.weight": (40, 48), "out.weight": (4, 40), "shortcut.weight": (4, 12)}
CAPS = {"out.weight": 0.5, "shortcut.weight": 0.0}  # the head at most half zero; the shortcut dense
# 120 steps: sparsify to 0.9 over 0-29 (where the head's cap binds), ultra 30-89, restoration 90-119 back
# to dense; an update every 5
SCHEDULE = dict(max_iters=120, sparsify_end=0.25, ultra_end=0.75, restore_end=1.0, peak_sparsity=0.9,
                update_interval=5, drop_fraction=0.3)


def target_sparsity_by_hand(step):
    """The SV schedule above, written out: cubic ramps, and the last update (step 119) lands on dense."""
    if step == 119:
        return 0.0
    if step < 30:
        return 0.9 * (1 - (1 - step / 30) ** 3)
    return 0.9 if step < 90 else 0.9 * (1 - (step - 90) / 30) ** 3


def er_live_counts(shapes, caps, sparsity):
    """Live weights per layer of `shapes` ({name: shape}) at a global target `sparsity`: density_l =
    min(1, eps (n_in + n_out) / (n_in n_out)), eps found by bisection so that the live total is the
    target's; then a capped layer is raised to 1 - its cap."""
    numel = {n: shape[0] * shape[1] for n, shape in shapes.items()}
    raw = {n: sum(shape) / numel[n] for n, shape in shapes.items()}
    budget = (1 - sparsity) * sum(numel.values())
    low, high = 0.0, max(1 / r for r in raw.values())
    for _ in range(200):
        eps = (low + high) / 2
        low, high = (eps, high) if sum(min(1.0, eps * raw[n]) * numel[n] for n in shapes) < budget else (low, eps)
    return {n: round(max(min(1.0, eps * raw[n]), 1 - caps.get(n, 1.0)) * numel[n]) for n in shapes}


def hand_flops(masks, dense_weight_gradient):
    """Per sample: a layer of N = n_out * n_in weights, d of them live, costs 2Nd forward, 2Nd for the
    input gradient and 2Nd for the weight gradient (2N where the update reads the dense gradient)."""
    flops = 0
    for name, (n_out, n_in) in SHAPES.items():
        n = n_out * n_in
        d = masks[name].sum().item() / n if name in masks else 1.0  # no mask: dense
        flops += 2 * n * d + 2 * n * d + 2 * n * (1.0 if dense_weight_gradient else d)
    return flops


def train(grow_mode="mixed", reads_gradient=True, on_update=None):
    """The README's loop on the MLP over a learnable task (the class is the largest of 4 fixed
    projections), checking at every step what the masks must hold. Returns the counted FLOPs, those
    counted by hand (a dense weight gradient at updates if reads_gradient), the losses, and the phases
    passed through."""
    torch.manual_seed(0)
    model, projection = MLP(), torch.randn(12, 4)
    weights = sparse_parameters(model)
    schedule = SparsitySchedule(**SCHEDULE)
    sparsity = MixedSparsity(weights, schedule, max_sparsity=CAPS, grow_mode=grow_mode)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    numels, flops, by_hand, losses, phases = {n: p.numel() for n, p in weights}, 0.0, 0.0, [], set()
    params = dict(model.named_parameters())
    for step in range(schedule.max_iters):
        x = torch.randn(BATCH, 12)
        loss = torch.nn.functional.cross_entropy(model(x), (x @ projection).argmax(1))
        loss.backward()
        losses.append(loss.item())
        phases.add(schedule.phase(step))
        update = schedule.is_update_step(step)
        dense_weight_gradient = update and sparsity.reads_dense_gradient
        flops += BATCH * training_flops_per_token(numels, None, sparsity.layer_densities(),
                                                  dense_weight_gradient=dense_weight_gradient)
        by_hand += BATCH * hand_flops(sparsity.state_dict()["masks"], update and reads_gradient)
        if update:
            before = {n: m.clone() for n, m in sparsity.state_dict()["masks"].items()}
            grads = {n: params[n].grad.reshape(-1).clone() for n in before}
            sparsity.prune_and_regrow(step, optimizer)
            masks = sparsity.state_dict()["masks"]
            sparse_shapes = {n: SHAPES[n] for n in ("inp.weight", "mid.weight", "out.weight")}
            assert ({n: int(m.sum()) for n, m in masks.items()}
                    == er_live_counts(sparse_shapes, CAPS, target_sparsity_by_hand(step)))
            if on_update:
                on_update(before, masks, grads)
        optimizer_step(optimizer, model.parameters(), sparsity)
        masks = sparsity.state_dict()["masks"]
        assert set(masks) == {"inp.weight", "mid.weight", "out.weight"}  # capped at 0: no mask, dense
        for name, mask in masks.items():
            dead = ~mask.view_as(params[name])
            assert (params[name][dead] == 0).all(), (step, name)
            for moment in ("exp_avg", "exp_avg_sq"):
                assert (optimizer.state[params[name]][moment][dead] == 0).all(), (step, name, moment)
        assert (params["shortcut.weight"] != 0).all()
    return flops, by_hand, losses, phases


def test_an_mlp_trains_through_every_phase_with_masks_on_schedule_and_flops_by_hand():
    flops, by_hand, losses, phases = train()
    assert {"sparsify", "ultra", "restoration"} <= phases
    assert flops == pytest.approx(by_hand, rel=1e-12)
    dense = 120 * BATCH * 6 * sum(r * c for r, c in SHAPES.values())
    assert 0.3 * dense < flops < 0.7 * dense
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.3  # it learns


def test_a_cap_of_zero_or_one_and_one_out_of_range():
    model = MLP()
    schedule = SparsitySchedule(**{**SCHEDULE, "sparsify_end": 0.0, "initial_sparsity": 0.9})
    capped = MixedSparsity(sparse_parameters(model), schedule, max_sparsity=CAPS).layer_densities()
    assert capped["out.weight"] == pytest.approx(0.5, abs=1 / 160) and "shortcut.weight" not in capped
    uncapped = MixedSparsity(sparse_parameters(model), schedule, {"out.weight": 1.0}).layer_densities()
    assert uncapped["out.weight"] < 0.5 and "shortcut.weight" in uncapped  # 1: no cap
    with pytest.raises(ValueError, match="max_sparsity=-0.1 of mid.weight must lie in"):
        MixedSparsity(sparse_parameters(model), schedule, {"mid.weight": -0.1})


# -- growing criteria of one's own, defined here ------------------------------------------------

def grow_first_dead(sparsity, group, candidates, n):
    """The dead weights of lowest flat index: reads no gradient."""
    return highest(-torch.arange(candidates.shape[1], dtype=torch.float32).expand(candidates.shape).clone(),
                   candidates, n)


def grow_smallest_gradient(sparsity, group, candidates, n):
    """The dead weights of smallest |dense gradient|: RigL upside down, but it reads the gradient."""
    return highest(-torch.stack([p.grad.reshape(-1) for p in group.params]).abs(), candidates, n)


CALLS = []  # (criterion, layers, n) of every call


@pytest.fixture
def own_criteria():
    """Both criteria registered as a user would, and the registry as it was afterwards."""
    registry = dict(GROW_CRITERIA)
    CALLS.clear()
    for name, pick, reads in (("first_dead", grow_first_dead, False),
                              ("smallest_gradient", grow_smallest_gradient, True)):
        def counted(sparsity, group, candidates, n, pick=pick, name=name):
            CALLS.append((name, candidates.shape[0], n))
            return pick(sparsity, group, candidates, n)
        grow_criterion(name, reads_dense_gradient=reads)(counted)
    yield
    GROW_CRITERIA.clear()
    GROW_CRITERIA.update(registry)


@pytest.mark.parametrize("grow_mode", ["first_dead", "smallest_gradient"])
def test_a_growing_criterion_of_ones_own_is_used_and_counted(own_criteria, grow_mode):
    grown_total = [0]

    def check(before, after, grads):
        """Brute force: the grown weights are the criterion's picks among those dead before the update."""
        for name in before:
            old, new = before[name].numpy(), after[name].numpy()
            dead, grown = np.flatnonzero(~old), np.flatnonzero(new & ~old)
            if grow_mode == "first_dead":
                assert list(grown) == list(dead[:len(grown)]), name
            else:  # none left dead has a smaller |gradient| than one grown (ties, such as zeros, either way)
                g = grads[name].abs().numpy()
                passed_over = np.setdiff1d(dead, grown)
                assert not (len(grown) and len(passed_over)) or g[grown].max() <= g[passed_over].min(), name
            grown_total[0] += len(grown)

    flops, by_hand, _, _ = train(grow_mode, grow_mode == "smallest_gradient", check)
    assert grown_total[0] > 0 and {name for name, _, _ in CALLS} == {grow_mode}
    assert flops == pytest.approx(by_hand, rel=1e-12)  # by hand: the dense weight gradient iff it reads it


@pytest.mark.parametrize("grow_mode", ["first_dead", "smallest_gradient"])
def test_train_py_asks_the_criterion_whether_an_update_reads_the_dense_gradient(own_criteria, grow_mode,
                                                                                tmp_path, monkeypatch, capsys):
    """train.py with a criterion registered from outside: it grows by it, plans the FLOPs it counts,
    and an update step costs what the step before it cost (same masks, dense attention) unless the
    criterion reads the dense gradient, when it costs more."""
    make_toy_data(tmp_path)
    out = tmp_path / "out"
    run_in_process(monkeypatch, tmp_path, args_for(out, grow_mode=grow_mode, hsa_phases="()"))
    printed = capsys.readouterr().out
    assert {name for name, _, _ in CALLS} == {grow_mode}
    logs = {r["step"]: r["flops"] for r in read_metrics(out) if "loss" in r}
    done = re.search(r"training FLOPs (\S+) =", printed).group(1)
    assert re.search(r"planned training FLOPs: (\S+) =", printed).group(1) == f"{float(done):.4g}"
    cost = {t: logs[t] - logs[t - 1] for t in range(1, 18)}
    for t in (8, 12, 16):  # updates (every 4 steps) after a step without one, on sparse masks
        if grow_mode == "first_dead":
            assert cost[t] == cost[t - 1], t
        else:
            assert cost[t] > cost[t - 1], t


def test_the_readme_section_runs_as_written():
    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    block = text.split("<!-- readme:own-model -->")[1].split("<!-- /readme:own-model -->")[0]
    code = block.strip().removeprefix("```python").removesuffix("```")
    torch.manual_seed(0)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    sparsity, numels, flops = namespace["sparsity"], namespace["numels"], namespace["flops"]
    assert sparsity.density() == 1.0  # restored to dense at the end
    dense = 200 * 32 * 6 * sum(numels.values())
    assert 0.1 * dense < flops < 0.9 * dense


def test_hugging_face_gpt2_with_its_conv1d_weights():
    """transformers' GPT-2 (where it is installed; not a dependency), built from a tiny config offline: its
    block weights are Conv1D, stored (in, out). Picked by layer type, they take their ER share as model.py's
    GPT's do, and the FLOP count adds its attention."""
    transformers = pytest.importorskip("transformers")
    from transformers.pytorch_utils import Conv1D
    L, C, T, V, B = 2, 32, 16, 96, 4
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=V, n_positions=T, n_embd=C, n_layer=L,
                                                                 n_head=2, bos_token_id=0, eos_token_id=0))
    weights = sparse_parameters(model, (torch.nn.Linear, Conv1D))  # its Conv1Ds, and the lm_head
    shapes = {name: tuple(p.shape) for name, p in weights}
    assert shapes == {**{f"transformer.h.{i}.{n}.weight": s for i in range(L) for n, s in (
        ("attn.c_attn", (C, 3 * C)), ("attn.c_proj", (C, C)), ("mlp.c_fc", (C, 4 * C)), ("mlp.c_proj", (4 * C, C)))},
        "transformer.wte.weight": (V, C)}  # lm_head, tied with the embedding
    caps = {"transformer.wte.weight": 0.5}
    schedule = SparsitySchedule(max_iters=24, sparsify_end=0.25, ultra_end=0.75, peak_sparsity=0.9, update_interval=3)
    sparsity = MixedSparsity(weights, schedule, caps)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    params, numels, flops, by_hand = dict(weights), {n: p.numel() for n, p in weights}, 0.0, 0.0
    for step in range(schedule.max_iters):
        x = torch.randint(0, V, (B, T))
        model(input_ids=x, labels=x).loss.backward()
        update = schedule.is_update_step(step)
        flops += B * T * training_flops_per_token(numels, (L, C, T), sparsity.layer_densities(),
                                                  dense_weight_gradient=update)  # mixed: reads the gradient
        masks = sparsity.state_dict()["masks"]
        live = {n: masks[n].sum().item() / numels[n] for n in numels}
        by_hand += B * T * (sum(4 * numels[n] * live[n] + 2 * numels[n] * (1 if update else live[n]) for n in numels)
                            + L * 12 * C * (T + 1) / 2)
        if update:
            sparsity.prune_and_regrow(step, optimizer)
            masks = sparsity.state_dict()["masks"]
            target = schedule.update_target(step)
            assert {n: int(m.sum()) for n, m in masks.items()} == er_live_counts(shapes, caps, target), step
        optimizer_step(optimizer, model.parameters(), sparsity)
        for name, mask in sparsity.state_dict()["masks"].items():
            assert (params[name].detach().reshape(-1)[~mask] == 0).all()
        if schedule.phase(step) == "ultra":
            assert sparsity.layer_densities()["transformer.wte.weight"] == 0.5  # at its cap
    assert {schedule.phase(t) for t in range(24)} >= {"sparsify", "ultra", "restoration"}
    assert flops == pytest.approx(by_hand, rel=1e-12) and sparsity.density() == 1.0


def test_density_aware_rates_and_warm_grown_weights_on_a_model_of_ones_own():
    """The levers on the MLP: optimizer_groups gives each mask group a rate of its own, at lr / density **
    power from the live counts (counted here from the masks), and the other weights keep lr; with
    grown_adam_state='gradient' a weight grown at an update starts with its gradient squared as its
    second moment, its first moment at 0."""
    torch.manual_seed(0)
    model = MLP()
    weights = sparse_parameters(model)
    sparsity = MixedSparsity(weights, SparsitySchedule(**SCHEDULE), max_sparsity=CAPS, grown_adam_state="gradient")
    optimizer = torch.optim.AdamW(optimizer_groups(model, 0.1, sparsity), lr=1.0)
    x = torch.randn(BATCH, 12)
    for step in range(60):  # into the ultra phase, through a dozen updates
        set_density_scaled_rates(optimizer, 2e-3, sparsity, density_power=0.5)
        torch.nn.functional.cross_entropy(model(x), x[:, :4].argmax(1)).backward()
        if sparsity.schedule.is_update_step(step):
            before = {n: (p.detach() != 0) for n, p in weights}
            grads = {n: p.grad.clone() for n, p in weights}
            sparsity.prune_and_regrow(step, optimizer)
        optimizer_step(optimizer, model.parameters(), sparsity)
    saved = sparsity.state_dict()["masks"]
    masks = {n: saved[n].view_as(p) for n, p in weights if n in saved}  # the shortcut has none: dense
    for group in optimizer.param_groups:
        for p in group["params"]:
            name = next((n for n, q in weights if q is p and n in masks), None)
            density = masks[name].float().mean().item() if name is not None else 1.0
            assert group["lr"] == pytest.approx(2e-3 / density ** 0.5), name
    # The last update, step 55, seeded each weight it grew with its gradient squared; five AdamW steps
    # (55 to 59) decay that by beta2 each and add (1 - beta2) g^2, so at least 0.999^5 of it is left.
    # Started cold instead (grown_adam_state='zero'), the moment would hold about 0.005 of it.
    name, p = weights[1]  # mid.weight: sparse at the peak, its topology moving
    grown = masks[name] & ~before[name]
    assert grown.any()
    seeded = grads[name][grown].square()
    assert (optimizer.state[p]["exp_avg_sq"][grown] >= 0.999 ** 5 * seeded * (1 - 1e-6)).all()
