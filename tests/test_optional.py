"""Optional dependencies: a missing package is one line naming the extra that installs it."""

import subprocess
import sys

import pytest

from samlens._optional import MissingDependencyError, require
from samlens.errors import SamlensError


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_missing_module_names_the_extra(monkeypatch):
    from samlens.data import sources

    monkeypatch.setitem(sys.modules, "skimage", None)  # what an uninstalled package looks like
    sources.texture.cache_clear()
    with pytest.raises(MissingDependencyError) as info:
        sources.texture("grass")
    message = str(info.value)
    assert message == (
        "scikit-image is not installed; it comes with samlens's 'data' extra: pip install 'samlens[data]'"
    )
    assert isinstance(info.value, SamlensError) and isinstance(info.value, ImportError)
    sources.texture.cache_clear()


def test_require_passes_other_errors_through(monkeypatch):
    with pytest.raises(ModuleNotFoundError), require("data"):
        import samlens.no_such_module  # noqa: F401  (a missing samlens module is a bug, not an extra)
    with pytest.raises(ZeroDivisionError), require("data"):
        1 / 0  # noqa: B018
    with pytest.raises(ValueError, match="unknown extra"), require("nope"):
        pass


@pytest.mark.parametrize(
    ("module", "missing", "extra"),
    [
        ("samlens.probe", "sklearn", "probe"),
        ("samlens.report", "pandas", "report"),
        ("samlens.report.figures", "matplotlib", "report"),
    ],
)
def test_missing_package_at_module_import(module, missing, extra):
    done = run_python(f"import sys; sys.modules[{missing!r}] = None; import {module}")
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("samlens._optional.MissingDependencyError: ")
    assert f"pip install 'samlens[{extra}]'" in last


def test_cli_reports_a_missing_extra_in_one_line(tmp_path):
    code = (
        "import sys; sys.modules['sklearn'] = None\n"
        "from samlens.cli.main import main\n"
        f"sys.exit(main(['run', '--config', {str(tmp_path / 'x.yaml')!r}]))"
    )
    done = run_python(code)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "samlens run: error: scikit-learn is not installed; it comes with samlens's 'probe' extra: "
        "pip install 'samlens[probe]'"
    ]


def test_light_core_imports_without_optional_packages():
    """`pip install samlens` (torch, numpy, pyyaml, tqdm) is enough for the optimizers and models."""
    blocked = ["torchvision", "PIL", "skimage", "mlxtend", "sklearn", "pandas", "matplotlib", "jsonargparse"]
    done = run_python(
        f"import sys\nfor name in {blocked!r}: sys.modules[name] = None\n"
        "import torch\nfrom samlens.optim import SAM, build_optimizer\nfrom samlens.models import get_model\n"
        "model = get_model('mlp', num_classes=2, input_shape=(1, 4, 4))\n"
        "opt = build_optimizer('sam', model, rho=0.05)\nprint(type(opt).__name__)"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "SAM"
