//! Tests of `[deep_linear]`: validation, defaults, the CSV format, tiny runs of every S preset.

use super::*;
use crate::config::testing::{key_of, rejected};
use crate::config::{load, ConfigError};

const BASE: &str = "[experiment]\nname = \"d\"\n[train]\noptimizer = \"sgd\"\nlearning_rate = 0.05\nsteps = 300\nlog_every = 50\n[deep_linear]\ndataset = \"four-items\"\nhidden = [4]\n";

fn error(text: &str, overrides: &[&str]) -> ConfigError {
    rejected(text, "d.toml", overrides)
}

fn plan_of(text: &str, overrides: &[&str]) -> DeepLinearPlan {
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    let plan = load(text, &Origin::Preset("d".into()), &overrides).unwrap();
    plan.family
        .get::<DeepLinear>()
        .expect("a deep linear plan")
        .clone()
}

#[test]
fn defaults_fill_in_and_round_trip() {
    let plan = load(BASE, &Origin::Preset("d".into()), &[]).unwrap();
    let again = load(
        &crate::config::to_toml(&plan.resolved),
        &Origin::Preset("d".into()),
        &[],
    )
    .unwrap();
    assert_eq!(plan, again);
    let p = plan_of(BASE, &[]);
    assert_eq!(
        p.instances,
        [DeepLinearInstance {
            start: DeepLinearStart::Aligned {
                initial_strength: DEFAULT_INITIAL_STRENGTH
            },
            repeat: 0
        }]
    );
    // Axis × repeats, repeats fastest.
    let p = plan_of(
        BASE,
        &[
            "deep_linear.start=\"gaussian\"",
            "deep_linear.scale=[0.01, 0.1]",
            "deep_linear.repeats=3",
        ],
    );
    assert_eq!(p.instances.len(), 6);
    assert_eq!(p.instances[4].repeat, 1);
    assert_eq!(
        p.instances[4].start,
        DeepLinearStart::Gaussian { scale: 0.1 }
    );
    // Names and indices both address predictions.
    let p = plan_of(
        BASE,
        &["deep_linear.predictions=[{ property = \"Fly\", item = \"Salmon\" }, { property = 5, item = 3 }]"],
    );
    assert_eq!(
        p.predictions,
        [
            PredictionIndex {
                property: 3,
                item: 1
            },
            PredictionIndex {
                property: 5,
                item: 3
            }
        ]
    );
    // Generated sets: the tree's 8 leaves and 15 nodes; the diffusion sample is drawn once.
    let p = plan_of(BASE, &["deep_linear.dataset=\"tree\""]);
    assert_eq!((p.data.n_items(), p.data.n_properties()), (8, 15));
    let a = plan_of(
        BASE,
        &[
            "deep_linear.dataset=\"diffusion\"",
            "deep_linear.n_features=50",
        ],
    );
    let b = plan_of(
        BASE,
        &[
            "deep_linear.dataset=\"diffusion\"",
            "deep_linear.n_features=50",
        ],
    );
    assert_eq!(a.data, b.data);
    assert_eq!((a.data.n_items(), a.data.n_properties()), (8, 50));
    let c = plan_of(
        BASE,
        &[
            "deep_linear.dataset=\"diffusion\"",
            "deep_linear.n_features=50",
            "deep_linear.data_seed=9",
        ],
    );
    assert_ne!(a.data, c.data);
}

