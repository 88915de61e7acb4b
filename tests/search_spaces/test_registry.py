"""The Registry's names provided by a module imported on first need (Registry.provided_by)."""
from __future__ import annotations

import subprocess
import sys
import types

import pytest

from graphnas.search_spaces.registry import Registry, UnknownNameError


def test_a_provided_name_is_listed_before_and_registered_by_its_module_on_first_lookup(monkeypatch):
    registry: Registry = Registry("widget")
    registry.register("plain", "registered here")(object())
    plugin = types.ModuleType("widget_plugin_for_test")
    imported = []

    def load(name):  # what importlib would do: run the module, which registers its name
        assert name == "widget_plugin_for_test"
        imported.append(name)
        registry.register("plugged", "registered by its module")("the factory")
        return plugin

    monkeypatch.setattr("graphnas.search_spaces.registry.importlib.import_module", load)
    registry.provided_by("plugged", "widget_plugin_for_test")
    assert registry.names() == ["plain", "plugged"] and "plugged" in registry and not imported
    assert registry.get("plugged") == "the factory" and imported == ["widget_plugin_for_test"]
    registry.get("plugged")
    assert imported == ["widget_plugin_for_test"]  # once
    with pytest.raises(UnknownNameError, match="did you mean 'plugged'"):
        registry.get("pluged")


@pytest.mark.slow  # a fresh interpreter that imports torch: about 3 s
def test_the_nas_bench_graph_form_is_found_by_a_process_that_imported_only_search_spaces():
    """search_spaces does not import evaluators; a space naming canonical: nas_bench_graph still
    validates, and its form is the benchmark module's."""
    probe = ("import sys\nfrom graphnas.search_spaces.canonical import CANONICAL\n"
             "assert 'graphnas.evaluators' not in sys.modules\n"
             "assert 'nas_bench_graph' in CANONICAL.names()\n"
             "print(CANONICAL.get('nas_bench_graph').key.__module__)\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "graphnas.evaluators.nas_bench_graph"
