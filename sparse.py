"""
Mixed Sparsity Training on any PyTorch model: the sparsity schedule, the masks, prune-and-regrow
(FLOPs: flops.py). The caller picks the weights to sparsify: sparse_parameters(model), every Linear
weight (GPT's four per block and its lm_head, tied with the embedding), or any other choice.

Vocabulary (RigL's):
  density        fraction of a weight matrix that is live (1 - sparsity)
  mask           bool tensor, True where the weight is live; masked weights are exactly 0
  prune          turn live weights off: the smallest |w|
  grow / regrow  turn dead weights on, by a criterion of GROW_CRITERIA: the largest |dense gradient|,
                 random ones, a mix, or one of your own (grow_criterion)
  drop fraction  share of the live weights swapped at an update, cosine-annealed

Sparsity Variation (SV) moves the global target through five phases; the boundaries are
fractions of the run, so a config works for any max_iters:
  initial      [0, sparsify_start)               initial_sparsity held (dense by default)
  sparsify     [sparsify_start, sparsify_end)    initial_sparsity -> peak_sparsity (cubic ramp)
  ultra        [sparsify_end, ultra_end)         peak_sparsity held
  restoration  [ultra_end, restore_end)          peak_sparsity -> final_sparsity (cubic ramp)
  final        [restore_end, 1]                  final_sparsity held (dense by default)
Every `update_interval` steps each layer prunes and grows so that its live count lands exactly on
its Erdős–Rényi share of the target. Grown weights and their Adam moments start at exactly 0. A
criterion that grows by the dense gradient reads it before optimizer_step masks it: no extra pass. The
schedule also says where attention is sparse (HSA): in the phases of `hsa_phases`.
"""

import math
from dataclasses import dataclass

import torch

PHASES = ("initial", "sparsify", "ultra", "restoration", "final")
EMBEDDING = "transformer.wte.weight"  # GPT's, tied with lm_head: sparsifying it sparsifies the output layer too