#[test]
fn each_bad_value_names_its_key() {
    for (set, key) in [
        ("deep_linear.dataset=\"four_items\"", "deep_linear.dataset"),
        ("deep_linear.start=\"aligend\"", "deep_linear.start"),
        ("deep_linear.hidden=[4, 0]", "deep_linear.hidden[1]"),
        (
            "deep_linear.initial_strength=0.0",
            "deep_linear.initial_strength",
        ),
        (
            "deep_linear.initial_strength=-1e-3",
            "deep_linear.initial_strength",
        ),
        ("deep_linear.scale=0.1", "deep_linear.scale"),
        ("deep_linear.start=\"zero\"", "deep_linear.start"),
        ("deep_linear.repeats=0", "deep_linear.repeats"),
        ("deep_linear.branching=2", "deep_linear.branching"),
        (
            "deep_linear.matrix_file=\"x.csv\"",
            "deep_linear.matrix_file",
        ),
        ("deep_linear.n_features=10", "deep_linear.n_features"),
        (
            "deep_linear.predictions=[{ property = \"Fyl\", item = 0 }]",
            "deep_linear.predictions[0].property",
        ),
        (
            "deep_linear.predictions=[{ property = 0, item = 4 }]",
            "deep_linear.predictions[0].item",
        ),
        ("deep_linear.hiden=[4]", "deep_linear.hiden"),
    ] {
        let e = error(BASE, &[set]);
        assert_eq!(key_of(&e), key, "{set}: {e}");
    }
    let typo = error(BASE, &["deep_linear.start=\"aligend\""]).to_string();
    assert!(typo.contains("did you mean `aligned`?"), "{typo}");
    assert!(typo.contains("d.toml"), "{typo}");
    let e = error(
        BASE,
        &["deep_linear.predictions=[{ property = \"Fyl\", item = 0 }]"],
    )
    .to_string();
    assert!(e.contains("did you mean `Fly`?"), "{e}");
    for (set, key) in [
        (
            "deep_linear.flip_probability=1.5",
            "deep_linear.flip_probability",
        ),
        ("deep_linear.branching=1", "deep_linear.branching"),
        ("deep_linear.depth=0", "deep_linear.depth"),
        ("deep_linear.n_features=0", "deep_linear.n_features"),
    ] {
        let e = error(BASE, &["deep_linear.dataset=\"diffusion\"", set]);
        assert_eq!(key_of(&e), key, "{set}: {e}");
    }
    let e = error(BASE, &["deep_linear.features=10"]);
    assert!(
        e.to_string()
            .contains("`features` was renamed: write `deep_linear.n_features`"),
        "{e}"
    );
    let e = error(BASE, &["deep_linear.dataset=\"csv\""]);
    assert_eq!(key_of(&e), "deep_linear.matrix_file");
    // Two model sections.
    let e = error(
        &format!("{BASE}[toy]\nmodel = \"linear\"\nn_features = 5\nn_hidden = 2\ndensity = 1.0\n"),
        &[],
    );
    assert!(e.to_string().contains("exactly one model section"), "{e}");
}

#[test]
fn csv_round_trip_and_relative_path() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = ItemPropertySet::four_items();
    data.items[0] = "Canary, yellow".into();
    data.properties[1] = "Move \"fast\"".into();
    data.targets = data.targets.scale(0.3);
    let text = write_matrix_csv(&data);
    std::fs::write(dir.path().join("items.csv"), &text).unwrap();
    assert_eq!(
        read_matrix_csv(&dir.path().join("items.csv")).unwrap(),
        data
    );
    // A config beside the CSV names it relatively; the resolved config holds the full path.
    let config = dir.path().join("run.toml");
    let text = BASE.replace(
        "dataset = \"four-items\"",
        "dataset = \"csv\"\nmatrix_file = \"items.csv\"",
    );
    let plan = load(&text, &Origin::File(config), &[]).unwrap();
    let p = plan.family.get::<DeepLinear>().expect("a deep linear plan");
    assert_eq!(p.data, data);
    let resolved = plan.resolved.section::<DeepLinear>().unwrap();
    assert_eq!(
        resolved.matrix_file.as_deref().map(Path::new),
        Some(dir.path().join("items.csv").as_path())
    );
    // Comments, blank lines, spaces and CRLF are accepted.
    let p = parse_matrix_csv(
        "# a comment\r\nproperty, a , b\r\n\r\nx, 1, 2.5\r\ny,-1,0\r\n",
        Path::new("m.csv"),
    )
    .unwrap();
    assert_eq!(p.items, ["a", "b"]);
    assert_eq!(p.targets.as_slice(), [1.0, 2.5, -1.0, 0.0]);
}

