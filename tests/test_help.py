"""`python -m likepred --help`: the same text as Hydra's own help, without composing every group."""

import os
import subprocess
import sys

from conftest import ROOT


def helped(*args, **env):
    proc = subprocess.run([sys.executable, "-m", "likepred", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_help_lists_every_group_as_hydra_does():
    ours = helped("--help")
    hydras = helped("--help", LIKEPRED_HYDRA_HELP="1")  # Hydra's own help, composed
    assert ours == hydras
    conf = ROOT / "likepred" / "conf"
    for group in ("data", "model", "features", "experiment", "hparams_search", "images", "labels"):
        options = sorted(p.stem for p in (conf / group).glob("*.yaml"))
        assert f"{group}: {', '.join(options)}\n" in ours
    assert "hydra/" not in ours and "Examples:" in ours


def test_help_with_overrides_and_other_templates():
    assert helped("model=gbm", "--help") == helped("--help")  # overrides do not change the listing
    hydra_default = helped("--help", "hydra/help=default")  # a template not in our conf: Hydra's help
    assert "== Configuration groups ==" in hydra_default and "model: " in hydra_default