@dataclass
class SparsitySchedule:
    # The defaults are train.py's, so that code importing this file runs train.py's method (a test
    # keeps them equal); config/mst_gpt2_paper.py holds the paper's schedule.
    max_iters: int
    sparsify_start: float = 0.0  # the phase boundaries, as fractions of max_iters
    sparsify_end: float = 0.03
    ultra_end: float = 0.9
    restore_end: float = 1.0
    initial_sparsity: float = 0.0
    peak_sparsity: float = 0.8
    final_sparsity: float = 0.0
    restoration_shape: str = "early"  # 'early': regrow mostly early; 'late': the sparsify ramp mirrored
    update_interval: int = 100  # ΔT, in steps
    drop_fraction: float = 0.0
    drop_schedule: str = "global"  # cosine over the whole sparse run, or restarted each phase
    # When attention is sparse (HSA) is part of the phase timetable, so it lives here; what the pattern is,
    # and how far its window grows, lies with runtime.training_attention. A model without attention
    # ignores these two.
    hsa_phases: tuple = ("ultra",)
    hsa_window_follows_sparsity: bool = False

    def __post_init__(self):
        """Any setting that cannot make a schedule is a one-line ValueError here."""
        bounds = (self.sparsify_start, self.sparsify_end, self.ultra_end, self.restore_end)
        unknown = set(self.hsa_phases) - set(PHASES)
        checks = [(0.0 <= getattr(self, n) < 1.0, f"{n}={getattr(self, n)} must lie in [0, 1)")
                  for n in ("initial_sparsity", "peak_sparsity", "final_sparsity")]
        checks.append((0.0 <= bounds[0] <= bounds[1] <= bounds[2] <= bounds[3] <= 1.0,
                       "phase boundaries are fractions of max_iters and must satisfy 0 <= sparsify_start <= "
                       "sparsify_end <= ultra_end <= restore_end <= 1, got " + " <= ".join(map(str, bounds))))
        checks += [(getattr(self, n) > 0, f"{n}={getattr(self, n)} must be a positive number of steps")
                   for n in ("max_iters", "update_interval")]
        checks.append((0.0 <= self.drop_fraction <= 1.0, f"drop_fraction={self.drop_fraction} must lie in [0, 1]"))
        checks += [(getattr(self, n) in choices, f"{n}={getattr(self, n)!r} must be one of {choices}")
                   for n, choices in (("restoration_shape", ("early", "late")), ("drop_schedule", ("global", "phase")))]
        checks.append((not unknown, f"hsa_phases has unknown phases {sorted(unknown)}; the phases are {PHASES}"))
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        self.bounds = [round(f * self.max_iters) for f in bounds]  # in steps
        # restore_end is always an update, so the run lands on final_sparsity; when restoration
        # runs to the end of training, the last step (max_iters - 1) stands in for it.
        self.last_update = min(self.bounds[3], self.max_iters - 1)

    def phase(self, step):
        return PHASES[sum(step >= b for b in self.bounds)]

    def _phase_span(self, step):
        edges = [0] + self.bounds + [self.max_iters]
        i = PHASES.index(self.phase(step))
        return edges[i], edges[i + 1]

    def target_sparsity(self, step):
        # Zhu & Gupta's cubic, s_end + (s_start - s_end)(1 - u)^3, moves fast at first and settles
        # gently. Restoration uses it too by default ('early'): weights regrow early and get most
        # of the phase to train. 'late' mirrors the sparsify ramp in time: it holds the sparsity
        # (and saves FLOPs) longer, and densifies fast at the end.
        phase = self.phase(step)
        held = {"initial": self.initial_sparsity, "ultra": self.peak_sparsity, "final": self.final_sparsity}
        if phase in held:
            return held[phase]
        start, end = self._phase_span(step)
        s_from, s_to = ((self.initial_sparsity, self.peak_sparsity) if phase == "sparsify"
                        else (self.peak_sparsity, self.final_sparsity))
        u = (step - start) / (end - start)
        if phase == "restoration" and self.restoration_shape == "late":
            return s_to + (s_from - s_to) * (1.0 - u ** 3)
        return s_to + (s_from - s_to) * (1.0 - u) ** 3

    def is_update_step(self, step):
        return 0 < step <= self.last_update and (step % self.update_interval == 0 or step == self.last_update)

    def update_target(self, step):
        """The sparsity an update at `step` moves to: the last update lands on final_sparsity."""
        return self.target_sparsity(self.bounds[3] if step == self.last_update else step)

    def current_drop_fraction(self, step):
        start, end = (0, self.bounds[3]) if self.drop_schedule == "global" else self._phase_span(step)
        u = (step - start) / max(end - start, 1)
        return 0.5 * self.drop_fraction * (1.0 + math.cos(math.pi * min(u, 1.0)))


def spread_density(shapes, density, distribution="erdos_renyi", counts=None):
    """Per-layer densities whose parameter-weighted mean is `density`. 'erdos_renyi': density_l = eps *
    (n_in + n_out) / (n_in * n_out); a layer that would exceed 1 is made dense and eps solved again over
    the rest. 'uniform': every layer alike. `counts[i]` layers share shapes[i] (default: one each)."""
    if distribution == "uniform":
        return [density] * len(shapes)
    if distribution != "erdos_renyi":
        raise ValueError(f"unknown sparsity distribution {distribution!r}; choose 'erdos_renyi' or 'uniform'")
    numels = [r * c * n for (r, c), n in zip(shapes, counts or [1] * len(shapes))]
    raw = [(r + c) / (r * c) for r, c in shapes]
    dense = set()
    while True:
        budget = density * sum(numels) - sum(numels[i] for i in dense)
        eps = budget / sum(raw[i] * numels[i] for i in range(len(shapes)) if i not in dense)
        overflow = {i for i in range(len(shapes)) if i not in dense and eps * raw[i] > 1.0}
        if not overflow:
            return [1.0 if i in dense else eps * raw[i] for i in range(len(shapes))]
        dense |= overflow


def sparse_parameters(model, layer_types=(torch.nn.Linear,)):
    """The weight of every layer of `layer_types` (nn.Linear: every Linear weight) in `model`, in module
    order, as (name, parameter) with the name that named_parameters() gives it: MixedSparsity's usual choice,
    and the weights whose FLOPs flops.py counts. For GPT (model.py): each block's four, then the lm_head,
    tied with the embedding and so named EMBEDDING."""
    names = {id(p): name for name, p in model.named_parameters()}
    return list({names[id(m.weight)]: m.weight for m in model.modules() if isinstance(m, layer_types)}.items())


