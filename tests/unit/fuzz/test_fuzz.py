"""Property-based fuzzing of every input accelsim reads (issue 14).

Targets: architecture YAML, workload YAML, model YAML + ``.npz``, MNIST IDX files, CIFAR-10
binary batches, campaign databases and command-line arguments. Each gets mutated documents,
damaged bytes and hostile file kinds (missing, folder, FIFO, dangling or looping symlink,
unreadable). The only outcomes allowed: success, or an ``AccelsimError`` whose message is one
line naming the file, key or parameter (the CLI: exit 2 with one line on stderr). Never a
traceback, a hang or a partly written output. 50 examples per target in the default suite,
1,000 under ``pytest -m slow``.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import sqlite3
import struct
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from accelsim.cli import commands
from accelsim.cli.main import build_parser, main
from accelsim.config.arch import load_arch
from accelsim.config.workload import FaultKind, FaultSite, FaultSpec, load_workload
from accelsim.datasets import load_dataset
from accelsim.faults.campaign import CampaignInputs, run_campaign
from accelsim.faults.model import fault_batch
from accelsim.faults.sampling import build_population, sample_faults
from accelsim.faults.store import open_store
from accelsim.functional.modelio import load_network
from accelsim.functional.network import predict, quantize_images
from accelsim.functional.quantize import quantize_network
from accelsim.protection.protected import unprotected
from accelsim.study import campaign as study_campaign
from accelsim.study import headline
from accelsim.study import nvf as study_nvf
from accelsim.study import protection as study_protection
from accelsim.study import simulation as study_simulation
from tests.conftest import REPO, TINY_ARCH, random_float_weights
from tests.unit.fuzz.hostile import (
    NUMBERS,
    SCALARS,
    SIZES,
    VALUES,
    clean,
    damage,
    dump,
    fuzz,
    mutate,
    no_partial_files,
    place,
)

ARCH = REPO / "arch" / "pe16x16.yaml"
WORKLOAD = REPO / "workloads" / "lenet5.yaml"
ZOO = REPO / "accelsim" / "zoo"


def _doc_or_bytes(data: st.DataObject, source: Path) -> bytes:
    if data.draw(st.booleans(), label="mutate the document"):
        return dump(mutate(data, yaml.safe_load(source.read_text())))
    return damage(data, source.read_bytes())


def _arch_ok(spec) -> None:
    assert spec.pe_array.rows >= 1
    assert spec.pe_array.cols >= 1


def _workload_ok(spec) -> None:
    assert 0 < spec.faults.confidence < 1


@pytest.mark.parametrize("examples", SIZES)
@pytest.mark.parametrize(
    ("source", "load", "valid"),
    [(ARCH, load_arch, _arch_ok), (WORKLOAD, load_workload, _workload_ok)],
    ids=["architecture", "workload"],
)
def test_config_yaml(examples: int, source: Path, load, valid) -> None:
    @fuzz(examples)
    @given(st.data())
    def check(data: st.DataObject) -> None:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / source.name
            place(data, path, _doc_or_bytes(data, source))
            spec = clean(lambda: load(path), path)
            if spec is not None:
                valid(spec)

    check()


SAMPLE = load_dataset("mnist", "sample", n_images=4)
DTYPES = [np.int8, np.uint8, np.int16, np.int32, np.int64, np.float32, np.float64, np.bool_]


def _mutated_npz(data: st.DataObject, blob: bytes) -> bytes:
    with np.load(io.BytesIO(blob)) as npz:
        arrays = {k: npz[k] for k in npz.files}
    for _ in range(data.draw(st.integers(1, 3))):
        key = data.draw(st.sampled_from(sorted(arrays)), label="array")
        op = data.draw(st.sampled_from(["delete", "dtype", "shape", "values", "extra"]))
        arr = arrays[key]
        if op == "delete":
            del arrays[key]
        elif op == "dtype":
            arrays[key] = arr.astype(data.draw(st.sampled_from(DTYPES)))
        elif op == "shape":
            arrays[key] = arr.reshape(-1) if arr.ndim != 1 else arr[: max(arr.size - 1, 0)]
        elif op == "values":
            value = data.draw(NUMBERS, label="value")
            out = arr.astype(np.float64) if isinstance(value, float) else arr.copy()
            try:
                out.flat[data.draw(st.integers(0, max(out.size - 1, 0)))] = value
            except (OverflowError, ValueError, IndexError):  # value does not fit the dtype
                continue
            arrays[key] = out
        else:
            arrays[data.draw(st.text(min_size=1, max_size=8), label="name")] = np.zeros(3)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


@pytest.mark.parametrize("examples", SIZES)
def test_model_yaml_and_npz(examples: int) -> None:
    model = yaml.safe_load((ZOO / "lenet5.yaml").read_text())
    model["network"].pop("weights_sha256")  # else every weight change stops at the hash
    weights = (ZOO / "lenet5.npz").read_bytes()

    @fuzz(examples)
    @given(st.data())
    def check(data: st.DataObject) -> None:
        with tempfile.TemporaryDirectory() as folder:
            path, npz = Path(folder) / "net.yaml", Path(folder) / "lenet5.npz"
            part = data.draw(st.sampled_from(["yaml", "npz", "npz bytes"]))
            doc = mutate(data, model) if part == "yaml" else model
            place(data, path, dump(doc), kinds=part == "yaml")
            blob = {"yaml": weights, "npz": None, "npz bytes": damage(data, weights)}[part]
            place(data, npz, _mutated_npz(data, weights) if blob is None else blob,
                  kinds=part != "yaml")  # fmt: skip
            net = clean(lambda: load_network(path), path, npz)
            if net is not None:  # a network that loads must also run
                classes = predict(net, SAMPLE.images)
                assert classes.shape == (len(SAMPLE.images),)

    check()


def _idx(arr: np.ndarray) -> bytes:
    return bytes([0, 0, 8, arr.ndim]) + struct.pack(f">{arr.ndim}i", *arr.shape) + arr.tobytes()


def _idx_header(data: st.DataObject, blob: bytes) -> bytes:
    """IDX with its header's type, rank or dimensions changed (the body kept)."""
    out = bytearray(blob)
    field = data.draw(st.sampled_from(["type", "rank", "dim"]))
    if field == "type":
        out[2] = data.draw(st.integers(0, 255))
    elif field == "rank":
        out[3] = data.draw(st.integers(0, 255))
    else:
        rank = out[3]
        i = data.draw(st.integers(0, max(rank - 1, 0)))
        value = data.draw(st.integers(-(2**31), 2**31 - 1))
        out[4 + 4 * i : 8 + 4 * i] = struct.pack(">i", value)
    return bytes(out)


