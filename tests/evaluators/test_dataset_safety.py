"""A dataset name or file never runs code it brings along (issue 43): a dotted path must be
a PyG Dataset class, one read from a file needs --allow-dataset-class, and a .pt file
loads tensors and Data objects only."""
from __future__ import annotations

import os

import pytest
import torch
from torch_geometric.data import Data
from typer.testing import CliRunner

from graphnas.cli import app
from graphnas.evaluators import DatasetError, load_dataset
from graphnas.evaluators.external import check_dataset_origin

runner = CliRunner()


class _Payload:
    """Unpickling this runs ``touch``: what a malicious .pt file would hold."""

    def __init__(self, target) -> None:
        self.target = target

    def __reduce__(self):
        return os.system, (f"touch {self.target}",)


def _one_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.output
    return lines[0]


def test_a_config_naming_os_system_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    config = tmp_path / "run.yaml"
    config.write_text(f"dataset: os.system\ndataset_args: {{command: 'touch {marker}'}}\n")
    args = ["search", "--config", str(config), "--run-dir", str(tmp_path / "r"), "--quiet"]
    line = _one_line(runner.invoke(app, args))
    assert f"dataset 'os.system' from --config {config} is a dataset class by dotted path" in line
    assert "--allow-dataset-class" in line
    # trusted, it is still no dataset class: refused before it is called
    line = _one_line(runner.invoke(app, [*args, "--allow-dataset-class"]))
    assert "dataset 'os.system': not a torch_geometric.data.Dataset subclass" in line
    assert not marker.exists() and not (tmp_path / "r").exists()


def test_a_resumed_run_whose_config_names_a_class_needs_the_opt_in(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("dataset: torch_geometric.datasets.FakeDataset\n")
    line = _one_line(runner.invoke(app, ["search", "--resume", "--run-dir", str(run), "--quiet"]))
    assert f"from {run / 'config.yaml'} is a dataset class by dotted path" in line


def test_callables_that_are_not_dataset_classes_are_never_called(tmp_path):
    marker = tmp_path / "pwned"
    # a function (not a class) and a class that is no Dataset, given on the command line
    for name, arg in (("subprocess.getoutput", f"cmd=touch {marker}"), ("subprocess.Popen", f"args=touch {marker}")):
        line = _one_line(runner.invoke(app, ["search", "--dataset", name, "--dataset-arg", arg,
                                             "--run-dir", str(tmp_path / "r"), "--quiet"]))
        assert f"dataset {name!r}: not a torch_geometric.data.Dataset subclass" in line
    line = _one_line(runner.invoke(app, ["search", "--dataset", "os.getpid", "--run-dir", str(tmp_path / "r"),
                                         "--quiet"]))
    assert line.endswith("dataset 'os.getpid': not a torch_geometric.data.Dataset subclass")
    assert not marker.exists()


def test_the_origin_check_passes_registered_names_and_the_command_line():
    check_dataset_origin("cora", "--config x.yaml", allowed=False)  # a registered name is no code
    check_dataset_origin("torch_geometric.datasets.FakeDataset", None, allowed=False)  # typed by the user
    check_dataset_origin("torch_geometric.datasets.FakeDataset", "--config x.yaml", allowed=True)
    with pytest.raises(DatasetError, match="pass --allow-dataset-class"):
        check_dataset_origin("torch_geometric.datasets.FakeDataset", "--config x.yaml", allowed=False)


def test_a_pickle_payload_in_a_pt_file_is_refused_unrun(tmp_path, cache_dir):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save([Data(x=torch.ones(2, 1), edge_index=torch.zeros(2, 0, dtype=torch.long), y=torch.tensor([0])),
                _Payload(marker)], path)
    with pytest.raises(DatasetError, match=r"evil.pt: holds posix.system, not only tensors and Data objects"):
        load_dataset(str(path), cache_dir=cache_dir)
    assert not marker.exists()


def test_plain_saved_data_still_loads_weights_only(tmp_path, cache_dir):
    g = Data(x=torch.randn(6, 3), edge_index=torch.tensor([[0, 1, 2, 3, 4], [1, 2, 3, 4, 5]]),
             y=torch.tensor([0, 1, 0, 1, 0, 1]), edge_attr=torch.randn(5, 2), train_mask=torch.ones(6, dtype=torch.bool))
    g.val_mask = g.test_mask = g.train_mask
    torch.save(g, tmp_path / "one.pt")
    torch.save([g.clone() for _ in range(10)], tmp_path / "many.pt")
    assert load_dataset(str(tmp_path / "one.pt"), cache_dir=cache_dir).data.num_nodes == 6
    assert len(load_dataset(str(tmp_path / "many.pt"), cache_dir=cache_dir).graphs) == 10