class MaskGroup:
    """Weights of one shape and one cap share a density: their masks stack into one tensor, one topk per
    update."""

    def __init__(self, names, params, max_sparsity=1.0):
        self.names, self.params, self.max_sparsity = names, params, max_sparsity
        self.numel = params[0].numel()  # per layer
        self.mask = torch.ones(len(params), self.numel, dtype=torch.bool, device=params[0].device)
        self.live = self.numel  # live weights per layer; exact, so no device sync to read it


# -- growing: which dead weights an update turns on ----------------------------------------------

GROW_CRITERIA = {}  # grow_mode -> criterion


def grow_criterion(name, reads_dense_gradient):
    """Register a criterion under `name`, MixedSparsity's grow_mode (and train.py's). A criterion,
    criterion(sparsity, group, candidates, n), returns for each layer (row) of a MaskGroup the flat indices
    of the n weights it grows among `candidates` (bool rows: the weights dead before the update), for
    instance highest(scores, candidates, n). reads_dense_gradient: whether it reads p.grad; the FLOP count
    then charges the update step a dense weight gradient (MixedSparsity.reads_dense_gradient)."""
    def register(criterion):
        criterion.reads_dense_gradient = reads_dense_gradient
        GROW_CRITERIA[name] = criterion
        return criterion
    return register


def highest(scores, candidates, n):
    """The indices of the n candidates of highest score in each row (`scores` is overwritten)."""
    return torch.topk(scores.masked_fill_(~candidates, -math.inf), n, dim=1).indices


@grow_criterion("gradient", reads_dense_gradient=True)
def grow_by_gradient(sparsity, group, candidates, n):
    """RigL's: the largest |dense gradient|."""
    return highest(torch.stack([p.grad.reshape(-1) for p in group.params]).abs(), candidates, n)


@grow_criterion("random", reads_dense_gradient=False)
def grow_at_random(sparsity, group, candidates, n):
    """SET's: uniformly at random, from the sparsity's generator (alike on every DDP rank)."""
    return highest(torch.rand(candidates.shape, generator=sparsity.generator, device=candidates.device),
                   candidates, n)


@grow_criterion("mixed", reads_dense_gradient=True)
def grow_mixed(sparsity, group, candidates, n):
    """The paper's: grow_gradient_share of them by gradient (3 in 4), the rest at random among the others."""
    n_by_gradient = round(n * sparsity.grow_gradient_share)
    grown = grow_by_gradient(sparsity, group, candidates, n_by_gradient)
    if n == n_by_gradient:  # no random draw, so that the generator moves only when it is used
        return grown
    rest = grow_at_random(sparsity, group, candidates.scatter(1, grown, False), n - n_by_gradient)
    return torch.cat([grown, rest], dim=1)


