# config/docmix_mst.py with the three levers that won on docmix at 0.078x (results/docmix), at their best
# rate (4.8e-3, bracketed): density-aware rates, warm grown weights with a moving topology, and
# restoration from 70% of the run to 85%, so that regrown weights train at the peak rate (the budget
# then solves peak 0.57). Final val loss 2.452 and 2.488 (seeds 1337, 2) against 2.564 and 2.590 for the
# best dense model of equal FLOPs (12 x 128 at 3.4e-3). At 0.30x, 448 wide, they want 1.2e-3 and tie
# dense 12 x 352 (2.291, 2.331 against 2.291, 2.322; 512 wide, peak 0.60, also at 1.2e-3: 2.304, 2.337);
# restoring from 50% to 75% instead (--ultra_end=0.5 --restore_end=0.75) ties at both budgets, swept
# like the rest: 2.451, 2.498 here, and at 0.30x 2.284, 2.312, 0.009 ahead of dense 12 x 352 (rates.md).
# At 8 sequences a step (--batch_size=8) the lead is gone: a tie with dense, best at 2.4e-3 to 3.4e-3
# (results/docmix/rates_b8.md).
# At each budget:
#   python train.py config/docmix_mst_levers.py
#   python train.py config/docmix_mst_levers.py --flops_budget=1.9614e16 --n_embd=448 --n_head=7 \
#     --learning_rate=1.2e-3 --min_lr=1.2e-4
import os

exec(open(os.path.join(os.path.dirname(__file__), "docmix_mst.py")).read())
out_dir = "out/docmix_mst_levers"
learning_rate = 4.8e-3
min_lr = 4.8e-4
density_lr_scaling = True  # each sparse layer's rate: learning_rate / its density
grown_adam_state = "gradient"  # grown weights' second moment starts at their gradient squared
drop_fraction = 0.3  # the topology moves in the ultra phase
ultra_end = 0.7
restore_end = 0.85
