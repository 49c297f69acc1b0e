//! Fuzzing with proptest: the config and sweep parsers over random TOML text and random values, and
//! the checkpoint, safetensors and JSON loaders over random, truncated and bit-flipped bytes. The
//! property is always the same: an `Ok` or an `Err`, never a panic — and for checksummed files, a
//! damaged file is always an `Err`.
//!
//! Case counts are set explicitly (see `CASES`), so the suite stays fast in CI; each test prints
//! how many cases it ran.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::path::Path;
use tms_experiments::checkpoint;
use tms_experiments::config::{load, Origin};
use tms_experiments::output;
use tms_experiments::sweep;

/// Cases per property.
const CASES: u32 = 256;

const CONFIG: &str = "[experiment]\nname = \"f\"\n[train]\nsteps = 3\nlog_every = 1\nreplicas = 2\n[toy]\nmodel = \"relu-output\"\nn_features = 4\nn_hidden = 2\ndensity = [1.0, 0.2]\nbatch_size = 4\nevaluation_batch_size = 8\n";
const SWEEP: &str = "[sweep]\nname = \"f\"\n[train]\nsteps = 3\nlog_every = 1\n[toy]\nmodel = \"relu-output\"\nn_features = 4\nn_hidden = 2\ndensity = 0.5\nbatch_size = 4\nevaluation_batch_size = 8\n[grid]\n\"toy.n_hidden\" = [1, 2]\n\"train.seed\" = [0, 1]\n";

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

/// Runs `property` over `strategy` for `CASES` cases; returns the number of cases run.
fn check<S: Strategy>(strategy: S, property: impl Fn(S::Value)) -> u32
where
    S::Value: std::fmt::Debug,
{
    let mut runner = runner(CASES);
    let count = std::cell::Cell::new(0u32);
    runner
        .run(&strategy, |v| {
            count.set(count.get() + 1);
            property(v);
            Ok(())
        })
        .unwrap();
    count.get()
}

/// A text mutated by deleting, inserting or replacing characters at random places.
fn mutated(text: &'static str) -> impl Strategy<Value = String> {
    let alphabet = prop::sample::select(vec![
        "",
        "=",
        "[",
        "]",
        "\"",
        ".",
        ",",
        "{",
        "}",
        "\n",
        "0",
        "-1",
        "1e400",
        "nan",
        "x",
        "toy.",
        "[[cells]]",
        "[grid]",
        "\"toy.density\" = ",
        "true",
        "'",
    ]);
    prop::collection::vec((any::<prop::sample::Index>(), 0usize..4, alphabet), 1..6).prop_map(
        move |edits| {
            let mut s = text.to_string();
            for (at, delete, insert) in edits {
                let mut i = at.index(s.len() + 1);
                while !s.is_char_boundary(i) {
                    i -= 1;
                }
                let mut end = (i + delete).min(s.len());
                while !s.is_char_boundary(end) {
                    end += 1;
                }
                s.replace_range(i..end, insert);
            }
            s
        },
    )
}

/// A random TOML value: numbers at and past every bound, strings, lists, inline tables.
fn value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        prop::sample::select(vec![0i64, 1, 2, 5, -1, 1_000_001, i64::MAX])
            .prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| format!("{v:?}")),
        prop::sample::select(vec![
            "0.0", "1.0", "1.5", "-0.1", "nan", "inf", "-inf", "1e-300"
        ])
        .prop_map(str::to_string),
        "[a-z-]{0,12}".prop_map(|s| format!("\"{s}\"")),
        any::<bool>().prop_map(|b| b.to_string()),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
            prop::collection::vec(
                (
                    prop::sample::select(vec!["from", "to", "count", "spacing", "decay", "x"]),
                    inner
                ),
                0..4
            )
            .prop_map(|v| {
                let mut seen = std::collections::BTreeSet::new();
                let fields: Vec<String> = v
                    .into_iter()
                    .filter(|(k, _)| seen.insert(*k))
                    .map(|(k, v)| format!("{k} = {v}"))
                    .collect();
                format!("{{ {} }}", fields.join(", "))
            }),
        ]
    })
}

/// Dotted keys the configs know, plus a few they do not.
fn key() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "toy.density",
        "toy.n_hidden",
        "toy.n_features",
        "toy.model",
        "toy.importance",
        "toy.extra_importance",
        "toy.density_factor",
        "toy.perturbed_feature",
        "toy.values",
        "toy.batch_size",
        "toy.sets",
        "train.steps",
        "train.seed",
        "train.replicas",
        "train.learning_rate",
        "train.optimizer",
        "train.schedule",
        "train.warmup_steps",
        "train.beta1",
        "train.log_every",
        "experiment.name",
        "toy.desnity",
        "tyo.density",
        "toy",
    ])
}

#[test]
fn config_parser_survives_random_text_and_values() {
    let origin = Origin::File("fuzz.toml".into());
    let mut n = check(mutated(CONFIG), |text| {
        let _ = load(&text, &origin, &[]);
    });
    n += check(".{0,200}", |text: String| {
        let _ = load(&text, &origin, &[]);
    });
    n += check(prop::collection::vec((key(), value()), 1..4), |sets| {
        let overrides: Vec<String> = sets.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = load(CONFIG, &origin, &overrides);
    });
    eprintln!("config parser: {n} cases");
}

