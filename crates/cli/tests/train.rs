//! End-to-end tests of `tms train`, `tms inspect` and `tms presets` through the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tms(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tms"))
        .args(args)
        .output()
        .expect("run tms")
}

fn ok(args: &[&str]) -> Output {
    let out = tms(args);
    assert!(
        out.status.success(),
        "tms {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn read(dir: &Path, file: &str) -> Vec<u8> {
    std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{}: {e}", dir.join(file).display()))
}

const FILES: [&str; 4] = [
    "config.toml",
    "model.safetensors",
    "metrics.json",
    "loss.csv",
];

/// A small but real config: 3 densities × 2 replicas, 400 steps.
fn small_config(dir: &Path) -> PathBuf {
    let path = dir.join("small.toml");
    std::fs::write(
        &path,
        r#"[experiment]
name = "small"
[train]
steps = 400
learning_rate = 1e-2
replicas = 2
log_every = 100
[toy]
model = "relu-output"
n_features = 8
n_hidden = 3
importance = { decay = 0.9 }
density = [1.0, 0.1, 0.01]
batch_size = 256
evaluation_batch_size = 2048
"#,
    )
    .unwrap();
    path
}

#[test]
fn same_config_twice_and_any_thread_count_give_identical_files() {
    let tmp = tempfile::tempdir().unwrap();
    let config = small_config(tmp.path());
    let config = config.to_str().unwrap();
    let runs: Vec<PathBuf> = ["a", "b", "c"].iter().map(|n| tmp.path().join(n)).collect();
    ok(&["train", config, "--out", runs[0].to_str().unwrap()]);
    ok(&[
        "--threads",
        "1",
        "train",
        config,
        "--out",
        runs[1].to_str().unwrap(),
    ]);
    ok(&[
        "--threads",
        "2",
        "train",
        config,
        "--out",
        runs[2].to_str().unwrap(),
    ]);
    for file in FILES {
        assert!(
            read(&runs[0], file) == read(&runs[1], file),
            "{file}: run twice differs"
        );
        assert!(
            read(&runs[1], file) == read(&runs[2], file),
            "{file}: 1 vs 2 threads differ"
        );
    }
    // The written config.toml is fully resolved: re-running it reproduces the run bit for bit.
    let again = tmp.path().join("again");
    ok(&[
        "train",
        runs[0].join("config.toml").to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]);
    assert!(
        read(&runs[0], "model.safetensors") == read(&again, "model.safetensors"),
        "re-run of config.toml differs"
    );
    // A different seed gives different weights (the equality above is not vacuous).
    let seeded = tmp.path().join("seeded");
    ok(&[
        "train",
        config,
        "--set",
        "train.seed=1",
        "--out",
        seeded.to_str().unwrap(),
    ]);
    assert!(
        read(&runs[0], "model.safetensors") != read(&seeded, "model.safetensors"),
        "seed ignored"
    );
}

#[test]
fn outputs_follow_the_contract() {
    let tmp = tempfile::tempdir().unwrap();
    let config = small_config(tmp.path());
    let out = tmp.path().join("run");
    ok(&[
        "train",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let metrics: serde_json::Value = serde_json::from_slice(&read(&out, "metrics.json")).unwrap();
    let instances = metrics["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 3);
    for (k, inst) in instances.iter().enumerate() {
        assert_eq!(inst["index"], k);
        assert_eq!(
            inst["replica_losses"].as_array().unwrap().len(),
            2,
            "all replicas recorded"
        );
        let losses: Vec<f64> = inst["replica_losses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let kept = inst["replica"].as_u64().unwrap() as usize;
        assert_eq!(inst["evaluation_loss"].as_f64().unwrap(), losses[kept]);
        assert!(
            losses.iter().all(|&l| l >= losses[kept]),
            "best of N keeps the lowest loss"
        );
        for key in [
            "density",
            "importance",
            "norms",
            "superposition",
            "dimensionality",
            "dimensions_per_feature",
            "bias",
            "seed",
        ] {
            assert!(!inst[key].is_null(), "metrics.json instance lacks {key}");
        }
    }
    // safetensors: header length, JSON header with W [K, m, n], b [K, n] and the config in metadata.
    let bytes = read(&out, "model.safetensors");
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    assert_eq!(header["W"]["shape"], serde_json::json!([3, 3, 8]));
    assert_eq!(header["b"]["shape"], serde_json::json!([3, 8]));
    assert_eq!(header["W"]["dtype"], "F32");
    assert_eq!(
        header["__metadata__"]["config"].as_str().unwrap(),
        String::from_utf8(read(&out, "config.toml")).unwrap()
    );
    // loss.csv: header and one row per logged step (0, 100, 200, 300, 399) per replica per instance.
    let csv = String::from_utf8(read(&out, "loss.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("step,instance,replica,loss"));
    assert_eq!(lines.count(), 5 * 2 * 3);
    let inspect = ok(&["inspect", out.to_str().unwrap()]);
    let text = String::from_utf8(inspect.stdout).unwrap();
    assert!(
        text.contains("W [3, 3, 8]") && text.lines().count() >= 3 + 3,
        "{text}"
    );
}

#[test]
fn bad_configs_exit_2_name_the_field_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let config = small_config(tmp.path());
    let config = config.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--set", "toy.n_features=0"], "toy.n_features"),
        (&["--set", "toy.density=[0.5, 1.5]"], "toy.density"),
        (&["--set", "toy.density=-0.1"], "toy.density"),
        (&["--set", "toy.importance=-1.0"], "toy.importance"),
        (&["--set", "toy.densty=0.1"], "did you mean `density`"),
        (&["--set", "toy.n_hidden=9"], "toy.n_hidden"),
        (&["--set", "train.learning_rate=nan"], "train.learning_rate"),
        (&["--set", "toy.density=0.0"], "toy.density"),
        (&["--set", "toy.model=\"relu\""], "toy.model"),
        (&["--set", "train.steps=\"many\""], "train.steps"),
    ];
    for (extra, needle) in cases {
        let out_dir = tmp.path().join("bad");
        let mut args = vec!["train", config, "--out", out_dir.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = tms(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{extra:?}: message should name {needle}: {stderr}"
        );
        assert!(
            stderr.contains("small.toml"),
            "{extra:?}: message should name the file: {stderr}"
        );
        assert!(!out_dir.exists(), "{extra:?}: nothing written");
    }
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers,
        vec![std::ffi::OsString::from("small.toml")],
        "no partial directories"
    );
    // Unknown preset and an existing output directory are bad input too.
    assert_eq!(
        tms(&[
            "train",
            "--preset",
            "e9000",
            "--out",
            tmp.path().join("x").to_str().unwrap()
        ])
        .status
        .code(),
        Some(2)
    );
    let exists = tms(&["train", config, "--out", tmp.path().to_str().unwrap()]);
    assert_eq!(exists.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&exists.stderr).contains("--force"));
}

#[test]
fn inspect_summarises_runs_of_every_family() {
    let tmp = tempfile::tempdir().unwrap();
    for (preset, needle) in [
        ("s1-aligned", "residual"),
        ("a1-regression", "planted_share"),
    ] {
        let out = tmp.path().join(preset);
        ok(&[
            "train",
            "--preset",
            preset,
            "--set",
            "train.steps=50",
            "--out",
            out.to_str().unwrap(),
        ]);
        let text = String::from_utf8(ok(&["inspect", out.to_str().unwrap()]).stdout).unwrap();
        assert!(
            text.contains("instance 0: loss") && text.contains("finished"),
            "{preset}: {text}"
        );
        assert!(
            text.contains(needle) || preset == "s1-aligned",
            "{preset}: {text}"
        );
        assert!(
            !text.contains("null"),
            "{preset}: no toy-only columns: {text}"
        );
    }
}

#[test]
fn presets_are_listed_with_descriptions() {
    let out = ok(&["presets"]);
    let text = String::from_utf8(out.stdout).unwrap();
    for name in ["e1", "e2-linear", "e2-relu"] {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} listed"));
        assert!(line.split_whitespace().count() > 3, "{line}");
    }
}

/// E1 at reduced scale (2 of the 10 densities, best of 6 instead of 10): the paper's intro figure.
#[test]
fn e1_dense_keeps_two_features_and_sparse_makes_a_pentagon() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("e1");
    ok(&[
        "train",
        "--preset",
        "e1",
        "--set",
        "toy.density=[1.0, 0.05]",
        "--set",
        "train.replicas=6",
        "--out",
        out.to_str().unwrap(),
    ]);
    let metrics: serde_json::Value = serde_json::from_slice(&read(&out, "metrics.json")).unwrap();
    let floats = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let dense = &metrics["instances"][0];
    let norms = floats(&dense["norms"]);
    // Dense: the two most important features get the two dimensions (‖W_i‖ ≈ 1; the paper's figure),
    // the other three are not learned (‖W_i‖ ≈ 0). 0.1 is far from both 0 and 1.
    assert!(
        norms[..2].iter().all(|&v| (v - 1.0).abs() < 0.1),
        "dense norms {norms:?}"
    );
    assert!(norms[2..].iter().all(|&v| v < 0.1), "dense norms {norms:?}");
    // Sparsest (p = 0.05): all five features represented as a pentagon, D_i ≈ 2/5 (the pentagon's
    // value; neighbouring polytopes give ½ or ⅓, so ±0.05 separates them), norms a little above 1,
    // negative biases.
    let sparse = &metrics["instances"][1];
    let (norms, dims, bias) = (
        floats(&sparse["norms"]),
        floats(&sparse["dimensionality"]),
        floats(&sparse["bias"]),
    );
    assert!(
        norms.iter().all(|&v| v > 0.95 && v < 1.3),
        "sparse norms {norms:?}"
    );
    assert!(
        dims.iter().all(|&d| (d - 0.4).abs() < 0.05),
        "sparse D_i {dims:?}"
    );
    assert!(bias.iter().all(|&b| b < 0.0), "sparse biases {bias:?}");
}
