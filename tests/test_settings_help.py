"""Issue 44: the CLI's --help, the settings' pydantic fields and the Python API's docstrings
say the same thing about each setting, from one source (graphnas/settings_help.py)."""
from __future__ import annotations

import typer.main

import graphnas
from graphnas.cli import app
from graphnas.evaluators.training import TrainConfig
from graphnas.nas import SearchConfig
from graphnas.nas.darts import DartsConfig
from graphnas.settings_help import SETTINGS

MODELS = {"": SearchConfig, "train": TrainConfig, "darts": DartsConfig}
# the CLI's option names where they differ from the field's
CLI_NAMES = {"ray_address": "address", "references": "reference", "darts.epochs": "darts_epochs"}


def _field(key: str):
    prefix, _, name = key.rpartition(".")
    return MODELS[prefix].model_fields[name]


def test_every_setting_is_a_field_described_by_its_text():
    for key, text in SETTINGS.items():
        assert _field(key).description == text, key


def test_the_search_command_helps_with_the_same_text():
    command = typer.main.get_command(app).commands["search"]
    helps = {param.name: param.help for param in command.params}
    for key, text in SETTINGS.items():
        name = CLI_NAMES.get(key, key.rpartition(".")[2])
        assert helps[name] == text, key


def test_the_api_docstrings_list_every_setting_with_the_same_text():
    for key, text in SETTINGS.items():
        prefix, _, name = key.rpartition(".")
        shown = key if prefix == "darts" else name
        assert f"    {shown}: {text}" in graphnas.search.__doc__, key
        if prefix == "train":
            assert f"    {name}: {text}" in graphnas.train.__doc__, key
    assert "darts.top_k:" not in graphnas.train.__doc__
