"""tms.train, tms.load and Run: the same results as the CLI, bit for bit, for every family."""

import json

import numpy as np
import pytest

import tms
from conftest import RUN_FILES, run_cli, safetensors_arrays

# Each family at a reduced scale (steps cut so the suite stays quick; the code path is the same).
FAMILIES = [
    ("e1", "toy", ["train.steps=300"]),
    ("e12", "toy", ["train.steps=40", "toy.density=[1.0, 0.01]"]),  # abs model: W1, W2, b
    ("s1-aligned", "deep_linear", ["train.steps=400"]),
    ("a1-regression", "attention", ["train.steps=150"]),
]


def test_every_registered_family_is_covered():
    # A family registered later (one module and one line in tms-experiments) works from Python with
    # no change to the binding; this table is where its bytes get compared with the CLI's.
    assert sorted({family for _, family, _ in FAMILIES}) == sorted(tms.families())


def overrides_dict(sets):
    """The CLI's --set KEY=VALUE as Python values (the TOML value read by json where it can be)."""
    out = {}
    for s in sets:
        key, value = s.split("=", 1)
        out[key] = json.loads(value)
    return out


@pytest.mark.parametrize("preset,family,sets", FAMILIES)
def test_python_and_cli_write_the_same_bytes(tmp_path, cli, preset, family, sets):
    cli_dir = tmp_path / "cli"
    args = ["train", "--preset", preset, "--out", cli_dir]
    for s in sets:
        args += ["--set", s]
    run_cli(cli, *args)
    run = tms.train(preset, out=tmp_path / "py", progress=False, **overrides_dict(sets))
    assert run.family == family
    for name in RUN_FILES:
        assert (tmp_path / "py" / name).read_bytes() == (cli_dir / name).read_bytes(), name
    # The arrays handed to Python hold the very bytes the CLI wrote.
    stored = safetensors_arrays(cli_dir / "model.safetensors")
    assert sorted(run.tensors) == sorted(stored)
    for name, array in run.tensors.items():
        dtype, shape, raw = stored[name]
        assert dtype == "F32" and array.dtype == np.float32
        assert array.shape == shape
        assert array.tobytes() == raw
    # Shapes: instances first, as metrics.json counts them.
    k = len(run.instances)
    assert all(a.shape[0] == k for a in run.tensors.values())


def test_toy_shapes_follow_the_config():
    run = tms.train(
        "e2-relu", progress=False, **{"train.steps": 20, "toy.density": [1.0, 0.1], "toy.n_hidden": 3}
    )
    assert run.tensors["W"].shape == (2, 3, 20)  # [K, m, n]
    assert run.tensors["b"].shape == (2, 20)  # [K, n]
    assert [i["density"] for i in run.instances] == [1.0, 0.1]
    assert run.config["toy"]["n_hidden"] == 3 and run.steps == 20 and run.replicas == 3


def test_a_string_is_a_preset_unless_it_is_a_path(tmp_path, monkeypatch):
    (tmp_path / "e1").write_text('[experiment]\nname = "not-e1"\n[train]\nsteps = 5\n'
                                 '[toy]\nmodel = "linear"\nn_features = 3\nn_hidden = 2\ndensity = 0.5\n')
    monkeypatch.chdir(tmp_path)
    assert tms.train(tmp_path / "e1", progress=False).name == "not-e1"
    assert tms.train("./e1", progress=False).name == "not-e1"
    assert tms.train("e1", progress=False, **{"train.steps": 5}).name == "e1"


def test_a_dict_and_a_file_are_the_same_config(tmp_path):
    config = {
        "experiment": {"name": "mine"},
        "train": {"steps": 50, "replicas": 2},
        "toy": {"model": "relu-output", "n_features": 5, "n_hidden": 2, "density": [1.0, 0.1]},
    }
    path = tmp_path / "mine.toml"
    path.write_text(
        '[experiment]\nname = "mine"\n[train]\nsteps = 50\nreplicas = 2\n'
        '[toy]\nmodel = "relu-output"\nn_features = 5\nn_hidden = 2\ndensity = [1.0, 0.1]\n'
    )
    a = tms.train(config, out=tmp_path / "a", progress=False)
    b = tms.train(path, out=tmp_path / "b", progress=False)
    c = tms.train(str(path), progress=False)
    for name in RUN_FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert a.tensors["W"].tobytes() == c.tensors["W"].tobytes()
    # The resolved config trains the same run again.
    again = tms.train(a.config, progress=False)
    assert again.tensors["W"].tobytes() == a.tensors["W"].tobytes()


def test_set_and_keyword_overrides_are_the_clis_set(tmp_path, cli):
    run_cli(cli, "train", "--preset", "e1", "--set", "train.steps=100", "--set",
            "toy.density=[0.5, 0.05]", "--set", "toy.importance={ decay = 0.8 }",
            "--out", tmp_path / "cli")
    run = tms.train("e1", progress=False, set={"toy.density": np.array([0.5, 0.05])},
                    **{"train.steps": np.int64(100), "toy.importance": {"decay": 0.8}})
    run.save(tmp_path / "py")
    for name in RUN_FILES:
        assert (tmp_path / "py" / name).read_bytes() == (tmp_path / "cli" / name).read_bytes()
    # Keywords apply after `set`, as a later --set wins.
    later = tms.train("e1", progress=False, set={"train.steps": 7}, **{"train.steps": 9})
    assert later.steps == 9