#[test]
fn csv_errors_name_file_line_and_column() {
    let at = |text: &str| match parse_matrix_csv(text, Path::new("m.csv")) {
        Err(CsvError::Syntax { line, column, .. }) => (line, column),
        other => panic!("expected a syntax error, got {other:?}"),
    };
    assert_eq!(at("p,a,b\nx,1,zz\n"), (2, 3));
    assert_eq!(at("p,a,b\n\nx,1\n"), (3, 3));
    assert_eq!(at("p,a,b\nx,1,2,3\n"), (2, 4));
    assert_eq!(at("p,a,b\nx,1,nan\n"), (2, 3));
    assert_eq!(at("p,a,a\nx,1,2\n"), (1, 3));
    assert_eq!(at("p,\"a,b\nx,1\n"), (1, 2));
    assert_eq!(at("p\nx\n"), (1, 2));
    assert_eq!(at("p,a\n,1\n"), (2, 1));
    let e = parse_matrix_csv("p,a,b\nx,1,zz\n", Path::new("dir/m.csv"))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("dir/m.csv:2:3:"), "{e}");
    assert!(e.contains("`zz`") && e.contains("item `b`"), "{e}");
    assert!(matches!(
        parse_matrix_csv("# only a comment\n", Path::new("m.csv")),
        Err(CsvError::Matrix { .. })
    ));
    assert!(matches!(
        parse_matrix_csv("p,a\n", Path::new("m.csv")),
        Err(CsvError::Matrix { .. })
    ));
    assert!(matches!(
        read_matrix_csv(Path::new("/nonexistent/m.csv")),
        Err(CsvError::Read { .. })
    ));
    // Through the config: the key, the file and the position.
    let e = error(
        &BASE.replace(
            "dataset = \"four-items\"",
            "dataset = \"csv\"\nmatrix_file = \"/nonexistent/m.csv\"",
        ),
        &[],
    );
    assert_eq!(key_of(&e), "deep_linear.matrix_file");
    assert!(e.to_string().contains("/nonexistent/m.csv"), "{e}");
}

#[test]
fn a_tiny_run_end_to_end() {
    let plan = load(
        BASE,
        &Origin::Preset("d".into()),
        &[
            "deep_linear.predictions=[{ property = \"Fly\", item = \"Salmon\" }]".into(),
            "deep_linear.start=\"gaussian\"".into(),
            "deep_linear.scale=0.1".into(),
            "deep_linear.repeats=2".into(),
        ],
    )
    .unwrap();
    let outcomes = crate::run::run(&plan, &[0, 1], &|_| {});
    assert_eq!(outcomes.len(), 2);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let files = crate::output::run_files(&plan, &outcomes).unwrap();
    crate::output::write_run_dir(&out, &files, false).unwrap();
    let tensors = crate::output::read_tensors(&out).unwrap();
    let shapes: Vec<(&str, &[usize])> = tensors
        .iter()
        .map(|t| (t.name.as_str(), t.shape.as_slice()))
        .collect();
    assert_eq!(shapes, [("W1", &[2, 4, 4][..]), ("W2", &[2, 7, 4][..])]);
    let metrics = crate::output::read_metrics(&out).unwrap();
    assert_eq!(metrics["family"], "deep_linear");
    let first = &metrics["instances"][0];
    assert_eq!(first["start"], "gaussian");
    assert_eq!(first["repeat"], 0);
    // 300 steps at λ = 0.05 from σ = 0.1: every mode is learned (t½ ≤ (τ/2s)·ln(s/a₀) ≈ 60
    // steps for s = 1, a₀ ~ σ² = 0.01), so W²W¹ ≈ Y; the residual decays like
    // e^{−2λ·s_min·t} ≈ e^{−30} after the last mode switches on, leaving f32 rounding.
    let residual = first["residual"].as_f64().unwrap();
    assert!(residual < 1e-3, "{residual}");
    let s: Vec<f64> = serde_json::from_value(first["singular_values"].clone()).unwrap();
    assert!((s[0] - 7f64.sqrt()).abs() < 1e-12);
    let csv = std::fs::read_to_string(out.join("loss.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    assert_eq!(
        header,
        "step,instance,replica,loss,mode_strength_1,mode_strength_2,mode_strength_3,mode_strength_4,imbalance_1,prediction_3_1"
    );
    // Rows at steps 0, 50, …, 250 and the last step 299, for both instances.
    assert_eq!(csv.lines().count(), 1 + 2 * 7);
}

#[test]
fn every_s_preset_trains() {
    let names: Vec<&str> = crate::presets::names()
        .into_iter()
        .filter(|n| n.starts_with('s') && n[1..].starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    assert!(names.len() >= 7, "{names:?}");
    for name in names {
        let plan = crate::presets::load_preset(name, &[]).unwrap();
        assert!(plan.family.get::<DeepLinear>().is_some(), "{name}");
        let indices: Vec<usize> = (0..plan.family.instance_count()).collect();
        for o in crate::run::run(&plan, &indices, &|_| {}) {
            assert_eq!(
                o.chosen().status,
                tms_engine::train::Status::Finished,
                "{name}"
            );
        }
    }
}
