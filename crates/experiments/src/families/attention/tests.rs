//! Tests of `[attention]`: validation, defaults, renamed keys, tiny runs writing the contract.

use super::Attention;
use crate::config::testing::{key_of, rejected};
use crate::config::{load, ConfigError, Origin};

const REGRESSION: &str = "[experiment]\nname = \"t\"\n[train]\nsteps = 50\noptimizer = \"sgd\"\nlearning_rate = 0.01\nlog_every = 10\n[attention]\ntask = \"regression\"\nd = 4\nstrengths = [2.0, 1.0]\n";
const GRAPH: &str = "[experiment]\nname = \"g\"\n[train]\nsteps = 20\noptimizer = \"adam\"\nlearning_rate = 0.05\nlog_every = 10\n[attention]\ntask = \"relational-graph\"\nd = 4\nvertices = 12\nedges = [4, 8]\nkey_budget = 4\nheads = [1, 2]\n";

fn error(text: &str, overrides: &[&str]) -> ConfigError {
    rejected(text, "a.toml", overrides)
}

#[test]
fn defaults_fill_in_and_round_trip() {
    let plan = load(REGRESSION, &Origin::Preset("t".into()), &[]).unwrap();
    let again = load(
        &crate::config::to_toml(&plan.resolved),
        &Origin::Preset("t".into()),
        &[],
    )
    .unwrap();
    assert_eq!(plan, again);
    let a = plan.resolved.section::<Attention>().unwrap();
    assert_eq!(a.start.as_deref(), Some("aligned"));
    assert_eq!(a.gradient.as_deref(), Some("population"));
    let p = plan.family.get::<Attention>().expect("attention plan");
    assert_eq!(p.instances.len(), 1);
    assert_eq!(p.instances[0].d_head, 4);
}

#[test]
fn graph_axes_multiply_and_key_budget_divides() {
    let plan = load(GRAPH, &Origin::Preset("g".into()), &[]).unwrap();
    let p = plan.family.get::<Attention>().expect("attention plan");
    let sizes: Vec<_> = p
        .instances
        .iter()
        .map(|i| (i.edges.unwrap(), i.heads, i.d_head))
        .collect();
    assert_eq!(sizes, [(4, 1, 4), (4, 2, 2), (8, 1, 4), (8, 2, 2)]);
}

#[test]
fn each_bad_value_names_its_key() {
    for (text, set, key) in [
        (REGRESSION, "attention.task=\"regresion\"", "attention.task"),
        (REGRESSION, "attention.d=0", "attention.d"),
        (REGRESSION, "attention.form=\"fused\"", "attention.form"),
        (REGRESSION, "attention.heads=0", "attention.heads"),
        (REGRESSION, "attention.d_head=1.5", "attention.d_head"),
        (
            REGRESSION,
            "attention.strengths=[1,2,3,4,5]",
            "attention.strengths",
        ),
        (REGRESSION, "attention.start=\"random\"", "attention.start"),
        (
            REGRESSION,
            "attention.initial_strength=-1.0",
            "attention.initial_strength",
        ),
        (
            REGRESSION,
            "attention.gradient=\"full\"",
            "attention.gradient",
        ),
        (
            REGRESSION,
            "attention.keys_per_context=8",
            "attention.keys_per_context",
        ),
        (REGRESSION, "attention.edges=8", "attention.edges"),
        (REGRESSION, "attention.batch_size=0", "attention.batch_size"),
        (
            REGRESSION,
            "attention.combination=\"mix-patterns\"",
            "attention.combination",
        ),
        (GRAPH, "attention.strengths=[1.0]", "attention.strengths"),
        (GRAPH, "attention.start=\"aligned\"", "attention.start"),
        (GRAPH, "attention.key_budget=3", "attention.key_budget"),
        (GRAPH, "attention.edges=1000", "attention.edges"),
        (
            GRAPH,
            "attention.frequency=\"zipff\"",
            "attention.frequency",
        ),
        (
            GRAPH,
            "attention.keys_per_context=40",
            "attention.keys_per_context",
        ),
        (GRAPH, "attention.d_head=2", "attention.key_budget"),
    ] {
        let e = error(text, &[set]);
        assert_eq!(key_of(&e), key, "{set}: {e}");
    }
    let e = error(REGRESSION, &["attention.task=\"regresion\""]);
    assert!(e.to_string().contains("did you mean `regression`?"), "{e}");
    let e = error(REGRESSION, &["attention.strenghts=[1.0]"]);
    assert_eq!(key_of(&e), "attention.strenghts");
    assert!(e.to_string().contains("did you mean `strengths`?"), "{e}");
}

