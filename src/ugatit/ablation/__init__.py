"""`ugatit ablate`: the paper's ablations (no CAM in G, in D, in both; other decoder normalisations)
trained under one base config and seed set, evaluated alike and reported side by side. A program
beside `demo`: it drives `training.train` and `evaluation`, it is not part of them.

`options` (`AblationOptions`: what to run), `plan` (the runs, the data, the plan file), `runner`
(`run_ablation`: training and evaluating each run, in turn or one process per device), `report` (the
table, the reading, the gallery, the curves). Nothing is imported here, so that the command line reads
`options` without importing torch.
"""
