"""The committed study runs against the commands that are said to make them: every metrics file in
results/docmix/<budget>/ has one line in that folder's runs.txt, and the settings that line gives
(config files and overrides on train.py's defaults) are the ones the run's header recorded."""

import glob
import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from configurator import load_config, settings_block

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Where a run's header may differ from its command: where it wrote, and what the machine chose or the
# budget solved (peak_sparsity, from flops_budget); and EMBEDDING, a constant that train.py imports and
# some December 2026 headers recorded as if it were a setting.
NOT_COMPARED = {"out_dir", "device", "dtype", "compile", "peak_sparsity", "EMBEDDING"}
FOLDERS = sorted(os.path.dirname(p) for p in glob.glob(os.path.join(REPO, "results", "docmix", "*", "runs.txt")))


@pytest.mark.parametrize("folder", FOLDERS, ids=os.path.basename)
def test_runs_txt_makes_the_committed_runs(folder, monkeypatch):
    monkeypatch.chdir(REPO)  # the commands name config files from the repository's root
    defaults = settings_block(os.path.join(REPO, "train.py"))
    commands = {}
    for line in open(os.path.join(folder, "runs.txt")):
        words = shlex.split(line)
        assert words[:2] == ["python", "train.py"], line
        settings = {**defaults, **load_config(defaults, words[2:])}
        commands[os.path.basename(settings["out_dir"])] = settings
    runs = {os.path.basename(p)[:-len(".jsonl")]: p for p in glob.glob(os.path.join(folder, "*.jsonl"))}
    assert sorted(commands) == sorted(runs)
    for name, path in runs.items():
        with open(path) as f:
            recorded = json.loads(f.readline())["run"]
        for key, value in recorded.items():  # older headers lack the settings added since: their defaults
            if key not in NOT_COMPARED:
                expected = commands[name][key]
                assert (list(expected) if isinstance(expected, tuple) else expected) == value, (name, key)


def test_the_tables_are_what_plots_sh_writes(tmp_path):
    """Each table in results/docmix that plots.sh's `plot.py rates` and `plot.py epochs` commands write is
    what they write from the committed metrics today, and README.md links them."""
    docmix = os.path.join(REPO, "results", "docmix")
    lines = [line for line in open(os.path.join(docmix, "plots.sh")).read().replace("\\\n", " ").splitlines()
             if "plot.py rates" in line or "plot.py epochs" in line]
    tables = []
    for line in lines:
        words = shlex.split(line)[2:]  # python ../../plot.py
        table = words[words.index("--table") + 1]
        words[words.index("--table") + 1] = str(tmp_path / table)
        if "--out" in words:
            words[words.index("--out") + 1] = str(tmp_path / "plot.png")
        expanded = []
        for word in words:  # the globs plots.sh's shell expands, each in sorted order
            paths = sorted(glob.glob(os.path.join(docmix, word))) if "*" in word else [word]
            assert paths, (line, word)
            expanded += paths
        result = subprocess.run([sys.executable, os.path.join(REPO, "plot.py"), *expanded], capture_output=True,
                                text=True, cwd=docmix)
        assert result.returncode == 0, result.stderr
        assert (tmp_path / table).read_text() == open(os.path.join(docmix, table)).read(), table
        tables.append(table)
    assert tables == ["rates.md", "rates_b8.md", "levers.md", "cliff.md", "cliff_b8.md", "cliff_pool10M.md",
                      "epochs.md", "paper.md"]
    readme = open(os.path.join(REPO, "README.md")).read()
    cited = re.findall(r"\(results/docmix/(\w+\.md)\)", readme)
    assert {"rates.md", "rates_b8.md", "epochs.md", "paper.md"} <= set(cited) <= set(tables) | {"README.md"}, cited