@pytest.mark.parametrize("examples", SIZES)
def test_mnist_idx_files(examples: int) -> None:
    images, labels = _idx(SAMPLE.images[:3, 0]), _idx(SAMPLE.labels[:3].astype(np.uint8))

    @fuzz(examples)
    @given(st.data())
    def check(data: st.DataObject) -> None:
        with tempfile.TemporaryDirectory() as folder:
            root = Path(folder) / "mnist"
            blobs = {"t10k-images-idx3-ubyte": images, "t10k-labels-idx1-ubyte": labels}
            victim = data.draw(st.sampled_from(sorted(blobs)))
            header = data.draw(st.booleans())
            blobs[victim] = _idx_header(data, blobs[victim]) if header else damage(
                data, blobs[victim])  # fmt: skip
            paths = []
            for stem, blob in blobs.items():
                zipped = data.draw(st.booleans(), label=f"{stem}.gz")
                path = root / (stem + (".gz" if zipped else ""))
                if zipped and not (stem == victim and data.draw(st.booleans())):
                    blob = gzip.compress(blob)  # else: damaged bytes named .gz
                place(data, path, blob, kinds=stem == victim)
                paths.append(path)
            got = clean(lambda: load_dataset("mnist", "test", data_dir=folder), *paths, "mnist")
            if got is not None:
                assert got.images.shape[1:] == (1, 28, 28)
                assert got.labels.max(initial=0) <= 9

    check()


@pytest.mark.parametrize("examples", SIZES)
def test_cifar10_binary_batches(examples: int) -> None:
    rng = np.random.default_rng(0)
    records = rng.integers(0, 256, (3, 3073), dtype=np.uint8)
    records[:, 0] %= 10

    @fuzz(examples)
    @given(st.data())
    def check(data: st.DataObject) -> None:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "cifar-10-batches-bin" / "test_batch.bin"
            place(data, path, damage(data, records.tobytes()))
            got = clean(lambda: load_dataset("cifar10", "test", data_dir=folder), path, "cifar10")
            if got is not None:
                assert got.images.shape[1:] == (3, 32, 32)
                assert got.labels.max(initial=0) <= 9

    check()


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    """A tiny campaign, complete, and a database holding its first 12 faults."""
    images = np.random.default_rng(1).integers(0, 256, (20, 1, 9, 9), dtype=np.uint8)
    net = quantize_network(
        "tiny", TINY_ARCH, random_float_weights(TINY_ARCH, np.random.default_rng(7)), images
    )
    pnet = unprotected(net)
    x = quantize_images(net, images)
    labels = np.arange(20, dtype=np.int64) % 5
    pop = build_population(net, pnet.plan, FaultKind.SINGLE_BIT, 1)
    spec = FaultSpec(FaultSite.NEURON_OUTPUT, FaultKind.SINGLE_BIT, 1, 30, 0.01, 0.95, 0.5, 3)
    faults = fault_batch(sample_faults(pop, spec, rng=np.random.default_rng(3)))
    inputs = CampaignInputs(pnet, x, labels)
    folder = tmp_path_factory.mktemp("db")
    con = open_store(folder / "full.sqlite", SETTINGS, resume=False)
    full = run_campaign(inputs, faults, con)
    con.close()
    part = folder / "part.sqlite"
    con = open_store(part, SETTINGS, resume=False)
    run_campaign(inputs, faults.take(np.arange(12)), con)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return inputs, faults, full, part.read_bytes()


