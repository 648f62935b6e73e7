# MST on the docmix comparison setup (config/docmix_dense.py): the phase fractions of
# config/mst_gpt2.py scaled to 2500 steps, at 0.29x the dense run's training FLOPs.
#   python train.py config/docmix_mst.py
exec(open("config/docmix_dense.py").read())
out_dir = "out/docmix_mst"
mst = True
sparsify_end = 250  # 10% warm-up, 90% sparse until 80%, restored by the end
ultra_end = 2000
restore_end = 2500
update_interval = 50
sparse_embedding = True  # the tied embedding / lm_head is 31% of the FLOPs: left dense, MST cannot reach 0.3x
