"""One import name (issue 44): the built wheel holds the package ``graphnas`` alone; its
subpackages import from it and the former top-level names do not exist."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # builds the wheel
def test_the_wheel_installs_graphnas_alone(tmp_path):
    pytest.importorskip("setuptools", minversion="68")  # the build backend pyproject asks for, offline
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path)], check=True, capture_output=True, timeout=600)
    wheel = zipfile.ZipFile(next(tmp_path.glob("graphnas-*.whl")))
    names = wheel.namelist()
    top = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
    assert wheel.read(top).decode().split() == ["graphnas"]
    assert {n.split("/")[0] for n in names} == {"graphnas", top.split("/")[0]}
    assert "graphnas/search_spaces/presets/node.yaml" in names and "graphnas/search_spaces/zoo/gcn.yaml" in names
    assert wheel.read("graphnas/cli.py") == (REPO / "cli.py").read_bytes()  # the link's target, not a link
    site = tmp_path / "site"
    wheel.extractall(site)
    # from a folder outside the checkout, with the unpacked wheel alone on the path for graphnas
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); import graphnas.cli, graphnas.nas.search; "
             "print(graphnas.nas.search.__file__)\n"
             "try:\n    import nas\nexcept ModuleNotFoundError:\n    print('no nas')")
    out = subprocess.run([sys.executable, "-c", probe, str(site)], cwd=tmp_path, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1"}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [str(site / "graphnas" / "nas" / "search.py"), "no nas"]


def test_python_dash_m_graphnas_is_the_cli():
    out = subprocess.run([sys.executable, "-m", "graphnas", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "Architecture search for graph neural networks" in out.stdout