SETTINGS = {"network": "tiny", "faults": 30, "seed": 3}
COLUMNS = ["id", "layer", "neuron", "copy", "mask", "kind", "n_changed", "n_correct"]
SQL_DAMAGE = st.sampled_from([
    "DROP TABLE meta", "DROP TABLE faults", "DELETE FROM meta",
    "DELETE FROM meta WHERE key = 'settings'", "UPDATE meta SET value = ? WHERE key = 'schema'",
    "UPDATE meta SET value = ? WHERE key = 'settings'", "UPDATE faults SET {col} = ? WHERE id = ?",
    "INSERT OR REPLACE INTO faults VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    "ALTER TABLE faults ADD COLUMN extra INTEGER", "CREATE TABLE other (x)",
])  # fmt: skip


def _sql_damage(data: st.DataObject, path: Path) -> None:
    con = sqlite3.connect(path)
    for _ in range(data.draw(st.integers(1, 3))):
        sql = data.draw(SQL_DAMAGE, label="sql")
        sql = sql.format(col=data.draw(st.sampled_from(COLUMNS)))
        value = data.draw(st.one_of(SCALARS.filter(lambda v: not isinstance(v, int) or
                                                   abs(v) < 2**63), VALUES.map(str)))  # fmt: skip
        params = {0: (), 1: (value,), 2: (value, data.draw(st.integers(-1, 32)))}
        n = sql.count("?")
        args = params.get(n) or tuple(data.draw(st.one_of(st.integers(-5, 40), SCALARS.filter(
            lambda v: not isinstance(v, int) or abs(v) < 2**63))) for _ in range(n))  # fmt: skip
        with contextlib.suppress(sqlite3.Error, OverflowError):  # the damage did not apply
            con.execute(sql, args)
    con.commit()
    con.close()


@pytest.mark.parametrize("examples", SIZES)
def test_campaign_databases(examples: int, campaign) -> None:
    inputs, faults, full, part = campaign

    @fuzz(examples)
    @given(st.data())
    def check(data: st.DataObject) -> None:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "c.sqlite"
            if data.draw(st.booleans(), label="damage through SQL"):
                path.write_bytes(part)
                _sql_damage(data, path)
            else:
                place(data, path, damage(data, part))
            con = clean(lambda: open_store(path, SETTINGS, resume=True, on_note=lambda m: None),
                        path)  # fmt: skip
            if con is None:
                return
            try:
                rows = clean(lambda: run_campaign(inputs, faults, con), path)
            finally:
                con.close()
            if rows is not None:  # resumed: every fault once, as the full campaign's
                assert rows.ids.tolist() == full.ids.tolist()
                for name in ("layer", "neuron", "copy", "mask", "kind"):
                    assert getattr(rows, name).tolist() == getattr(full, name).tolist()
                assert (rows.n_changed <= len(inputs.x)).all()
            no_partial_files(Path(folder))

    check()


class _Reached(Exception):  # noqa: N818
    """The command validated its input and got to its real work (which the fuzz skips)."""


def _reached(*args, **kwargs):
    raise _Reached


def _options() -> dict[str, list[tuple[str, tuple | None, int, object]]]:
    """Per command: (flag, choices, number of values, type) from the parser itself."""
    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.choices and isinstance(a.choices, dict)]
    out = {}
    for name, cmd in sub.choices.items():
        if name == "data":  # `data fetch` downloads; `data info` is covered below
            out["data info"] = [("--data-dir", None, 1, None), ("--json", None, 0, None)]
            continue
        out[name] = [
            (a.option_strings[-1], tuple(a.choices) if a.choices else None,
             0 if a.nargs == 0 else 1, a.type)
            for a in cmd._actions if a.option_strings and a.dest != "help"
        ]  # fmt: skip
    return out