class MixedSparsity:
    """Owns the masks of `weights`, (name, parameter) pairs such as sparse_parameters(model), and applies
    the MST schedule to them. max_sparsity: {name: the highest sparsity that weight may take}; a weight at its
    cap holds it while the others keep their ER share, one absent has no cap (1.0), and one capped at 0 stays
    dense, without a mask (train.py caps GPT's tied embedding, EMBEDDING, at embedding_max_sparsity).
    grow_mode: a name in GROW_CRITERIA. The defaults are train.py's, as SparsitySchedule's are."""

    def __init__(self, weights, schedule, max_sparsity=None, distribution="erdos_renyi", grow_mode="mixed",
                 grow_gradient_share=0.75, grown_adam_state="zero", seed=0):
        weights, max_sparsity = list(weights), max_sparsity or {}
        unknown = set(max_sparsity) - {name for name, _ in weights}
        checks = [(grow_mode in GROW_CRITERIA, f"grow_mode={grow_mode!r} must be one of {tuple(GROW_CRITERIA)}"),
                  (grown_adam_state in ("zero", "gradient"),
                   f"grown_adam_state={grown_adam_state!r} must be 'zero' or 'gradient'"),
                  (0.0 <= grow_gradient_share <= 1.0, f"grow_gradient_share={grow_gradient_share} must lie in [0, 1]")]
        checks += [(0.0 <= cap <= 1.0, f"max_sparsity={cap} of {name} must lie in [0, 1]")
                   for name, cap in max_sparsity.items()]
        checks.append((not unknown, f"max_sparsity names {sorted(unknown)}, which are not among the weights"))
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        self.schedule, self.distribution = schedule, distribution
        self.grow, self.grow_gradient_share = GROW_CRITERIA[grow_mode], grow_gradient_share
        # whether an update reads the dense gradient, the criterion's own answer: the FLOP count charges
        # such an update step a dense weight gradient
        self.reads_dense_gradient = self.grow.reads_dense_gradient
        self.grown_adam_state = grown_adam_state
        by_kind = {}  # weights of one shape and one cap (None: not named in max_sparsity) share a group
        for name, p in weights:
            if max_sparsity.get(name, 1.0) > 0:
                by_kind.setdefault((max_sparsity.get(name), tuple(p.shape)), []).append((name, p))
        if not by_kind:
            raise ValueError("no weights to sparsify")
        self.groups = [MaskGroup([n for n, _ in g], [p for _, p in g], 1.0 if cap is None else cap)
                       for (cap, _), g in by_kind.items()]
        # One generator, seeded alike on every rank: the random part of growing (and the
        # initial random topology) is then identical across DDP replicas by construction.
        self.generator = torch.Generator(device=self.groups[0].mask.device).manual_seed(seed)
        self._initial_topology()

    # -- bookkeeping ---------------------------------------------------------------------
    def target_counts(self, sparsity):
        densities = spread_density([tuple(g.params[0].shape) for g in self.groups], 1.0 - sparsity,
                                    self.distribution, counts=[len(g.params) for g in self.groups])
        densities = [max(d, 1.0 - g.max_sparsity) for d, g in zip(densities, self.groups)]  # the caps
        return [round(d * g.numel) for d, g in zip(densities, self.groups)]

    def density(self):
        """Live fraction over all sparse weights, from the exact counts."""
        live = sum(g.live * len(g.params) for g in self.groups)
        return live / sum(g.numel * len(g.params) for g in self.groups)

    def layer_densities(self):
        return {name: g.live / g.numel for g in self.groups for name in g.names}

    def _initial_topology(self):
        # A run that starts sparse (initial_sparsity > 0) starts from a random ER topology.
        for g, n_target in zip(self.groups, self.target_counts(self.schedule.target_sparsity(0))):
            if n_target < g.numel:
                scores = torch.rand(g.mask.shape, generator=self.generator, device=g.mask.device)
                keep = torch.topk(scores, n_target, dim=1).indices
                g.mask.zero_().scatter_(1, keep, True)
                g.live = n_target
        self.apply_to_weights()

    # -- every step ----------------------------------------------------------------------
    @torch.no_grad()
    def _multiply_by_masks(self, tensor_of):
        pairs = [(tensor_of(p), m.view_as(p)) for g in self.groups if g.live < g.numel
                 for p, m in zip(g.params, g.mask) if tensor_of(p) is not None]
        if pairs:  # one multi-tensor kernel launch instead of one per layer
            torch._foreach_mul_(*map(list, zip(*pairs)))

    def apply_to_gradients(self):
        self._multiply_by_masks(lambda p: p.grad)

    def apply_to_weights(self):
        self._multiply_by_masks(lambda p: p)

    # -- every update_interval steps -----------------------------------------------------
    @torch.no_grad()
    def prune_and_regrow(self, step, optimizer=None):
        """Move every layer's live count to its target for `step`, swapping a drop fraction. Call it after
        backward and before optimizer_step, so that p.grad holds the dense gradient for the growing
        criterion; zeroes the weights and Adam moments at every pruned and grown position. Returns how
        many positions changed, over all layers."""
        drop_fraction = self.schedule.current_drop_fraction(step)
        changed = 0
        for g, n_target in zip(self.groups, self.target_counts(self.schedule.update_target(step))):
            n_live, numel = g.live, g.numel
            # Swap as many as the drop fraction asks, within what the layer can give and take.
            n_swap = min(int(drop_fraction * n_live), min(n_live, n_target), numel - max(n_live, n_target))
            n_prune = n_swap + max(0, n_live - n_target)  # sparsity rising: prune more than grow
            n_grow = n_swap + max(0, n_target - n_live)  # sparsity falling: grow more than prune
            if n_prune == 0 and n_grow == 0:
                continue
            old = g.mask
            new = old.clone()
            if n_prune:  # the smallest |w| among the live
                weights = torch.stack([p.detach().reshape(-1) for p in g.params]).abs()
                scores = weights.masked_fill_(~old, float("inf"))
                new.scatter_(1, torch.topk(scores, n_prune, dim=1, largest=False).indices, False)
            if n_grow:  # among the weights dead before this update: prune and grow sets stay disjoint
                new.scatter_(1, self.grow(self, g, ~old, n_grow), True)
            reset = ~(old & new)  # pruned, grown, and still dead: all must hold exact zeros
            grown = new & ~old
            for i, p in enumerate(g.params):
                p.masked_fill_(reset[i].view_as(p), 0.0)
                state = optimizer.state.get(p, {}) if optimizer is not None else {}
                for moment in ("exp_avg", "exp_avg_sq"):
                    if moment in state:
                        state[moment].masked_fill_(reset[i].view_as(p), 0.0)
                if self.grown_adam_state == "gradient" and "exp_avg_sq" in state:
                    # From a cold second moment a grown weight's first step is its largest, 0.45 of
                    # a full one (a settled weight with noisy gradients takes ~0.2). Seeded with its
                    # gradient squared, its steps ramp up as 1 - beta1^k instead: a warm-up.
                    state["exp_avg_sq"].add_(p.grad.square().masked_fill_(~grown[i].view_as(p), 0.0))
            g.mask.copy_(new)
            g.live = n_live - n_prune + n_grow
            changed += (n_prune + n_grow) * len(g.params)
        return changed

    # -- checkpointing: one flat bool mask per weight, by parameter name -----------------
    def state_dict(self):
        return {"masks": {name: row.cpu() for g in self.groups for name, row in zip(g.names, g.mask)},
                "generator": self.generator.get_state()}

    def load_state_dict(self, state):
        for g in self.groups:
            g.mask.copy_(torch.stack([state["masks"][name] for name in g.names]))
            g.live = int(g.mask[0].sum())  # every layer of a group holds the same count
        self.generator.set_state(state["generator"])


