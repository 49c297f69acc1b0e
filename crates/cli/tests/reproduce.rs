//! `tms reproduce --quick` end to end: every experiment trains, every claim of the paper passes at the
//! reduced scale (but the known deviations below), and the report is written whole. This is the CI
//! run of the main job.

use std::process::Command;

/// Claims that measure a real deviation from the paper at the quick scale, each investigated and
/// reported in the issue notes. They are still checked: each must be present and reported as failed
/// (if one starts passing, this list must shrink). Every other claim must pass.
const KNOWN_DEVIATIONS: &[(&str, &str)] = &[(
    "E9.correlated_jumps_at_loss_drops",
    "the correlated triples reorganise gradually around step 10³ while the loss falls steadily; \
     only the final jump to the octahedron coincides with a loss drop. Seed-dependent, not a \
     setting: over 20 seeds 11 pass (seed 0 does not), and 6–13 of 20 at densities 0.01–0.1, \
     batches 1024–16384, lr 3e-4–3e-3 or plain Adam (e9-correlated.toml)",
)];

#[test]
fn quick_reproduce_passes_every_claim_and_writes_the_report() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let result = Command::new(env!("CARGO_BIN_EXE_tms"))
        .args(["reproduce", "--quick", "--out", out.to_str().unwrap()])
        .output()
        .expect("run tms reproduce");
    let stdout = String::from_utf8_lossy(&result.stdout);
    let stderr = String::from_utf8_lossy(&result.stderr);
    // Exit code 1 exactly when a claim failed (after the report is written); anything else is a crash.
    let expected_code = if KNOWN_DEVIATIONS.is_empty() { 0 } else { 1 };
    assert_eq!(
        result.status.code(),
        Some(expected_code),
        "reproduce --quick:\n{stdout}\n{stderr}"
    );

    let claims: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report/claims.json")).unwrap()).unwrap();
    assert_eq!(claims["scale"], "quick");
    let experiments = claims["experiments"].as_array().unwrap();
    let ids: Vec<&str> = experiments
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    // Every experiment of the paper (E1–E12) and of the follow-ups (S1–S7, A1–A4) is there.
    let expected: Vec<String> = (1..=12)
        .map(|k| format!("E{k}"))
        .chain((1..=7).map(|k| format!("S{k}")))
        .chain((1..=4).map(|k| format!("A{k}")))
        .collect();
    for id in &expected {
        assert!(ids.contains(&id.as_str()), "{id} missing from {ids:?}");
    }
    let mut failed = 0;
    for e in experiments {
        let list = e["claims"].as_array().unwrap();
        assert!(!list.is_empty(), "{} has no claims", e["id"]);
        for c in list {
            let known = KNOWN_DEVIATIONS.iter().any(|(id, _)| c["id"] == *id);
            assert_eq!(
                c["passed"], !known,
                "{}: {} measured {} (criterion {})",
                e["id"], c["id"], c["measured"], c["criterion"]
            );
            failed += known as u64;
        }
    }
    for (id, why) in KNOWN_DEVIATIONS {
        assert!(
            experiments
                .iter()
                .flat_map(|e| e["claims"].as_array().unwrap())
                .any(|c| c["id"] == *id),
            "known deviation {id} ({why}) is no longer reported"
        );
    }
    assert_eq!(
        claims["passed"].as_u64().unwrap() + failed,
        claims["total"].as_u64().unwrap()
    );

    // The report is one self-contained page with a section per experiment and no network references.
    let html = std::fs::read_to_string(out.join("report/index.html")).unwrap();
    for id in &ids {
        assert!(
            html.contains(&format!("id=\"{id}\"")),
            "section {id} missing from the report"
        );
    }
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "the report must not load anything from the network"
    );
    assert!(
        html.matches("<svg").count() >= ids.len(),
        "every experiment has figures inlined"
    );
    // Every run directory is complete.
    for entry in std::fs::read_dir(out.join("runs")).unwrap() {
        let dir = entry.unwrap().path();
        for file in [
            "config.toml",
            "model.safetensors",
            "metrics.json",
            "loss.csv",
        ] {
            assert!(dir.join(file).is_file(), "{} lacks {file}", dir.display());
        }
    }
}
