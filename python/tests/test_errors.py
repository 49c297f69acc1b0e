"""Bad input: tms.ConfigError (a ValueError) with the CLI's exact message, nothing written."""

import pytest

import tms
from conftest import run_cli


def cli_error(cli, *args):
    r = run_cli(cli, *args, check=False)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: ")
    return r.stderr[len("error: "):].rstrip("\n")


@pytest.mark.parametrize(
    "key,cli_value,value",
    [
        ("toy.desnity", "0.1", 0.1),  # unknown key: did-you-mean hint
        ("toy.density", "1.5", 1.5),  # out of range
        ("train.optimizer", '"adamx"', "adamx"),
        ("train.steps", '"many"', "many"),  # wrong type
        ("toy.n_hidden", "21", 21),  # more than n_features = 20
    ],
)
def test_preset_errors_match_the_cli(tmp_path, cli, key, cli_value, value):
    expected = cli_error(cli, "train", "--preset", "e2-linear", "--set", f"{key}={cli_value}",
                         "--out", tmp_path / "cli")
    with pytest.raises(tms.ConfigError) as e:
        tms.train("e2-linear", out=tmp_path / "py", progress=False, **{key: value})
    assert str(e.value) == expected
    assert isinstance(e.value, ValueError) and isinstance(e.value, tms.Error)
    assert list(tmp_path.iterdir()) == []


def test_file_errors_name_the_file_key_and_hint(tmp_path, cli):
    path = tmp_path / "bad.toml"
    path.write_text('[experiment]\nname = "x"\n[toy]\nmodel = "relu-output"\nn_features = 5\n'
                    'n_hidden = 2\ndensty = 0.1\n')
    expected = cli_error(cli, "train", path, "--out", tmp_path / "out")
    with pytest.raises(tms.ConfigError) as e:
        tms.train(path, out=tmp_path / "out")
    assert str(e.value) == expected
    assert str(path) in expected and "`toy.densty`" in expected and "did you mean `density`?" in expected
    assert not (tmp_path / "out").exists()


def test_unknown_preset_and_missing_file(cli, tmp_path):
    expected = cli_error(cli, "train", "--preset", "e2-rleu", "--out", tmp_path / "o")
    with pytest.raises(tms.ConfigError) as e:
        tms.train("e2-rleu")
    assert str(e.value) == expected and "did you mean `e2-relu`?" in expected
    expected = cli_error(cli, "train", tmp_path / "none.toml", "--out", tmp_path / "o")
    with pytest.raises(tms.ConfigError) as e:
        tms.train(tmp_path / "none.toml")
    assert str(e.value) == expected


def test_dict_errors_say_where_they_come_from():
    with pytest.raises(tms.ConfigError) as e:
        tms.train({"experiment": {"name": "x"},
                   "toy": {"model": "relu-output", "n_features": 5, "n_hidden": 2, "desnity": 0.1}})
    assert str(e.value) == (
        "invalid config <dict>\nCaused by: `toy.desnity` expected a known key of [toy], "
        "but found unknown key `desnity`\n  hint: did you mean `density`?"
    )
    with pytest.raises(tms.ConfigError, match=r"invalid override `toy.density=None`"):
        tms.train("e1", **{"toy.density": None})
    with pytest.raises(TypeError, match="unexpected keyword argument 'progres'"):
        tms.train("e1", progres=False)


def test_existing_output_and_bad_threads(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("keep")
    with pytest.raises(tms.OutputError, match="already exists"):
        tms.train("e1", out=tmp_path / "taken", **{"train.steps": 5})
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["mine.txt"]
    with pytest.raises(tms.ConfigError, match="`threads` expected an integer ≥ 1, but found 0"):
        tms.train("e1", threads=0, **{"train.steps": 5})


def test_load_names_the_missing_or_corrupt_file(tmp_path):
    tms.train("e1", out=tmp_path / "run", progress=False, **{"train.steps": 5})
    (tmp_path / "run" / "loss.csv").write_text("step,instance,replica,loss\n0,0,0,oops\n")
    with pytest.raises(tms.OutputError, match=r"loss.csv is corrupt.*line 2"):
        tms.load(tmp_path / "run")
    (tmp_path / "run" / "metrics.json").unlink()
    with pytest.raises(tms.OutputError, match="metrics.json"):
        tms.load(tmp_path / "run")