def test_results_do_not_depend_on_threads():
    one = tms.train("e2-relu", threads=1, progress=False, **{"train.steps": 200})
    two = tms.train("e2-relu", threads=2, progress=False, **{"train.steps": 200})
    for name in one.tensors:
        assert one.tensors[name].tobytes() == two.tensors[name].tobytes()
    assert one.instances == two.instances


def test_load_reads_what_train_wrote_and_save_rewrites_it(tmp_path):
    run = tms.train("e1", out=tmp_path / "run", progress=False, **{"train.steps": 120})
    loaded = tms.load(tmp_path / "run")
    assert loaded.dir == tmp_path / "run" and run.dir == tmp_path / "run"
    assert loaded.config == run.config and loaded.instances == run.instances
    for name in run.tensors:
        assert np.array_equal(loaded.tensors[name], run.tensors[name])
    assert loaded.history.columns == run.history.columns
    for c in run.history.columns:
        assert np.array_equal(loaded.history[c], run.history[c])
    loaded.save(tmp_path / "copy")
    for name in RUN_FILES:
        assert (tmp_path / "copy" / name).read_bytes() == (tmp_path / "run" / name).read_bytes()
    with pytest.raises(tms.OutputError, match="already exists"):
        loaded.save(tmp_path / "copy")
    loaded.save(tmp_path / "copy", force=True)


def test_tensors_are_handed_over_without_a_copy():
    run = tms.train("e1", progress=False, **{"train.steps": 10})
    w = run.tensors["W"]
    # numpy does not own the buffer: it is the Vec the Rust side produced, kept alive by `base`.
    assert not w.flags["OWNDATA"] and w.base is not None and type(w.base).__name__ == "PySliceContainer"
    assert w.flags["C_CONTIGUOUS"] and w.dtype == np.float32
    # The same buffer every time, and read-only: it is the run's result, which save() writes.
    assert run.tensors["W"].__array_interface__["data"][0] == w.__array_interface__["data"][0]
    with pytest.raises(ValueError):
        w[0, 0, 0] = 1.0


def test_history_is_loss_csv(tmp_path):
    pd = pytest.importorskip("pandas")
    run = tms.train("e1", out=tmp_path / "run", progress=False,
                    **{"train.steps": 250, "toy.record_dimensionality": True})
    expected = pd.read_csv(tmp_path / "run" / "loss.csv")
    frame = run.history.to_pandas()
    assert list(frame.columns) == list(expected.columns) == run.history.columns
    assert len(run.history) == len(expected)
    assert run.history["step"].dtype == np.int64 and run.history["loss"].dtype == np.float64
    for c in expected.columns:
        assert np.array_equal(frame[c].to_numpy(), expected[c].to_numpy()), c
    with pytest.raises(KeyError, match="columns"):
        run.history["nope"]


def test_callback_sees_every_instance_and_replica_and_can_stop_training(tmp_path):
    seen = []
    run = tms.train("e2-relu", progress=False, callback=lambda s, l: seen.append((s, l.copy())),
                    **{"train.steps": 600, "train.log_every": 50})
    steps = [s for s, _ in seen]
    assert steps == sorted(set(steps)) and steps[-1] == 599  # the last step's row is always kept
    assert all(l.shape == (7, 3) and l.dtype == np.float64 for _, l in seen)
    # The last callback's losses are the history's final rows.
    last = run.history.to_dict()
    final = last["loss"][last["step"] == 599].reshape(7, 3)
    assert np.array_equal(seen[-1][1], final)
    # Training in lockstep chunks for the callback changes nothing in the results.
    plain = tms.train("e2-relu", progress=False, **{"train.steps": 600, "train.log_every": 50})
    for name in plain.tensors:
        assert plain.tensors[name].tobytes() == run.tensors[name].tobytes()
    assert plain.instances == run.instances

    class Enough(Exception):
        pass

    def stop(step, losses):
        raise Enough(step)

    with pytest.raises(Enough):
        tms.train("e2-relu", progress=False, callback=stop, out=tmp_path / "stopped")
    assert not (tmp_path / "stopped").exists() and list(tmp_path.iterdir()) == []


def test_progress_bar_only_when_asked(capfd):
    pytest.importorskip("tqdm")
    tms.train("e1", progress=False, **{"train.steps": 50})
    assert capfd.readouterr().err == ""
    tms.train("e1", progress=True, **{"train.steps": 50})
    err = capfd.readouterr().err
    assert "e1" in err and "step" in err and "100%" in err


def test_presets_are_the_clis(cli):
    listed = run_cli(cli, "presets").stdout.splitlines()
    names = [line.split()[0] for line in listed]
    presets = tms.presets()
    assert list(presets) == names
    assert presets["e1"] and all(isinstance(d, str) for d in presets.values())
