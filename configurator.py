"""
Configuration from plain-Python files and --key=value overrides, with typos caught.

    python train.py config/mst_tiny.py --max_iters=500 --grow_mode=random

Config files apply first, in order, then the overrides, wherever they stand on the command line.
Every name a config file defines, and every --key, must already be a default in train.py,
and its value must have the default's type (an int is accepted where a float is expected).
Anything else stops the run before it starts, with one line saying what is wrong.
"""

import ast
import difflib
import io
import os
import textwrap
import tokenize
import types
from ast import literal_eval


class ConfigError(ValueError):
    pass


def _checked(key, value, defaults, origin):
    if key not in defaults:
        close = difflib.get_close_matches(key, defaults, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"{origin}: unknown config key '{key}'{hint}")
    expected = type(defaults[key])
    if defaults[key] is None or isinstance(value, expected) and not (expected is int and isinstance(value, bool)):
        return value
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is tuple and isinstance(value, list):
        return tuple(value)
    raise ConfigError(f"{origin}: '{key}' must be {expected.__name__}, got {value!r} ({type(value).__name__})")


def load_config(defaults, argv):
    """Return a dict of the settings that `argv` (config files and --key=value) changes. Config files
    apply in their order, then the --key=value overrides in theirs: an override wins wherever it
    stands, so a config file named after it cannot undo it."""
    config = {}
    for arg in sorted(argv, key=lambda arg: arg.startswith("--")):  # a stable sort: files, then overrides
        if not arg.startswith("--"):
            if not os.path.isfile(arg):
                raise ConfigError(f"config file '{arg}' not found")
            namespace = {"__file__": os.path.abspath(arg)}  # a config can include another beside it
            try:
                exec(compile(open(arg).read(), arg, "exec"), namespace)
            except Exception as e:  # a config file that does not run is a config error
                raise ConfigError(f"{arg}: {type(e).__name__}: {e}") from None
            for key, value in namespace.items():
                if key.startswith("_") or isinstance(value, types.ModuleType):
                    continue
                config[key] = _checked(key, value, defaults, arg)
            continue
        key, sep, text = arg[2:].partition("=")
        if not sep:
            raise ConfigError(f"'{arg}': overrides are written --key=value")
        try:
            value = literal_eval(text)
        except (ValueError, SyntaxError):
            value = text  # a bare word is a string: --dataset=openwebtext
        config[key] = _checked(key, value, defaults, f"--{key}")
    return config


def as_override(value):
    """How a value is written as --key=value: a bare word where that reads back as the same string."""
    if isinstance(value, str) and value.isidentifier() and value not in ("True", "False", "None"):
        return value
    return repr(value)


def settings_block(script):
    """The script's settings block (the module globals between its first two `# ---` lines) as
    {name: default}, read from the source without running it; defaults that are not literals (those
    computed from the machine) are left out."""
    source = open(script, encoding="utf-8").read()
    start, end = [i + 1 for i, line in enumerate(source.splitlines()) if line.startswith("# ---")][:2]
    settings = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and start < node.lineno < end and isinstance(node.targets[0], ast.Name):
            try:
                settings[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return settings


HELP_COLUMN, HELP_WIDTH = 38, 100  # where --help's descriptions start, and its lines' largest width


def settings_help(script, defaults):
    """--help text made from the script's settings block, the module globals between its first two
    `# ---` lines: a `# heading` line starts a section, and each setting shows its default and the
    comment at the end of its line. Made from the source, it cannot drift from it."""
    source = open(script, encoding="utf-8").read()
    lines = source.splitlines()
    start, end = [i for i, line in enumerate(lines) if line.startswith("# ---")][:2]
    comments = {}  # line number (from 1) -> the text of the comment on it
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT and start < token.start[0] - 1 < end:
            comments[token.start[0]] = token.string.lstrip("#").strip()
    out = [f"usage: python {os.path.basename(script)} [config.py ...] [--key=value ...]", "",
           "Config files (plain Python), in order, then --key=value overrides change these defaults.",
           "A value is a Python literal; a bare word is a string."]
    for number in range(start + 2, end + 1):  # line numbers from 1, between the two markers
        line = lines[number - 1]
        key = line.split("=")[0].strip()
        if line.startswith("#"):
            out += ["", comments[number]]
        elif key in defaults:
            # the description in a column of its own, wrapped to the width; under a long setting
            setting = f"  --{key}={as_override(defaults[key])}"
            described = textwrap.wrap(comments.get(number, ""), HELP_WIDTH - HELP_COLUMN)
            if len(setting) + 2 > HELP_COLUMN:
                out.append(setting)
                setting = ""
            out += [f"{setting if i == 0 else '':<{HELP_COLUMN}}{text}" for i, text in enumerate(described)]
            if not described:
                out.append(setting)
    return "\n".join(out)