#[test]
fn sweep_parser_survives_random_text_and_values() {
    let path = Path::new("fuzz-sweep.toml");
    let mut n = check(mutated(SWEEP), |text| {
        let _ = sweep::load(&text, path);
    });
    n += check(
        prop::collection::vec((key(), prop::collection::vec(value(), 0..3)), 1..3),
        |grid| {
            let mut text = SWEEP.replace(
                "[grid]\n\"toy.n_hidden\" = [1, 2]\n\"train.seed\" = [0, 1]\n",
                "[grid]\n",
            );
            let mut seen = std::collections::BTreeSet::new();
            for (k, values) in grid.iter().filter(|(k, _)| seen.insert(*k)) {
                text.push_str(&format!("\"{k}\" = [{}]\n", values.join(", ")));
            }
            if let Ok(s) = sweep::load(&text, path) {
                // A valid sweep's record always reads back.
                let bytes = sweep::record(&s);
                sweep::from_record(&bytes, Path::new("sweep.json")).expect("own record reads back");
            }
        },
    );
    n += check(prop::collection::vec((key(), value()), 0..3), |cell| {
        let mut text = SWEEP.to_string();
        text.push_str("[[cells]]\n");
        let mut seen = std::collections::BTreeSet::new();
        for (k, v) in cell.iter().filter(|(k, _)| seen.insert(*k)) {
            text.push_str(&format!("\"{k}\" = {v}\n"));
        }
        let _ = sweep::load(&text, path);
    });
    eprintln!("sweep parser: {n} cases");
}

/// Real files of a tiny trained run: a checkpoint, a model.safetensors, a metrics.json, a sweep.json.
fn real_files() -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
    let plan = load(CONFIG, &Origin::Preset("fuzz".into()), &[]).unwrap();
    let indices = [0usize, 1];
    let mut states = tms_experiments::run::initial_states(&plan, &indices);
    tms_experiments::run::advance(&plan, &indices, &mut states, 2, &|_| {});
    let ckpt = checkpoint::encode_states(7, &(0..2), &states);
    tms_experiments::run::advance(&plan, &indices, &mut states, 3, &|_| {});
    let outcomes = tms_experiments::run::outcomes(&plan, &indices, &states);
    let files = output::run_files(&plan, &outcomes).unwrap();
    let get = |name: &str| files.iter().find(|(n, _)| *n == name).unwrap().1.clone();
    let s = sweep::load(SWEEP, Path::new("f.toml")).unwrap();
    (
        ckpt,
        get("model.safetensors"),
        get("metrics.json"),
        sweep::record(&s),
    )
}

/// Damage to a byte string: truncation, one bit flipped, a byte overwritten, or random bytes.
#[derive(Clone, Debug)]
enum Damage {
    Truncate(prop::sample::Index),
    Flip(prop::sample::Index, u8),
    Set(prop::sample::Index, u8),
    Random(Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        any::<prop::sample::Index>().prop_map(Damage::Truncate),
        (any::<prop::sample::Index>(), 0u8..8).prop_map(|(i, b)| Damage::Flip(i, b)),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Damage::Set(i, b)),
        prop::collection::vec(any::<u8>(), 0..300).prop_map(Damage::Random),
    ]
}

/// The damaged bytes, and whether they differ from the original.
fn apply(original: &[u8], d: &Damage) -> (Vec<u8>, bool) {
    let mut b = original.to_vec();
    match d {
        Damage::Truncate(i) => b.truncate(i.index(original.len())),
        Damage::Flip(i, bit) => b[i.index(original.len())] ^= 1 << bit,
        Damage::Set(i, v) => b[i.index(original.len())] = *v,
        Damage::Random(r) => b = r.clone(),
    }
    let changed = b != original;
    (b, changed)
}

#[test]
fn loaders_survive_random_truncated_and_flipped_bytes() {
    let (ckpt, tensors, metrics, record) = real_files();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    assert!(checkpoint::decode(&ckpt).is_ok());
    let mut n = check(damage(), |d| {
        let (bytes, changed) = apply(&ckpt, &d);
        // Checksummed: any change is detected.
        assert_eq!(checkpoint::decode(&bytes).is_err(), changed, "{d:?}");
    });
    n += check(damage(), |d| {
        let (bytes, _) = apply(&tensors, &d);
        std::fs::write(dir.join("model.safetensors"), &bytes).unwrap();
        let _ = output::read_tensors(dir);
    });
    n += check(damage(), |d| {
        let (bytes, _) = apply(&metrics, &d);
        std::fs::write(dir.join("metrics.json"), &bytes).unwrap();
        let _ = output::read_metrics(dir);
    });
    n += check(damage(), |d| {
        let (bytes, changed) = apply(&record, &d);
        // sweep.json is compared byte for byte with its own re-encoding: any change is detected.
        let result = sweep::from_record(&bytes, Path::new("sweep.json"));
        assert_eq!(result.is_err(), changed, "{d:?}");
    });
    eprintln!("loaders (checkpoint, safetensors, metrics.json, sweep.json): {n} cases");
}
