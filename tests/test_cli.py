"""What a user meets first on the command line: train.py --help made from its settings block."""

import ast
import io
import os
import re
import runpy
import sys
from ast import literal_eval
from contextlib import redirect_stdout

import pytest
import torch


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(REPO, "train.py")


def settings_in_source():
    """{key: default} of train.py's module globals before config_keys, evaluated as train.py does."""
    defaults = {}
    for node in ast.parse(open(TRAIN, encoding="utf-8").read()).body:
        if isinstance(node, ast.Assign) and node.targets[0].id == "config_keys":
            return defaults
        if isinstance(node, ast.Assign):
            defaults[node.targets[0].id] = eval(compile(ast.Expression(node.value), TRAIN, "eval"), {"torch": torch})


def help_text(flag, monkeypatch):
    monkeypatch.setattr(sys, "argv", [TRAIN, flag])
    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit) as exit_info:
        runpy.run_path(TRAIN, run_name="__main__")
    assert exit_info.value.code == 0
    return out.getvalue()


def test_help_lists_every_setting_with_its_default_and_comment(monkeypatch):
    text = help_text("--help", monkeypatch)
    assert help_text("-h", monkeypatch) == text
    shown = {}  # key -> (default as written, the rest of its line)
    for line in text.splitlines():
        match = re.match(r"  --(\w+)=(\S+)\s*(.*)$", line)
        if match:
            shown[match.group(1)] = match.group(2), match.group(3)
    defaults = settings_in_source()
    assert sorted(shown) == sorted(defaults) and "learning_rate" in shown and "data_dir" in shown
    for key, default in defaults.items():
        written = shown[key][0]
        try:
            value = literal_eval(written)
        except (ValueError, SyntaxError):
            value = written  # a bare word, as configurator.py reads an override
        assert value == default and type(value) is type(default), (key, written)
    # the comments, and the section headings, are the source's own
    source = open(TRAIN, encoding="utf-8").read().split("# ---")[1].splitlines()
    for line in source:
        if line.startswith("# "):
            assert f"\n\n{line[2:]}\n" in text
        elif "  # " in line:
            assert shown[line.split(" = ")[0]][1] == line.split("  # ", 1)[1], line
    assert shown["eval_iters"][1] == "batches per split; the same batches at every evaluation"