def optimizer_groups(model, weight_decay, sparsity=None):
    """AdamW's parameter groups: matrices and embeddings decay, biases and norm gains do not. Given
    `sparsity`, the weights of each mask group form a group of their own, so that set_density_scaled_rates
    can give them a rate of their own."""
    masked = {id(p) for g in sparsity.groups for p in g.params} if sparsity is not None else set()
    groups = [{"params": [p for p in model.parameters() if p.dim() >= 2 and id(p) not in masked],
               "weight_decay": weight_decay},
              {"params": [p for p in model.parameters() if p.dim() < 2], "weight_decay": 0.0}]
    for i, g in enumerate(sparsity.groups if sparsity is not None else []):
        groups.append({"params": list(g.params), "weight_decay": weight_decay, "mask_group": i})
    return groups


def set_density_scaled_rates(optimizer, lr, sparsity=None, density_power=1.0):
    """Density-aware rates (train.py's density_lr_scaling): every group at `lr`, but a mask group
    (optimizer_groups) at lr / its density ** density_power. At power 1 it is SμPar's rule for Adam
    (Dey et al. 2024), under which a layer whose inputs are a share d live moves its outputs as far per
    step as the dense layer; 0.5 is milder (results/docmix: one rate step above the best costs under 0.1
    nats, against up to 0.5 at power 1). The density is the live one, so the rate follows the phases.
    AdamW decays a weight by lr * weight_decay a step, so a group's decay grows with its rate."""
    for group in optimizer.param_groups:
        mask_group = sparsity.groups[group["mask_group"]] if "mask_group" in group else None
        density = 1.0 if mask_group is None else max(mask_group.live, 1) / mask_group.numel
        group["lr"] = lr / density ** density_power


def optimizer_step(optimizer, parameters, sparsity=None, grad_clip=0.0):
    """One optimizer step under MST's masks: gradients are masked before clipping and the step, so the
    clipping norm sees only live gradients and dead weights' Adam moments stay 0; weights are masked
    after it, so that dead weights stay exactly 0 whatever the optimizer does."""
    if sparsity is not None:
        sparsity.apply_to_gradients()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(parameters, grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if sparsity is not None:
        sparsity.apply_to_weights()
