"""The committed study runs against the commands that are said to make them: every metrics file in
results/docmix/<budget>/ has one line in that folder's runs.txt, and the settings that line gives
(config files and overrides on train.py's defaults) are the ones the run's header recorded."""

import glob
import json
import os
import shlex
import subprocess
import sys

import pytest

from configurator import load_config, settings_block

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Where a run's header may differ from its command: where it wrote, and what the machine chose or the
# budget solved (peak_sparsity, from flops_budget).
NOT_COMPARED = {"out_dir", "device", "dtype", "compile", "peak_sparsity"}
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


def test_the_rates_tables_are_what_plots_sh_writes(tmp_path):
    """results/docmix/rates.md is what plots.sh's `plot.py rates` command writes from the committed
    metrics today, and README.md shows that table."""
    docmix = os.path.join(REPO, "results", "docmix")
    [line] = [line for line in open(os.path.join(docmix, "plots.sh")).read().replace("\\\n", " ").splitlines()
              if "plot.py rates" in line]
    words = shlex.split(line)[2:]  # python ../../plot.py
    words[words.index("--out") + 1] = str(tmp_path / "rates.png")
    words[words.index("--table") + 1] = str(tmp_path / "rates.md")
    paths = sorted(glob.glob(os.path.join(docmix, words[1])))
    result = subprocess.run([sys.executable, os.path.join(REPO, "plot.py"), words[0], *paths, *words[2:]],
                            capture_output=True, text=True, cwd=docmix)
    assert result.returncode == 0, result.stderr
    written = (tmp_path / "rates.md").read_text()
    assert written == open(os.path.join(docmix, "rates.md")).read()
    readme = open(os.path.join(REPO, "README.md")).read()
    shown = readme.split("<!-- results:rates -->\n")[1].split("\n<!-- /results:rates -->")[0]
    assert shown == written.split("\n\n")[0].strip()
