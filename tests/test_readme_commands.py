"""Every command of the README's command list on an install without extras (issue 46): each
exits 0, or 2 with one line naming the extra it needs; none ends in a traceback."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# One interpreter runs every command through the console script's entry point, cli.main, with
# the extras' modules made unimportable, as on `pip install -e .` without them.
DRIVER = r'''
import json, sys
for name in ("nas_bench_graph", "ray", "onnx", "onnxscript", "onnxruntime", "rdkit", "psycopg"):
    sys.modules[name] = None  # import raises ModuleNotFoundError, as without the extra
import contextlib, io
from graphnas import cli

for args in json.loads(sys.argv[1]):
    sys.argv = ["graphnas", *args]
    err = io.StringIO()
    code = 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            cli.main()
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        except BaseException as other:
            code, _ = 99, err.write(f"Traceback: {type(other).__name__}: {other}")
    print(json.dumps({"args": args, "code": code, "stderr": err.getvalue()}))
'''


@pytest.mark.slow
def test_every_readme_command_works_without_extras_or_names_the_extra(tmp_path):
    run, arch, space = tmp_path / "run", tmp_path / "arch.json", tmp_path / "space.yaml"
    space.write_text("name: s\nversion: 1\nglobal:\n  hidden_dim: [8, 16]\n  num_layers: 1\nlayers:\n  mpnn: gcn\n")
    commands = [
        ["search", "--space", "tiny", "--trials", "2", "--epochs", "2", "--threads", "1", "--quiet", "--run-dir", str(run)],
        ["export", str(run), "--best", "-o", str(arch)],
        ["train", str(arch), "--seeds", "1", "--epochs", "2"],
        ["train", str(arch), "--seeds", "1", "--epochs", "2", "-o", str(tmp_path / "out"), "--format", "onnx"],
        ["zoo"], ["zoo", "--json"], ["ops"], ["ops", "--json"], ["spaces"], ["spaces", "--json"],
        ["spaces", "validate", str(space)],
        ["report", str(run)], ["compare", str(run), str(run), "-o", str(tmp_path / "compare.html")],
        ["knowledge", "list"], ["knowledge", "show", "synthetic"], ["knowledge", "remove", "nothing-of-that-name"],
        ["search", "--evaluator", "nas-bench-graph", "--space", "nas_bench_graph", "--dataset", "cora", "--trials", "2",
         "--quiet", "--run-dir", str(tmp_path / "bench")],
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GRAPHNAS_KNOWLEDGE": f"sqlite:///{tmp_path / 'k.db'}",
           "COLUMNS": "200"}
    out = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(commands)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)
    results = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert len(results) == len(commands), out.stdout + out.stderr
    for r in results:
        lines = [line for line in r["stderr"].splitlines() if line.strip()]
        assert "Traceback" not in r["stderr"], r
        assert r["code"] == 0 or (r["code"] == 2 and len(lines) == 1), r
    by_command = {" ".join(r["args"][:2]): r for r in results}
    assert "graphnas[bench]" in next(r for r in results if "nas-bench-graph" in r["args"])["stderr"]
    assert "graphnas[export]" in next(r for r in results if "onnx" in r["args"])["stderr"]
    assert by_command["spaces"]["code"] == 0
