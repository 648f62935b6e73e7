"""
Training FLOPs (forward + backward) counted from the masks' densities, as the paper counts them: it
assumes kernels that skip zeros. Layer norms, softmax and the embedding lookup are left out. A model is
what the count needs, not its config: numels, {name: weights} of its weight matrices (each multiplied once
per token, as sparse.sparse_parameters picks them), their densities, and the shape of its causal
attention, attention_shape = (n_layer, n_embd, seq_len), or None. Per token, per optimizer step, planned
for a whole run before it starts, and the peak sparsity that spends a FLOP budget.
"""

import dataclasses


def linear_training_flops(numel, density=1.0, dense_weight_gradient=False):
    """A Linear with N weights at density d: 2Nd forward, 2Nd for the input gradient, and 2Nd for the
    weight gradient, or 2N on a step that reads the dense gradient (every topology update whose growing
    criterion reads it, also those that only prune: a slight over-count, never an under-count)."""
    return 4 * numel * density + 2 * numel * (1.0 if dense_weight_gradient else density)


def attention_training_flops(n_layer, n_embd, seq_len, density=1.0):
    """QK^T and AV, forward 4 and backward 8 FLOPs per (query, key) pair and channel, over the
    (seq_len + 1) / 2 keys of a causal query on average, scaled by the pattern's density."""
    return n_layer * 12 * n_embd * density * (seq_len + 1) / 2


def training_flops_per_token(numels, attention_shape=None, densities=None, attention_density=1.0,
                             dense_weight_gradient=False):
    """Training FLOPs per token: each weight matrix in numels at its density in `densities` ({name:
    density}; absent names are dense), plus attention of attention_shape at attention_density."""
    densities = densities or {}
    flops = attention_training_flops(*attention_shape, attention_density) if attention_shape else 0.0
    for name, numel in numels.items():
        flops += linear_training_flops(numel, densities.get(name, 1.0), dense_weight_gradient)
    return flops


def planned_flops_per_token(schedule, sparsity, numels, attention_shape, attention_density_at, first_step=0):
    """A run's counted FLOPs per token summed over its steps from first_step on, known before they run,
    since every update lands each layer on its target (from the masks' live counts where the run
    resumes). attention_density_at(step): the kept share of causal pairs."""
    counts = ([g.live for g in sparsity.groups] if first_step > 0
              else sparsity.target_counts(schedule.target_sparsity(0)))
    per_step, total = {}, 0.0
    for step in range(first_step, schedule.max_iters):
        update = schedule.is_update_step(step)
        key = (tuple(counts), attention_density_at(step), update and sparsity.reads_dense_gradient)
        if key not in per_step:
            densities = {n: c / g.numel for g, c in zip(sparsity.groups, counts) for n in g.names}
            per_step[key] = training_flops_per_token(numels, attention_shape, densities, *key[1:])
        total += per_step[key]
        if update:  # after the step's count, as in train.py
            counts = sparsity.target_counts(schedule.update_target(step))
    return total


class StepFlops:
    """(counted, dense-equivalent) training FLOPs of one optimizer step of `tokens` tokens, remembered:
    the count changes only when the densities or the attention do."""

    def __init__(self, numels, attention_shape, sparsity, tokens):
        self.numels, self.attention_shape, self.sparsity, self.tokens = numels, attention_shape, sparsity, tokens
        self.known = {}

    def __call__(self, attention_density, dense_weight_gradient):
        groups = self.sparsity.groups if self.sparsity is not None else []
        key = (attention_density, dense_weight_gradient, tuple(g.live for g in groups))
        if key not in self.known:
            densities = self.sparsity.layer_densities() if self.sparsity is not None else {}
            self.known[key] = tuple(self.tokens * training_flops_per_token(self.numels, self.attention_shape, *args)
                                    for args in ((densities, attention_density, dense_weight_gradient),
                                                 ({}, 1.0, False)))
        return self.known[key]


def schedule_for_budget(schedule, budget, planned_flops):
    """The schedule with the peak sparsity at which planned_flops(schedule) spends `budget` FLOPs."""
    peak = peak_sparsity_for(lambda p: planned_flops(dataclasses.replace(schedule, peak_sparsity=p)), budget)
    return dataclasses.replace(schedule, peak_sparsity=peak)


def peak_sparsity_for(flops_at_peak, budget):
    """The peak in [0, 0.999] at which flops_at_peak(peak), falling as the peak rises, meets `budget`."""
    low, high = 0.0, 0.999
    if not flops_at_peak(high) <= budget <= flops_at_peak(low):
        raise ValueError(f"{budget:.4g} FLOPs are out of reach: the run counts {flops_at_peak(high):.4g} at "
                         f"peak sparsity 0.999 and {flops_at_peak(low):.4g} dense")
    for _ in range(20):
        mid = (low + high) / 2
        low, high = (mid, high) if flops_at_peak(mid) > budget else (low, mid)
    return round(high, 6)
