# The comparison setup of results/docmix/README.md on the docmix corpus (40M GPT-2 tokens of
# real text): GPT-2 124M, 32 x 1024 tokens per step, 2500 steps (about two epochs), dense. Its count,
# 6.538e16 training FLOPs, is the unit of the study's budgets. The rate suits no model here: the best
# peak rates measured (results/docmix, each bracketed) are 3.4e-3 for dense 12 x 128 (4.8e-3 as good),
# 4.8e-3 for dense 6 x 152, 2.4e-3 for MST (config/docmix_mst.py) and 4.8e-3 for MST with its levers
# (config/docmix_mst_levers.py); at 0.30x, 1.7e-3 for dense 12 x 352 and 1.2e-3 for dense 6 x 448 and
# for dense 12 x 448 run the 1751 steps the budget buys (--max_iters=1751), 0.18 behind 12 x 352;
# at 0.078x, 2.4e-3 for dense 12 x 192 run its 1496 steps, 0.18 behind 12 x 128.
# Wider models want lower rates; GPT-2 124M itself was not tuned.
#   python prepare.py tokens --train docmix_train.u16.xz --val docmix_val.u16.xz --name docmix
#   python train.py config/docmix_dense.py --n_embd=128 --n_head=2 --learning_rate=3.4e-3 --min_lr=3.4e-4
out_dir = "out/docmix_dense"
dataset = "docmix"
batch_size = 32
gradient_accumulation_steps = 1
max_iters = 2500
warmup_iters = 100
eval_interval = 250
eval_iters = 40
log_interval = 50
always_save_checkpoint = False
mst = False
