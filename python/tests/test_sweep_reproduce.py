"""tms.sweep and tms.reproduce: the CLI's results, from Python."""

import json

import pytest

import tms
from conftest import RUN_FILES, run_cli

SWEEP = """
[sweep]
name = "small"
checkpoint_every = 70

[train]
steps = 200
[toy]
model = "relu-output"
n_features = 5
n_hidden = 2
density = 1.0

[grid]
"toy.density" = [1.0, 0.1]
"train.seed" = [0, 1]
"""

SWEEP_DICT = {
    "sweep": {"name": "small", "checkpoint_every": 70},
    "train": {"steps": 200},
    "toy": {"model": "relu-output", "n_features": 5, "n_hidden": 2, "density": 1.0},
    "grid": {"toy.density": [1.0, 0.1], "train.seed": [0, 1]},
}


def test_sweep_matches_the_cli_byte_for_byte(tmp_path, cli):
    path = tmp_path / "small.toml"
    path.write_text(SWEEP)
    run_cli(cli, "sweep", path, "--out", tmp_path / "cli")
    result = tms.sweep(path, tmp_path / "py", progress=False)
    from_dict = tms.sweep(SWEEP_DICT, tmp_path / "dict", progress=False)
    assert result.complete and result.trained == 4 and len(result.cells) == 4
    for name in ["results.csv", "results.json", "sweep.json"]:
        cli_bytes = (tmp_path / "cli" / name).read_bytes()
        assert (tmp_path / "py" / name).read_bytes() == cli_bytes, name
        assert (tmp_path / "dict" / name).read_bytes() == cli_bytes, name
    for cell in result.cells:
        for name in RUN_FILES:
            a = (cell["dir"] / name).read_bytes()
            assert a == (tmp_path / "cli" / "cells" / cell["id"] / name).read_bytes()
    rows = json.loads((tmp_path / "cli" / "results.json").read_text())["rows"]
    assert result.results == rows and len(rows) == 4
    run = result.run(result.cells[0]["id"])
    assert run.tensors["W"].shape == (1, 2, 5)
    # Done cells are skipped when the same sweep runs again.
    again = tms.sweep(path, tmp_path / "py", progress=False)
    assert again.trained == 0 and again.complete


def test_a_shard_runs_its_part(tmp_path):
    first = tms.sweep(SWEEP_DICT, tmp_path / "a", shard="0/2", progress=False)
    second = tms.sweep(SWEEP_DICT, tmp_path / "b", shard=(1, 2), progress=False)
    assert first.trained == second.trained == 2
    assert not first.complete and first.results is None
    with pytest.raises(tms.ConfigError, match="--shard expected K/N"):
        tms.sweep(SWEEP_DICT, tmp_path / "c", shard="2/2")
    assert not (tmp_path / "c").exists()


def test_sweep_errors_match_the_cli(tmp_path, cli):
    path = tmp_path / "bad.toml"
    path.write_text(SWEEP.replace('"toy.density"', '"toy.desnity"'))
    r = run_cli(cli, "sweep", path, "--out", tmp_path / "cli", check=False)
    assert r.returncode == 2
    with pytest.raises(tms.ConfigError) as e:
        tms.sweep(path, tmp_path / "py")
    assert "error: " + str(e.value) == r.stderr.rstrip("\n")
    assert not (tmp_path / "py").exists()


def test_reproduce_returns_the_claims(tmp_path, cli):
    claims = tms.reproduce(only="E1", quick=True, out=tmp_path, progress=False)
    assert claims == json.loads((tmp_path / "report" / "claims.json").read_text())
    assert [e["id"] for e in claims["experiments"]] == ["E1"]
    e1 = claims["experiments"][0]["claims"]
    assert e1 and all(isinstance(c["passed"], bool) and c["statement"] for c in e1)
    assert claims["total"] == len(e1) and claims["passed"] == sum(c["passed"] for c in e1)
    assert (tmp_path / "report" / "index.html").is_file()
    r = run_cli(cli, "reproduce", "--only", "E99", "--out", tmp_path / "cli", check=False)
    with pytest.raises(tms.ConfigError) as e:
        tms.reproduce(only=["E99"], out=tmp_path / "py")
    assert "error: " + str(e.value) == r.stderr.rstrip("\n") and r.returncode == 2
    assert not (tmp_path / "py").exists() and not (tmp_path / "cli").exists()
