"""Model files version 2: graphs round-trip; version 1 files load as graphs; bad files refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from accelsim import forward, load_network, quantize_images
from accelsim.errors import ConfigError, ModelFormatError
from accelsim.functional.graph import GraphError, graph_forward
from accelsim.functional.graphio import load_graph, save_graph
from tests.unit.interop.test_graph_tflite_micro import Builder


def _residual(rng: np.random.Generator):
    b = Builder(rng, (3, 6, 6))
    b.weighted(
        "CONV_2D", "c1", "x", (3, 3, 3, 3), (3, 6, 6), padding=(1, 1, 1, 1), activation="relu6"
    )
    b.weighted(
        "DEPTHWISE_CONV_2D",
        "dw",
        "c1",
        (6, 3, 3),
        (6, 6, 6),
        padding=(1, 1, 1, 1),
        depth_multiplier=2,
    )
    b.op("CONCATENATION", "cat", ["dw", "x"], (9, 6, 6), axis=0)
    b.op("AVERAGE_POOL_2D", "pool", ["cat"], (9, 3, 3), size=(2, 2), stride=2)
    b.op("MEAN", "gap", ["pool"], (9,), scale=0.01, zp=4)
    b.weighted("FULLY_CONNECTED", "fc", "gap", (4, 9), (4,))
    return b.graph("fc")


def test_a_graph_round_trips(tmp_path: Path, rng) -> None:
    g = _residual(rng)
    path = save_graph(g, tmp_path / "g.yaml")
    back = load_graph(path)
    assert [n.name for n in back.nodes] == [n.name for n in g.nodes]
    assert back.tensors == g.tensors
    x = rng.integers(-128, 128, size=(10, 3, 6, 6)).astype(np.int8)
    np.testing.assert_array_equal(graph_forward(back, x), graph_forward(g, x))


def test_version_1_files_load_as_graphs(tiny_net, tiny_images, tmp_path: Path) -> None:
    from accelsim import save_network

    path = save_network(tiny_net, tmp_path / "tiny.yaml")
    g = load_graph(path)
    x = quantize_images(tiny_net, tiny_images)
    np.testing.assert_array_equal(graph_forward(g, x), forward(load_network(path), x))


def _write(tmp_path: Path, rng, edit) -> Path:
    path = save_graph(_residual(rng), tmp_path / "g.yaml")
    doc = yaml.safe_load(path.read_text())
    edit(doc["network"])
    doc["network"].pop("weights_sha256", None)
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize(
    ("edit", "error", "message"),
    [
        (lambda n: n["nodes"][0].__setitem__("op", "SOFTMAX"), ConfigError, "network.nodes.0.op: expected one of {CONV_2D"),
        (lambda n: n["nodes"][0].__setitem__("dilation", 2), ConfigError, "network.nodes.0.dilation: expected one of the keys"),
        (lambda n: n["nodes"][3].pop("size"), ConfigError, "network.nodes.3.size: expected a value"),
        (lambda n: n["tensors"][1].__setitem__("zero_point", -129), ConfigError, "network.tensors.1.zero_point: expected an int in [-128, 127], got -129"),
        (lambda n: n["nodes"][0].__setitem__("padding", [1, 1]), ConfigError, "network.nodes.0.padding: expected a list of at least 4"),
        (lambda n: n["nodes"][1].__setitem__("inputs", ["nowhere"]), GraphError, "node 'dw', tensor 'nowhere': tensor is not declared"),
        (lambda n: n["nodes"][0].__setitem__("inputs", ["cat"]), GraphError, "has a cycle through this node"),
        (lambda n: n["tensors"][2].__setitem__("shape", [6, 5, 5]), GraphError, "node 'dw', tensor 'dw': shape (6, 5, 5) does not follow"),
        (lambda n: n.__setitem__("version", 3), ConfigError, "network.version: expected one of the keys"),
    ],
)  # fmt: skip
def test_bad_files_are_refused_in_one_line(tmp_path: Path, rng, edit, error, message) -> None:
    path = _write(tmp_path, rng, edit)
    with pytest.raises(error) as err:
        load_graph(path)
    assert message in str(err.value), str(err.value)
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_version_is_refused(tmp_path: Path, rng) -> None:
    path = save_graph(_residual(rng), tmp_path / "g.yaml")
    doc = yaml.safe_load(path.read_text())
    doc["version"] = 3
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(
        ConfigError, match="version: expected 1 \\(a chain\\) or 2 \\(a graph\\), got 3"
    ):
        load_graph(path)


def test_arrays_are_checked(tmp_path: Path, rng) -> None:
    path = save_graph(_residual(rng), tmp_path / "g.yaml")
    npz = path.with_suffix(".npz")
    with np.load(npz) as f:
        arrays = {k: f[k] for k in f.files}
    doc = yaml.safe_load(path.read_text())
    doc["network"].pop("weights_sha256")
    path.write_text(yaml.safe_dump(doc))
    for change, message in [
        (lambda a: a.pop("c1.bias"), "missing array c1.bias"),
        (lambda a: a.__setitem__("c1.weight", a["c1.weight"].astype(np.int16)), "c1.weight: expected int8, got int16"),
        (lambda a: a.__setitem__("ghost.weight", np.zeros(2, np.int8)), "arrays no node uses: ghost.weight"),
    ]:  # fmt: skip
        broken = dict(arrays)
        change(broken)
        np.savez(npz, **broken)
        with pytest.raises(ModelFormatError, match=message):
            load_graph(path)


def test_load_network_names_load_graph_for_a_graph_file(tmp_path: Path, rng) -> None:
    path = save_graph(_residual(rng), tmp_path / "g.yaml")
    with pytest.raises(
        ModelFormatError, match="a graph network \\(model file version 2\\): load_graph"
    ):
        load_network(path)
