"""Every analysis command answers --help quickly, without importing scipy or matplotlib."""
import subprocess
import sys

import pytest

COMMANDS = ["flops", "fit", "regimes", "curves", "table", "figure"]


@pytest.mark.parametrize("name", COMMANDS)
def test_help(name):
    code = ("import sys\nfrom plasticity.cli import main\n"
            f"try:\n    main(['{name}', '--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
            "heavy = [m for m in ('scipy', 'matplotlib') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "usage:" in out.stdout
