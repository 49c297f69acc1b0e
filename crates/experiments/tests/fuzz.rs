//! Fuzzing with proptest: the config and sweep parsers over random TOML text and random values, and
//! the checkpoint, safetensors and JSON loaders over random, truncated and bit-flipped bytes. The
//! property is always the same: an `Ok` or an `Err`, never a panic — and for checksummed files, a
//! damaged file is always an `Err`. And unknown keys: one inserted into any table, at any depth, of
//! a config of every family or of a sweep file of every family is refused, naming its full dotted
//! key (with a did-you-mean for a typo of a known key), exit code 2.
//!
//! Case counts are set explicitly (see `CASES`), so the suite stays fast in CI; each test prints
//! how many cases it ran.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::path::Path;
use tms_experiments::checkpoint;
use tms_experiments::config::{load, ConfigError, Origin};
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
        "attention.task",
        "attention.form",
        "attention.heads",
        "attention.d_head",
        "attention.strengths",
        "attention.start",
        "attention.initial_strength",
        "attention.scale",
        "attention.gradient",
        "attention.combination",
        "attention.frequency",
        "attention.a0",
        "deep_linear.dataset",
        "deep_linear.start",
        "deep_linear.scale",
        "deep_linear.initial_strength",
        "deep_linear.hidden",
        "deep_linear.predictions",
        "deep_linear.hiden",
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
    for config in std::iter::once(CONFIG).chain(FAMILY_CONFIGS) {
        n += check(prop::collection::vec((key(), value()), 1..4), |sets| {
            let overrides: Vec<String> = sets.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = load(config, &origin, &overrides);
        });
    }
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

// ---------------------------------------------------------------------------------------------
// Unknown keys at every depth

/// One config of each family in which every table a family can hold is written out as a table:
/// the section, `[train]`, `[experiment]`, axis ranges, `importance = { decay }`, sets,
/// predictions. Each loads as is.
const FAMILY_CONFIGS: [&str; 4] = [
    "[experiment]\nname = \"f\"\n[train]\nsteps = 3\nlog_every = 1\n[toy]\nmodel = \"relu-output\"\nn_features = 4\nn_hidden = 2\ndensity = { from = 1.0, to = 0.1, count = 2, spacing = \"linear\" }\nimportance = { decay = 0.9 }\nextra_importance = { from = 0.5, to = 2.0, count = 2 }\ndensity_factor = { from = 0.5, to = 1.0, count = 2 }\nperturbed_feature = 3\nsets = [{ kind = \"correlated\", features = [0, 2] }, { kind = \"anticorrelated\", features = [2, 3], convention = \"feature\" }]\nbatch_size = 4\nevaluation_batch_size = 8\n",
    "[experiment]\nname = \"f\"\n[train]\nsteps = 3\noptimizer = \"sgd\"\nlearning_rate = 0.05\n[deep_linear]\ndataset = \"four-items\"\nhidden = [2]\nstart = \"aligned\"\ninitial_strength = { from = 1e-4, to = 1e-3, count = 2 }\npredictions = [{ property = \"Fly\", item = \"Salmon\" }, { property = 0, item = 1 }]\n",
    "[experiment]\nname = \"f\"\n[train]\nsteps = 3\n[attention]\ntask = \"regression\"\nd = 4\nstrengths = [2.0, 1.0]\nd_head = { from = 2, to = 4, count = 2 }\nheads = [1]\n",
    "[experiment]\nname = \"f\"\n[train]\nsteps = 3\n[attention]\ntask = \"relational-graph\"\nd = 4\nvertices = 12\nedges = { from = 4, to = 8, count = 2 }\nheads = { from = 1, to = 2, count = 2 }\nkey_budget = [4]\nbatch_size = 4\n",
];

/// A step of a path in a TOML document.
#[derive(Clone, Debug, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// The path of every table in `value` (itself included), tables inside arrays too.
fn tables(value: &toml::Value, path: Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
    match value {
        toml::Value::Table(t) => {
            out.push(path.clone());
            for (k, v) in t {
                let mut p = path.clone();
                p.push(Seg::Key(k.clone()));
                tables(v, p, out);
            }
        }
        toml::Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                let mut p = path.clone();
                p.push(Seg::Index(i));
                tables(v, p, out);
            }
        }
        _ => {}
    }
}

/// The table at `path`.
fn table_at<'a>(value: &'a mut toml::Value, path: &[Seg]) -> &'a mut toml::Table {
    let mut v = value;
    for seg in path {
        v = match seg {
            Seg::Key(k) => v.as_table_mut().unwrap().get_mut(k).unwrap(),
            Seg::Index(i) => v.as_array_mut().unwrap().get_mut(*i).unwrap(),
        };
    }
    v.as_table_mut().unwrap()
}

