"""examples/quickstart.ipynb runs top to bottom (nbclient) on small synthetic data."""

import os

import pytest

from conftest import ROOT

nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")


@pytest.mark.slow
def test_quickstart_notebook_runs(tmp_path, cache_dir):
    import nbformat

    nb = nbformat.read(ROOT / "examples" / "quickstart.ipynb", as_version=4)
    env_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = env_path  # the kernel imports likepred from this checkout
    try:
        nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = old
    outputs = {i: c.get("outputs", []) for i, c in enumerate(nb.cells) if c.cell_type == "code"}
    assert not [o for outs in outputs.values() for o in outs if o.get("output_type") == "error"]
    last = outputs[max(outputs)][-1]["data"]["text/plain"]
    assert "predicted" in last and len(last.splitlines()) == 4  # header + 3 predicted posts
    plot = [o for outs in outputs.values() for o in outs if "image/png" in o.get("data", {})]
    assert len(plot) == 1  # the comparison chart