#[test]
fn renamed_keys_are_refused_naming_the_new_key() {
    use crate::families::Family;
    for (old, new) in super::Attention::RENAMED {
        let e = error(REGRESSION, &[&format!("attention.{old}=1")]);
        assert_eq!(key_of(&e), format!("attention.{old}"));
        assert!(
            e.to_string()
                .contains(&format!("`{old}` was renamed: write `attention.{new}`")),
            "{e}"
        );
    }
}

#[test]
fn exactly_one_model_section() {
    let both = format!(
        "{REGRESSION}[toy]\nmodel = \"linear\"\nn_features = 3\nn_hidden = 2\ndensity = 1.0\n"
    );
    let e = error(&both, &[]);
    assert_eq!(key_of(&e), "attention");
    assert!(e.to_string().contains("[toy] and [attention]"), "{e}");
    let none = "[experiment]\nname = \"t\"\n";
    assert!(error(none, &[]).to_string().contains("[attention]"));
}

#[test]
fn merged_heads_take_no_sizes() {
    let e = error(
        REGRESSION,
        &["attention.form=\"merged\"", "attention.d_head=2"],
    );
    assert_eq!(key_of(&e), "attention.d_head");
}

#[test]
fn a_tiny_run_writes_the_contract() {
    let plan = load(
        GRAPH,
        &Origin::Preset("g".into()),
        &["attention.frequency=\"zipf\"".into()],
    )
    .unwrap();
    let indices: Vec<usize> = (0..plan.family.instance_count()).collect();
    let outcomes = crate::run::run(&plan, &indices, &|_| {});
    let files = crate::output::run_files(&plan, &outcomes).unwrap();
    let names: Vec<&str> = files.iter().map(|f| f.0).collect();
    assert_eq!(
        names,
        [
            "config.toml",
            "model.safetensors",
            "metrics.json",
            "loss.csv"
        ]
    );
    // Padded to the largest head: [instances, h = 2, d_head = 4, d = 4].
    assert_eq!(outcomes[0].tensors[0].shape, vec![2, 4, 4]);
    let metrics: serde_json::Value = serde_json::from_slice(&files[2].1).unwrap();
    let first = &metrics["instances"][0];
    assert_eq!(metrics["family"], "attention");
    assert_eq!(first["accuracy_per_relation"].as_array().unwrap().len(), 4);
    assert!(first["top1_accuracy"].as_f64().is_some());
    let csv = String::from_utf8(files[3].1.clone()).unwrap();
    assert!(csv.starts_with("step,instance,replica,loss,top1_accuracy,top1_accuracy_uniform\n"));

    let plan = load(REGRESSION, &Origin::Preset("t".into()), &[]).unwrap();
    let outcomes = crate::run::run(&plan, &[0], &|_| {});
    let m = &outcomes[0].metrics;
    assert_eq!(m["strengths"].as_array().unwrap().len(), 2);
    assert_eq!(m["cosines_left"].as_array().unwrap().len(), 2);
    assert!(m["planted_share"].as_f64().unwrap() > 0.999);
    let csv = crate::output::loss_csv(&plan, &outcomes);
    assert!(csv.starts_with(
        "step,instance,replica,loss,strength_1,strength_2,planted_share,nuclear_norm,effective_rank\n"
    ));
}
