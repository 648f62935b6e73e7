"""configurator.py: config files and --key=value overrides, with typos and wrong types caught."""

import os
import subprocess
import sys

import pytest

from configurator import ConfigError, load_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULTS = {"max_iters": 100, "learning_rate": 6e-4, "dataset": "openwebtext", "mst": True,
            "hsa_phases": ("ultra",), "ultra_end": 0.8}


def test_overrides_take_python_literals_and_bare_words():
    config = load_config(DEFAULTS, ["--max_iters=7", "--learning_rate=1e-3", "--dataset=docmix", "--mst=False",
                                    "--hsa_phases=()", "--ultra_end=1"])
    assert config == {"max_iters": 7, "learning_rate": 1e-3, "dataset": "docmix", "mst": False, "hsa_phases": (),
                      "ultra_end": 1.0}
    assert isinstance(config["ultra_end"], float)  # an int is accepted where a float is expected
    assert load_config(DEFAULTS, ["--hsa_phases=['ultra', 'restoration']"])["hsa_phases"] == ("ultra", "restoration")


@pytest.mark.parametrize("arg, message", [
    ("--max_itres=10", "--max_itres: unknown config key 'max_itres' (did you mean 'max_iters'?)"),
    ("--max_iters=ten", "'max_iters' must be int, got 'ten' (str)"),
    ("--max_iters=1.5", "'max_iters' must be int"),
    ("--mst=1", "'mst' must be bool"),
    ("--max_iters", "'--max_iters': overrides are written --key=value"),
    ("missing.py", "config file 'missing.py' not found"),
])
def test_bad_arguments_are_one_clear_error(arg, message):
    with pytest.raises(ConfigError) as error:
        load_config(DEFAULTS, [arg])
    assert message in str(error.value)


def test_config_files_are_checked_like_overrides(tmp_path):
    typo = tmp_path / "typo.py"
    typo.write_text("max_iters = 10\nlerning_rate = 1e-3\n")
    with pytest.raises(ConfigError, match="typo.py: unknown config key 'lerning_rate'"):
        load_config(DEFAULTS, [str(typo)])
    broken = tmp_path / "broken.py"
    broken.write_text("max_iters = 1 / 0\n")
    with pytest.raises(ConfigError, match="broken.py: ZeroDivisionError"):
        load_config(DEFAULTS, [str(broken)])
    ok = tmp_path / "ok.py"
    ok.write_text("import math\nmax_iters = 10\n_scratch = 3\n")  # modules and _private names are not settings
    assert load_config(DEFAULTS, [str(ok), "--max_iters=20"]) == {"max_iters": 20}  # later arguments win


def test_a_config_can_include_the_one_beside_it_from_any_directory(tmp_path):
    # config/dense_tiny.py execs mst_tiny.py by its own location, not the working directory's:
    # run from elsewhere, train.py gets past the config and stops at the data it cannot find
    for name, dataset in (("dense_tiny.py", "shakespeare"), ("docmix_mst.py", "docmix")):
        result = subprocess.run([sys.executable, os.path.join(REPO, "train.py"), os.path.join(REPO, "config", name)],
                                cwd=tmp_path, capture_output=True, text=True,
                                env=dict(os.environ, MST_DATA_DIR=str(tmp_path / "data")))
        assert result.returncode == 2
        assert result.stderr.startswith(f"error: {tmp_path / 'data' / dataset / 'train.bin'} not found"), result.stderr


def test_train_py_reports_a_config_typo_in_one_line(tmp_path):
    (tmp_path / "typo.py").write_text("batch_size = 4\nmax_itres = 10\n")
    result = subprocess.run([sys.executable, os.path.join(REPO, "train.py"), "typo.py"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr == "error: typo.py: unknown config key 'max_itres' (did you mean 'max_iters'?)\n"


def test_an_override_wins_wherever_it_stands(tmp_path):
    # `--out_dir=X config.py`: the config file named after the override must not undo it (it once did,
    # and a run with --overwrite=True then replaced the config's own out_dir)
    first, second = tmp_path / "first.py", tmp_path / "second.py"
    first.write_text("max_iters = 10\ndataset = 'shakespeare'\n")
    second.write_text("max_iters = 30\n")
    assert load_config(DEFAULTS, ["--max_iters=20", str(first), "--dataset=docmix"]) == {
        "max_iters": 20, "dataset": "docmix"}
    assert load_config(DEFAULTS, [str(second), "--mst=False", str(first)]) == {
        "max_iters": 10, "dataset": "shakespeare", "mst": False}  # config files: the later one wins
    assert load_config(DEFAULTS, ["--max_iters=5", "--max_iters=6", str(second)]) == {"max_iters": 6}
