"""The user-facing docs' commands still run as written: every `train.py --config=...` line of
README.md, docs/*.md and the configs' and scripts' docstrings parses with train.py's own flag
(`config_flags`) and validates, every `python -m <module>` names an importable module and flags
it defines, and every repository path the docs cite exists."""

import glob
import importlib.util
import os
import re

import pytest
from absl import flags
from ml_collections import config_flags

from jaxaug.train import validate
from jaxaug.train.config import load_config_file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ["README.md", "notebooks/README.md", *sorted(
    os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "docs", "*.md")))]
# Docstrings with commands in them: the configs' and the scripts' usage lines.
USAGE = ["train.py", "demo.py", *sorted(
    os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "configs", "*.py")))]
PACKAGE_FILES = sorted(os.path.relpath(p, REPO) for p in glob.glob(
    os.path.join(REPO, "jaxaug", "**", "*.py"), recursive=True))
# Files the docs cite that a user makes or a script writes, never committed.
NOT_COMMITTED = ("bench/.carry", "bench/.gpu_local", "plans/augment.py", "plans/mine.py")


def _text(doc):
    with open(os.path.join(REPO, doc)) as f:
        return f.read().replace("\\\n", " ")  # join shell continuation lines


def _train_commands():
    commands = []
    for doc in DOCS + USAGE:
        for line in _text(doc).splitlines():
            if "train.py" in line and "--config=" in line:
                args = re.findall(r"--(?:config|workdir)[\w.]*=[^\s`'\"|]+", line)
                # placeholders (<setting>, $p, WORKDIR) are for the reader to fill in
                if not any(re.search(r"[<$]|=WORKDIR", a) for a in args):
                    commands.append(pytest.param(args, id=f"{doc}:{' '.join(args)}"[:120]))
    return commands


@pytest.mark.parametrize("args", _train_commands())
def test_documented_train_command_parses_and_validates(args, monkeypatch):
    monkeypatch.chdir(REPO)  # the docs' paths are relative to the repository root
    flag_values = flags.FlagValues()
    argv = ["train.py", *args]
    config_flags.DEFINE_config_file("config", None, "", flag_values=flag_values, sys_argv=argv)
    flags.DEFINE_string("workdir", None, "", flag_values=flag_values)
    flag_values(argv)  # a misspelt field or a bad value raises here
    validate(flag_values.config, device_count=1)


def test_documented_commands_and_paths_exist():
    modules, missing = set(), []
    for doc in DOCS:
        text = _text(doc)
        modules |= set(re.findall(r"python -m ([\w.]+)", text))
        if doc in ("docs/results.md", "docs/benchmarks.md"):
            continue  # dated records, which cite the files of their commit
        for path in re.findall(r"\b((?:tests|bench|configs|jaxaug|docs|plans|notebooks)/"
                               r"[\w./-]*\w)", text):
            # `tests/tiny_models.jit_init` cites a name in a file
            candidates = (path, path.rsplit(".", 1)[0] + ".py")
            if not path.startswith(NOT_COMMITTED) and not any(
                    os.path.exists(os.path.join(REPO, c)) for c in candidates):
                missing.append(f"{doc}: {path}")
    assert {"jaxaug.experiments", "jaxaug.preview", "jaxaug.policies.export"} <= modules
    missing += [m for m in modules if importlib.util.find_spec(m) is None]
    assert not missing


def test_a_config_argument_the_file_cannot_take_is_named(tmp_path):
    """`path:arg`, as the docs write configs (and plans' arms): an argument the file's
    get_config() does not take, or a missing one it needs, is a ValueError naming the file."""
    with pytest.raises(ValueError, match=r"quickstart\.py.*takes no argument, got 'foo'"):
        load_config_file(os.path.join(REPO, "configs", "quickstart.py"), "foo")
    needs = tmp_path / "needs.py"
    needs.write_text("def get_config(arg):\n    return arg\n")
    with pytest.raises(ValueError, match=r"needs\.py.*needs an argument"):
        load_config_file(str(needs))
    assert load_config_file(str(needs), "x") == "x"
    (tmp_path / "none.py").write_text("x = 1\n")
    with pytest.raises(ValueError, match=r"none\.py.*has no get_config"):
        load_config_file(str(tmp_path / "none.py"))


def _defined_flags(module):
    """The flags ``python -m module`` defines (absl or argparse), read from its source."""
    path = importlib.util.find_spec(module).origin
    if path.endswith("__init__.py"):
        path = path.replace("__init__.py", "__main__.py")
    with open(path) as f:
        sources = [f.read()]
    if "from jaxaug.eval import cli" in sources[0]:  # the eval tools' shared flags
        with open(os.path.join(REPO, "jaxaug", "eval", "cli.py")) as f:
            sources.append(f.read())
    return {"help", "helpshort", "helpfull"}.union(*(
        re.findall(r'DEFINE_\w+\(\s*"(\w+)"', s) + re.findall(r'add_argument\(\s*"--(\w+)"', s)
        for s in sources))


def test_documented_module_commands_use_flags_the_module_defines():
    """absl matches flag names exactly: `--workdir` for `--workdirs` is an error."""
    unknown = []
    for doc in DOCS + USAGE + PACKAGE_FILES:
        for module, rest in re.findall(r"python -m (jaxaug[\w.]*)([^\n`]*)", _text(doc)):
            unknown += [f"{doc}: python -m {module} --{name}"
                        for name in re.findall(r"(?<![\w-])--(\w+)", rest)
                        if name not in _defined_flags(module)]
    assert not unknown