/// `a.b[0].c` for a path of keys and indices.
fn dotted(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if s.is_empty() => s.push_str(k),
            Seg::Key(k) => {
                s.push('.');
                s.push_str(k)
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// A key no config knows (config keys are lower case), or a typo of one of the table's own keys:
/// the same name with an upper-case letter inserted (`density` → `dEnsity`).
#[derive(Clone, Debug)]
enum Unknown {
    Fresh(String),
    Typo(prop::sample::Index, prop::sample::Index, char),
}

fn unknown() -> impl Strategy<Value = Unknown> {
    prop_oneof![
        "[a-z]{0,5}[A-Z][a-z_]{0,5}".prop_map(Unknown::Fresh),
        (
            any::<prop::sample::Index>(),
            any::<prop::sample::Index>(),
            prop::char::range('A', 'Z')
        )
            .prop_map(|(k, at, c)| Unknown::Typo(k, at, c)),
    ]
}

/// The unknown name for `table`, and whether it is a typo of one of its keys.
fn unknown_name(u: &Unknown, table: &toml::Table) -> (String, bool) {
    match u {
        Unknown::Typo(k, at, c) if !table.is_empty() => {
            let key = table.keys().nth(k.index(table.len())).unwrap();
            let mut chars: Vec<char> = key.chars().collect();
            chars.insert(at.index(chars.len() + 1), *c);
            (chars.into_iter().collect(), true)
        }
        Unknown::Typo(..) => ("someKey".into(), false),
        Unknown::Fresh(name) => (name.clone(), false),
    }
}

/// The path of every table of `document`.
fn every_table(document: &toml::Value) -> Vec<Vec<Seg>> {
    let mut paths = Vec::new();
    tables(document, Vec::new(), &mut paths);
    paths
}

/// `document` as text with an unknown key (`u`) set to `value` in the table at `at`; the key's
/// name, and whether it is a typo of one of the table's keys.
fn with_unknown(
    document: &toml::Value,
    at: &[Seg],
    u: &Unknown,
    value: toml::Value,
) -> (String, String, bool) {
    let mut doc = document.clone();
    let table = table_at(&mut doc, at);
    let (name, typo) = unknown_name(u, table);
    table.insert(name.clone(), value);
    (toml::to_string(&doc).unwrap(), name, typo)
}

/// Checks a refused unknown key: its dotted key, and a hint (a did-you-mean for a typo).
fn assert_refused(key: &str, hint: &Option<String>, expected: &str, typo: bool, text: &str) {
    assert_eq!(key, expected, "{text}");
    let hint = hint.as_deref().unwrap_or("");
    assert!(
        hint.contains(if typo { "did you mean" } else { "" }) && !hint.is_empty(),
        "{expected}: hint `{hint}`\n{text}"
    );
}

#[test]
fn unknown_keys_are_refused_at_every_depth_of_every_family() {
    let origin = Origin::File("fuzz.toml".into());
    let mut n = 0;
    for config in FAMILY_CONFIGS {
        load(config, &origin, &[]).unwrap_or_else(|e| panic!("{e}\n{config}"));
        let document = toml::Value::Table(toml::from_str(config).unwrap());
        let paths = every_table(&document);
        assert!(paths.len() >= 5, "{paths:?}");
        n += check(
            (prop::sample::select(paths), unknown(), any::<i64>()),
            |(path, u, value)| {
                let (text, name, typo) =
                    with_unknown(&document, &path, &u, toml::Value::Integer(value));
                let expected = if path.is_empty() {
                    name
                } else {
                    format!("{}.{name}", dotted(&path))
                };
                match load(&text, &origin, &[]) {
                    Err(e @ ConfigError::Invalid { .. }) => {
                        assert_eq!(e.exit_code(), 2);
                        let ConfigError::Invalid { key, hint, .. } = &e else {
                            unreachable!()
                        };
                        assert_refused(key, hint, &expected, typo, &format!("{e}\n{text}"));
                    }
                    other => panic!("{expected} accepted or misreported: {other:?}\n{text}"),
                }
            },
        );
    }
    eprintln!("unknown config keys: {n} cases");
}

/// A sweep file of each family: inline sections holding nested tables, a grid whose values are
/// tables and lists, and explicit cells.
fn family_sweeps() -> Vec<String> {
    let mut sweeps: Vec<String> = FAMILY_CONFIGS
        .iter()
        .map(|c| c.replace("[experiment]\nname = \"f\"\n", "[sweep]\nname = \"f\"\n"))
        .collect();
    sweeps[0].push_str("[grid]\n\"toy.density\" = [{ from = 1.0, to = 0.5, count = 2 }, [1.0, 0.2]]\n\"train.seed\" = [0, 1]\n[[cells]]\n\"toy.importance\" = { decay = 0.8 }\n[[cells]]\n\"toy.n_hidden\" = 1\n");
    sweeps[1].push_str("[grid]\n\"deep_linear.hidden\" = [[2], [3, 2]]\n\"deep_linear.initial_strength\" = [{ from = 0.01, to = 0.1, count = 2 }, [1e-4]]\n");
    sweeps[2].push_str("[grid]\n\"attention.strengths\" = [[2.0, 1.0], [3.0]]\n[[cells]]\n\"attention.d_head\" = { from = 1, to = 2, count = 2 }\n");
    sweeps[3].push_str("[grid]\n\"attention.heads\" = [[1, 2], { from = 1, to = 4, count = 3 }]\n");
    sweeps
}

/// Where an unknown key inserted at `path` of a sweep file is reported: the sweep file's (its own
/// tables, and the config sections laid over the base, checked even where every cell replaces
/// them), or a cell's config (a table inside a grid value or a cell's value).
enum Reported {
    Sweep(String),
    Cell(String),
}

fn reported(path: &[Seg], name: &str) -> Reported {
    let config_key = |key: &str, rest: &[Seg]| {
        let rest = dotted(rest);
        let sep = if rest.starts_with('[') || rest.is_empty() {
            ""
        } else {
            "."
        };
        Reported::Cell(format!("{key}{sep}{rest}.{name}"))
    };
    // A key of [grid] or [[cells]] is a dotted config key: one starting with a config section
    // (a typo further in, `toy.iPmportance`) is the cell's config's to refuse.
    let mut sections = vec!["experiment", "train"];
    sections.extend(tms_experiments::families::names());
    let swept = |sweep_key: String| {
        if sections.contains(&name.split('.').next().unwrap_or("")) {
            Reported::Cell(name.to_string())
        } else {
            Reported::Sweep(sweep_key)
        }
    };
    match path {
        [] => Reported::Sweep(name.to_string()),
        [Seg::Key(s)] if s == "sweep" => Reported::Sweep(format!("sweep.{name}")),
        [Seg::Key(s)] if s == "grid" => swept(format!("grid.\"{name}\"")),
        [Seg::Key(s), Seg::Index(i)] if s == "cells" => swept(format!("cells[{i}].\"{name}\"")),
        [Seg::Key(s), Seg::Key(key), Seg::Index(_), rest @ ..] if s == "grid" => {
            config_key(key, rest)
        }
        [Seg::Key(s), Seg::Index(_), Seg::Key(key), rest @ ..] if s == "cells" => {
            config_key(key, rest)
        }
        _ => Reported::Sweep(format!("{}.{name}", dotted(path))),
    }
}

#[test]
fn unknown_keys_are_refused_at_every_depth_of_every_sweep_file() {
    let path = Path::new("fuzz-sweep.toml");
    let mut n = 0;
    for text in family_sweeps() {
        let s = sweep::load(&text, path).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(s.cells.len() >= 2, "{text}");
        let document = toml::Value::Table(toml::from_str(&text).unwrap());
        n += check(
            (
                prop::sample::select(every_table(&document)),
                unknown(),
                any::<i64>(),
            ),
            |(at, u, value)| {
                let value = toml::Value::Integer(value);
                // A grid key takes a list of values.
                let value = if at == [Seg::Key("grid".into())] {
                    toml::Value::Array(vec![value])
                } else {
                    value
                };
                let (text, name, _) = with_unknown(&document, &at, &u, value);
                let result = sweep::load(&text, path);
                let Err(e) = result else {
                    panic!("unknown key `{name}` at {at:?} accepted\n{text}")
                };
                assert_eq!(e.exit_code(), 2, "{e}");
                match (reported(&at, &name), &e) {
                    (Reported::Sweep(key), sweep::SweepError::Invalid { problem, .. }) => {
                        assert_refused(
                            &problem.key,
                            &problem.hint,
                            &key,
                            false,
                            &format!("{e}\n{text}"),
                        )
                    }
                    (
                        Reported::Cell(expected),
                        sweep::SweepError::Cell {
                            source: ConfigError::Invalid { key, hint, .. },
                            ..
                        },
                    ) => assert_refused(key, hint, &expected, false, &format!("{e}\n{text}")),
                    (_, e) => panic!("unknown key `{name}` at {at:?} misreported: {e:?}\n{text}"),
                }
            },
        );
    }
    eprintln!("unknown sweep keys: {n} cases");
}
