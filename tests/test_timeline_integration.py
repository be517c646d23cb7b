"""--plot and the saved history: refused cleanly without matplotlib.

On real stacks, the PNG and the events in the JSON are checked with the kill runs they come from
(one run each, not a second one): tests/test_ha_integration.py and tests/cluster/test_cluster_integration.py."""

from __future__ import annotations

import pytest

from conftest import run_script

pytestmark = pytest.mark.integration


def test_plot_without_matplotlib_is_a_one_line_setup_error(tmp_path):
    fake = tmp_path / "fake" / "matplotlib"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named matplotlib')\n")
    proc = run_script("ha_test.py", "--plot", str(tmp_path / "x.png"), timeout=60,
                      env={"PYTHONPATH": str(tmp_path / "fake")})
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr
    assert "pip install matplotlib" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
