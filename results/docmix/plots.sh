#!/bin/bash
# Writes rates.md, rates.png, rates_b8.md, levers.md, isoflop.png, frontier.png, cliff.md, cliff.png,
# cliff_b8.md, cliff_b8.png, cliff_pool10M.md, cliff_pool10M.png, epochs.md, epochs.png, paper.md and
# paper/ from the metrics files committed here:
#   bash results/docmix/plots.sh
cd "$(dirname "$0")"
# The families at two budgets; at 0.078x the levered MST with both rate powers, before and after the cliff fix:
python ../../plot.py rates 0078x/*.jsonl cliff_0078x/*.jsonl 030x/*.jsonl --out rates.png --table rates.md --reference-flops 6.538e16 \
 --title "docmix, 32 x 1024 tokens a step, 2500 steps unless named; min_lr = rate / 10"
# The same 0.078x families at 8 sequences a step (a quarter of the tokens and of the FLOPs):
python ../../plot.py rates 0078x_b8/*.jsonl --table rates_b8.md --reference-flops 1.6345e16
# The levers' settings at 0.30x, at the rate where their first setting was best (seed 1337):
python ../../plot.py rates 030x/mst_448_*restore0[57]_lr1.2e-3_s1337.jsonl 030x_levers/*_s1337.jsonl --table levers.md \
 --reference-flops 6.538e16
# The 12-layer shape at equal FLOPs, dense and wider with MST's three levers; and the families against FLOPs.
# Each family at its best rate (--best-rate):
python ../../plot.py isoflop --best-rate --out . \
 --budget 0.078x 0078x/dense_12x128_*.jsonl 0078x/mst_192_*restore07*.jsonl \
 --budget 0.30x 030x/dense_12x352_*.jsonl 030x/mst_*restore07*.jsonl \
 --title "docmix, 12 layers; MST with the three levers; each family at its best peak rate"
python ../../plot.py frontier --best-rate --out . --reference "dense 12x352=030x/dense_12x352_lr1.7e-3_s1337.jsonl" \
 --family "dense, 12 layers" 0078x/dense_12x128_*.jsonl 030x/dense_12x352_*.jsonl \
 --family "dense, 6 layers" 0078x/dense_6x152_*.jsonl 030x/dense_6x448_*.jsonl \
 --family "MST with the three levers, 12 layers" 0078x/mst_192_*restore07*.jsonl 030x/mst_448_*restore07*.jsonl \
 --family "MST, 12 layers" 0078x/mst_192_lr*.jsonl 030x/mst_448_lr*.jsonl \
 --title "docmix, each family at its best peak rate"
# The rate cliff of the levered MST 192: SμPar's rate / density (before) against rate / density ** 0.5 (after),
# and at 8 sequences a step the levers taken away one at a time at 4.8e-3, where the levered MST fell off:
python ../../plot.py rates 0078x/mst_192_dlr_warm_drop03_restore07_lr*.jsonl cliff_0078x/*.jsonl --out cliff.png \
 --table cliff.md --reference-flops 6.538e16 --title "docmix, 32 x 1024 tokens a step; min_lr = rate / 10"
python ../../plot.py rates 0078x_b8/mst_192_dlr_warm_drop03_restore07_lr*.jsonl cliff_0078x_b8/*.jsonl --out cliff_b8.png \
 --table cliff_b8.md --reference-flops 1.6345e16 --title "docmix, 8 x 1024 tokens a step; min_lr = rate / 10"
# and on the 10M pool (about 8 epochs), beside dense 12 x 128, power 1 against power 0.5 (the config's now):
python ../../plot.py rates pool10M_0078x/dense_12x128_lr*.jsonl pool10M_0078x/mst_192_dlr*_restore07_lr*.jsonl \
 --out cliff_pool10M.png --table cliff_pool10M.md --reference-flops 6.538e16 \
 --title "docmix_pool10M (about 8 epochs), 32 x 1024 tokens a step; min_lr = rate / 10"
# Data repetition at equal FLOPs: the families on the whole of docmix (40.5M tokens, about 2 epochs) and on
# pools of it (prepare.py pool), each at its best rate on the best evaluated val loss:
python ../../plot.py epochs --out epochs.png --table epochs.md \
 --budget 0.078x 0078x/dense_12x128_*.jsonl 0078x/mst_192_lr*.jsonl 0078x/mst_192_*restore07*.jsonl pool*_0078x/*.jsonl \
 --budget 0.30x 030x/dense_12x352_*.jsonl 030x/mst_448_lr*.jsonl 030x/mst_448_*restore07*.jsonl pool*_030x/*.jsonl \
 --title "docmix and its pools, 2500 steps of 32 x 1024 tokens; min_lr = rate / 10"
# The paper's own comparison in its own regime: GPT-2 124M (12 x 768) dense (for the same 2500 steps, and for
# 722 steps at MST's FLOPs) against MST on the paper's schedule and with the levers, on the 2.5M pool (about 33
# epochs), on the best val loss:
python ../../plot.py rates pool2.5M_124m/*.jsonl --metric best --table paper.md --reference-flops 6.538e16
# The 124M runs' val loss by step and by FLOPs, and MST's sparsity, in paper/ (each family at its best rate so far):
python ../../plot.py curves "dense 124M, 1.4e-4=pool2.5M_124m/dense_12x768_drop0.1_lr1.4e-4_s1337.jsonl" \
 "dense 124M, 722 steps (0.29x), 4.2e-4=pool2.5M_124m/dense_12x768_722steps_drop0.1_lr4.2e-4_s1337.jsonl" \
 "MST 124M, the paper's schedule, 8.5e-4=pool2.5M_124m/mst_768_paper_drop0.1_lr8.5e-4_s1337.jsonl" \
 "MST 124M, the levers, 6e-4=pool2.5M_124m/mst_768_levers_paperends_drop0.1_lr6e-4_s1337.jsonl" --out paper \
 --title "GPT-2 124M on docmix_pool2.5M (about 33 epochs), dropout 0.1" > /dev/null