OPTIONS = _options()
ARCHS = [str(ARCH), "pe8x8", "pe16x16", str(REPO / "arch" / "pe32x32.yaml")]
WORKLOADS = [str(WORKLOAD), "lenet5", "mlp7"]
BROKEN = sorted(str(p) for p in (REPO / "tests" / "data" / "broken").glob("*.yaml"))
HOSTILE = ["nowhere.yaml", "", "arch", "/dev/null", "/", str(ZOO / "lenet5.npz"), *BROKEN]
POSITIONALS = {"run": [ARCHS, WORKLOADS], "simulate": [ARCHS, WORKLOADS], "eval": [WORKLOADS],
               "analyze": [WORKLOADS], "protect": [WORKLOADS], "inject": [WORKLOADS]}  # fmt: skip
GOOD_INTS = st.sampled_from(["1", "2", "3", "8", "16", "20", "40"])
GOOD_FLOATS = st.sampled_from(["0", "5", "20", "50", "0.5", "100"])
TEXT_VALUES = st.one_of(
    st.sampled_from(["0", "-1", "1", "3", "20", "nan", "inf", "-inf", "1e9", "2147483648",
                     "99999999999999999999", "0.5", "", " ", "x", "none,split", "split,,tmr",
                     "tcp://127.0.0.1:1", "tcp://:x", "127.0.0.1", "out/x", "leveugle",
                     "exhaustive", "sample", "test", "train", "50,100", "-5,5"]),
    st.text(max_size=10).filter(lambda t: "\x00" not in t),
)  # fmt: skip


@pytest.mark.parametrize("examples", SIZES)
def test_command_line_arguments(examples: int, monkeypatch, tmp_path: Path, capsys) -> None:
    for module, names in ((commands, ("model_predict",)), (study_protection, ("protected_logits",)),
                          (study_nvf, ("compute_nvf",)), (headline, ("run_sweep",)),
                          (study_campaign, ("fault_source",)),
                          (study_simulation, ("simulate", "pe_source"))):  # fmt: skip
        for name in names:
            monkeypatch.setattr(module, name, _reached)
    monkeypatch.chdir(tmp_path)
    outcomes: Counter[str] = Counter()

    @fuzz(examples)
    @given(st.data())
    def check(data: st.DataObject) -> None:
        command = data.draw(st.sampled_from(sorted(OPTIONS)), label="command")
        argv = command.split()
        for good in POSITIONALS.get(command, []):  # mostly valid, so the fuzz gets past them
            hostile = data.draw(st.integers(0, 3)) == 0
            argv.append(data.draw(st.sampled_from(HOSTILE if hostile else good)))
        if data.draw(st.integers(0, 9)) == 0:  # a missing or extra positional
            argv = argv[:-1] if data.draw(st.booleans()) else [*argv, "extra"]
        chosen = data.draw(st.lists(st.sampled_from(OPTIONS[command]), max_size=3), label="options")
        for flag, choices, n_values, kind in chosen:
            argv.append(flag)
            if not n_values:
                continue
            if data.draw(st.booleans()):  # a value of the right kind
                good = {int: GOOD_INTS, float: GOOD_FLOATS}.get(kind, TEXT_VALUES)
                value = data.draw(st.sampled_from(choices) if choices else good, label=flag)
            else:
                value = data.draw(TEXT_VALUES, label=flag)
            if flag in ("--out", "--output-dir", "--trace", "--data-dir"):
                value = str(tmp_path / "o" / value.replace("/", "_")) if value else value
            argv.append(value)
        capsys.readouterr()
        try:
            code = clean(lambda: main(argv), "")  # main never raises an AccelsimError
        except _Reached:
            outcomes[f"{command}: reached its work"] += 1
            return
        except SystemExit as exc:  # argparse: --help / --version (0) or a usage error (2)
            code = exc.code
            outcomes[f"{command}: usage error" if code else f"{command}: help"] += 1
        else:
            outcomes[f"{command}: exit {code}"] += 1
        err = capsys.readouterr().err
        assert code in (0, 2), (argv, code, err)
        if code == 2:
            assert err.count("\n") == 1, (argv, err)
            assert err.startswith("accelsim: error: "), (argv, err)
        no_partial_files(tmp_path)

    check()
    print(sorted(outcomes.items()))  # noqa: T201 (shown with -s)
    # the fuzz must get past argparse: validated commands and clean errors, not usage errors only
    assert sum(v for k, v in outcomes.items() if "usage error" not in k) >= examples // 5
