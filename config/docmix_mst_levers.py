# config/docmix_mst.py with the three levers that won on docmix at 0.078x (results/docmix), at their best
# rate (4.8e-3, bracketed): density-aware rates, warm grown weights with a moving topology, and
# restoration from 70% of the run to 85%, so that regrown weights train at the peak rate (the budget
# then solves peak 0.57). A sparse layer's rate is learning_rate / density ** 0.5: SμPar's power 1 was
# 0.017 better on the whole of docmix (2.470 against 2.487 on two seeds) but fell off a cliff one rate
# step above its best (+0.29 on the 10M pool); power 0.5 loses 0.025 to 0.092 there
# (results/docmix/cliff*.md) and won on the 10M pool (2.563, 2.600 against dense's 2.687, 2.717).
# Dense 12 x 128 at its best on the whole of docmix: 2.564, 2.590. At 0.30x, 448 wide, power 1 wanted
# 1.2e-3 and tied dense 12 x 352 (results/docmix/epochs.md). At 8 sequences a step: a tie (rates_b8.md).
# At each budget:
#   python train.py config/docmix_mst_levers.py
#   python train.py config/docmix_mst_levers.py --flops_budget=1.9614e16 --n_embd=448 --n_head=7 \
#     --learning_rate=1.2e-3 --min_lr=1.2e-4  # power 1's best; power 0.5 is not swept at 0.30x yet
import os

exec(open(os.path.join(os.path.dirname(__file__), "docmix_mst.py")).read())
out_dir = "out/docmix_mst_levers"
learning_rate = 4.8e-3
min_lr = 4.8e-4
density_lr_scaling = True  # each sparse layer's rate: learning_rate / its density ** density_lr_power
density_lr_power = 0.5  # 1 (SμPar) loses up to 0.3 nats one rate step too high; 0.5 under 0.1
grown_adam_state = "gradient"  # grown weights' second moment starts at their gradient squared
drop_fraction = 0.3  # the topology moves in the ultra phase
ultra_end = 0.7
restore_end = 0.85
