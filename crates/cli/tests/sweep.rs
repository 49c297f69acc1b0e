//! End-to-end tests of `tms sweep` and `tms merge` through the real binary: resume after SIGKILL at
//! many points, SIGINT clean stop, shards run as separate processes and merged (for a sweep of each
//! model family), corrupt files, and bad input (exit code 2, nothing written).
//!
//! No test sleeps for a fixed time: a run is killed after it has *reported* a given number of
//! checkpoints or cells (`-v` prints one line per event), and every wait is bounded.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const TMS: &str = env!("CARGO_BIN_EXE_tms");
/// Longest wait for one line of output from a running sweep.
const LINE_TIMEOUT: Duration = Duration::from_secs(120);

fn tms(args: &[&str]) -> Output {
    Command::new(TMS).args(args).output().expect("run tms")
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

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every file under `dir` (relative path → bytes), except checkpoints and leftovers of killed
/// writes (hidden staging names).
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with('.') || name == "checkpoints" {
                continue;
            }
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .to_string();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn assert_same_tree(a: &Path, b: &Path) {
    let (ta, tb) = (tree(a), tree(b));
    assert_eq!(
        ta.keys().collect::<Vec<_>>(),
        tb.keys().collect::<Vec<_>>(),
        "{} and {} hold different files",
        a.display(),
        b.display()
    );
    for (name, bytes) in &ta {
        assert!(
            bytes == &tb[name],
            "{name} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
    assert!(ta.contains_key("results.csv") && ta.contains_key("results.json"));
}

/// 3 cells (seed × 1) of 2 densities × 2 replicas; `steps` steps, a checkpoint every `every`.
fn write_sweep(dir: &Path, name: &str, steps: u64, every: u64, batch: usize) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"[sweep]
name = "{name}"
checkpoint_every = {every}
[train]
steps = {steps}
learning_rate = 1e-2
replicas = 2
log_every = 25
[toy]
model = "relu-output"
n_features = 8
n_hidden = 3
importance = {{ decay = 0.9 }}
density = [1.0, 0.1]
batch_size = {batch}
evaluation_batch_size = 512
[grid]
"train.seed" = [0, 1, 2]
"#
        ),
    )
    .unwrap();
    path
}

/// A running `tms sweep … -v` whose stderr lines arrive on a channel.
struct Running {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
}

fn spawn(args: &[&str]) -> Running {
    let mut child = Command::new(TMS)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tms");
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Running { child, lines }
}

impl Running {
    /// Waits for the `n`-th line containing `pattern`; false if the process ended first.
    fn wait_for(&self, pattern: &str, n: usize) -> bool {
        let mut seen = 0;
        while seen < n {
            match self.lines.recv_timeout(LINE_TIMEOUT) {
                Ok(line) if line.contains(pattern) => seen += 1,
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return false,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("no output from tms for {LINE_TIMEOUT:?}")
                }
            }
        }
        true
    }

    /// The rest of stderr, once the process has exited.
    fn finish(mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.wait().unwrap();
        let rest: Vec<String> = self.lines.iter().collect();
        (status, rest.join("\n"))
    }
}

/// A fixed pseudo-random sequence (xorshift), so the kill points are the same on every run.
fn kill_points(count: usize, max: u64, mut state: u64) -> Vec<usize> {
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            1 + (state % max) as usize
        })
        .collect()
}

#[test]
fn sigkill_at_random_points_then_resume_gives_identical_results() {
    let tmp = tempfile::tempdir().unwrap();
    // 3 cells × 4 engine instances, 800 steps, a checkpoint every 20: 3 × 39 checkpoints to kill
    // between. Each round is killed after its k-th checkpoint (k ≤ 12), so 8 rounds fit.
    let sweep = write_sweep(tmp.path(), "kills", 800, 20, 128);
    let reference = tmp.path().join("reference");
    ok(&["sweep", s(&sweep), "--out", s(&reference)]);

    let dir = tmp.path().join("killed");
    let points = kill_points(8, 12, 0x9E37_79B9_7F4A_7C15);
    let mut kills = 0;
    for (round, &point) in points.iter().enumerate() {
        let mut run = spawn(&["sweep", s(&sweep), "--out", s(&dir), "-v"]);
        if run.wait_for("checkpoint at step", point) {
            run.child.kill().unwrap(); // SIGKILL, at whatever the process is doing by now
            if !run.child.wait().unwrap().success() {
                kills += 1;
            }
        } else {
            let (status, _) = run.finish();
            assert!(status.success(), "round {round}: run ended with {status}");
        }
    }
    assert!(
        kills >= 5,
        "only {kills} of {} rounds were killed mid-run",
        points.len()
    );
    ok(&["sweep", s(&sweep), "--out", s(&dir)]);
    assert_same_tree(&reference, &dir);

    // The same with a cell split by instance (5 shards > 3 cells): shard 2/5 is killed repeatedly
    // while its part is checkpointed, then every shard finishes and the merge equals the reference.
    let shards: Vec<PathBuf> = (0..5)
        .map(|k| tmp.path().join(format!("shard{k}")))
        .collect();
    let shard_points = kill_points(4, 12, 0x2545_F491_4F6C_DD1D);
    let mut shard_kills = 0;
    for &point in &shard_points {
        let mut run = spawn(&[
            "sweep",
            s(&sweep),
            "--out",
            s(&shards[2]),
            "--shard",
            "2/5",
            "-v",
        ]);
        if run.wait_for("checkpoint at step", point) {
            run.child.kill().unwrap();
            if !run.child.wait().unwrap().success() {
                shard_kills += 1;
            }
        } else {
            assert!(run.finish().0.success());
        }
    }
    for (k, d) in shards.iter().enumerate() {
        ok(&[
            "sweep",
            s(&sweep),
            "--out",
            s(d),
            "--shard",
            &format!("{k}/5"),
        ]);
    }
    let merged = tmp.path().join("merged");
    let mut args = vec!["merge", s(&merged)];
    args.extend(shards.iter().map(|d| s(d)));
    ok(&args);
    assert_same_tree(&reference, &merged);
    eprintln!(
        "SIGKILL/resume rounds: {kills} (whole sweep, after checkpoints {points:?}) + {shard_kills} (shard 2/5, after {shard_points:?})"
    );
}

#[test]
fn sigint_stops_cleanly_with_a_checkpoint_and_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    // One long cell, so the stop lands inside it: 4000 steps at batch 1024, a checkpoint every 50.
    let path = tmp.path().join("long.toml");
    std::fs::write(
        &path,
        r#"[sweep]
checkpoint_every = 50
[train]
steps = 4000
learning_rate = 1e-2
log_every = 50
[toy]
model = "relu-output"
n_features = 20
n_hidden = 5
density = [0.3, 0.1]
batch_size = 1024
evaluation_batch_size = 2048
[[cells]]
"train.seed" = 7
"#,
    )
    .unwrap();
    let reference = tmp.path().join("reference");
    ok(&["sweep", s(&path), "--out", s(&reference)]);

    let dir = tmp.path().join("interrupted");
    let mut run = spawn(&["sweep", s(&path), "--out", s(&dir), "-v"]);
    assert!(
        run.wait_for("checkpoint at step", 3),
        "the sweep ended before its third checkpoint"
    );
    let pid = run.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let (status, stderr) = {
        let status = run.child.wait().unwrap();
        let rest: Vec<String> = run.lines.iter().collect();
        (status, rest.join("\n"))
    };
    assert_eq!(status.code(), Some(130), "stderr:\n{stderr}");
    assert!(
        stderr.contains("re-run the same command to resume"),
        "{stderr}"
    );
    let checkpoints: Vec<_> = std::fs::read_dir(dir.join("checkpoints"))
        .unwrap()
        .collect();
    assert_eq!(
        checkpoints.len(),
        1,
        "the interrupted cell left its checkpoint"
    );
    assert!(!dir.join("results.csv").exists());

    let out = ok(&["sweep", s(&path), "--out", s(&dir), "-v"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("resuming at step"), "{stderr}");
    assert_same_tree(&reference, &dir);
}

/// Runs the `n` shards of `sweep` one after another, each in its own process and directory
/// (`{prefix}-shard{k}`); returns the directories.
fn run_shards(sweep: &Path, n: usize, prefix: &Path) -> Vec<PathBuf> {
    (0..n)
        .map(|k| {
            let dir = PathBuf::from(format!("{}-shard{k}", prefix.display()));
            ok(&[
                "sweep",
                s(sweep),
                "--out",
                s(&dir),
                "--shard",
                &format!("{k}/{n}"),
            ]);
            dir
        })
        .collect()
}

#[test]
fn shards_as_separate_processes_merge_into_the_unsharded_results() {
    let tmp = tempfile::tempdir().unwrap();
    let sweep = write_sweep(tmp.path(), "shards", 150, 50, 64);
    let reference = tmp.path().join("reference");
    ok(&["sweep", s(&sweep), "--out", s(&reference)]);
    // N = 2 splits by cell; N = 5 (more shards than the 3 cells) splits by instance.
    for n in [2usize, 5] {
        let dirs = run_shards(&sweep, n, &tmp.path().join(format!("n{n}")));
        let merged = tmp.path().join(format!("merged{n}"));
        let mut args = vec!["merge", s(&merged)];
        // Any order of the shard directories.
        args.extend(dirs.iter().rev().map(|d| s(d)));
        ok(&args);
        assert_same_tree(&reference, &merged);

        // A missing shard: refused, the missing cells listed, nothing written.
        let partial = tmp.path().join(format!("partial{n}"));
        let out = tms(&["merge", s(&partial), s(&dirs[0])]);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("cells are missing") && err.contains("seed="),
            "{err}"
        );
        assert!(!partial.exists());
    }
    // Shards of a different sweep are refused.
    let other = write_sweep(tmp.path(), "other", 100, 50, 64);
    let other_dir = tmp.path().join("other-shard");
    ok(&["sweep", s(&other), "--out", s(&other_dir), "--shard", "1/2"]);
    let out = tms(&[
        "merge",
        s(&tmp.path().join("mixed")),
        s(&tmp.path().join("n2-shard0")),
        s(&other_dir),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds a different sweep"));
    assert!(!tmp.path().join("mixed").exists());
}

/// Runs `text` as a sweep unsharded and as three shards in separate processes, merges the shards
/// and checks that the merged directory is byte-identical to the unsharded one. The sweeps below
/// have 2 cells, fewer than the 3 shards, so the shards cut cells into pieces of instances: each
/// family's states go through checkpoints and are assembled, the path where a family could differ.
fn three_shards_merge_into_the_unsharded_sweep(name: &str, text: &str, swept: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let sweep = tmp.path().join(format!("{name}.toml"));
    std::fs::write(&sweep, text).unwrap();
    let reference = tmp.path().join("reference");
    ok(&["sweep", s(&sweep), "--out", s(&reference)]);
    let dirs = run_shards(&sweep, 3, &tmp.path().join("n3"));
    // No shard holds a whole cell: every cell is assembled by the merge.
    for d in &dirs {
        assert!(!d.join("results.csv").exists(), "{}", d.display());
    }
    let merged = tmp.path().join("merged");
    let mut args = vec!["merge", s(&merged)];
    args.extend(dirs.iter().map(|d| s(d)));
    let out = ok(&args);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("2 assembled from parts"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_same_tree(&reference, &merged);
    let csv = std::fs::read_to_string(reference.join("results.csv")).unwrap();
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .starts_with(&format!("cell,{swept},index")),
        "{csv}"
    );
}

#[test]
fn toy_sweep_shards_three_ways_and_merges_byte_identically() {
    // 2 cells (a table and a number as values of `toy.importance`) × 3 densities × 2 replicas.
    three_shards_merge_into_the_unsharded_sweep(
        "toy",
        r#"[sweep]
checkpoint_every = 20
[train]
steps = 60
replicas = 2
log_every = 20
[toy]
model = "relu-output"
n_features = 6
n_hidden = 2
density = [1.0, 0.3, 0.1]
batch_size = 32
evaluation_batch_size = 64
[grid]
"toy.importance" = [{ decay = 0.8 }, 1.0]
"#,
        "toy.importance",
    );
}

#[test]
fn deep_linear_sweep_shards_three_ways_and_merges_byte_identically() {
    // 2 cells (lists as values of `deep_linear.hidden`: one and two hidden layers) × 3 scales.
    three_shards_merge_into_the_unsharded_sweep(
        "deep",
        r#"[sweep]
checkpoint_every = 20
[train]
steps = 60
optimizer = "sgd"
learning_rate = 0.05
log_every = 20
[deep_linear]
dataset = "four-items"
hidden = [4]
start = "gaussian"
scale = [0.01, 0.1, 0.5]
predictions = [{ property = "Fly", item = "Salmon" }]
[grid]
"deep_linear.hidden" = [[4], [3, 2]]
"#,
        "deep_linear.hidden",
    );
}

#[test]
fn attention_sweep_shards_three_ways_and_merges_byte_identically() {
    // 2 cells (lists as values of `attention.strengths`) × 2 head sizes (W_Q, W_K padded to the
    // larger) × 2 repeats, minibatch gradients.
    three_shards_merge_into_the_unsharded_sweep(
        "attention",
        r#"[sweep]
checkpoint_every = 20
[train]
steps = 60
optimizer = "sgd"
learning_rate = 0.01
log_every = 20
[attention]
task = "regression"
d = 4
d_head = [2, 4]
gradient = "minibatch"
batch_size = 8
repeats = 2
[grid]
"attention.strengths" = [[2.0, 1.0], [3.0, 1.0, 0.5]]
"#,
        "attention.strengths",
    );
}

/// Truncates a file to half its length.
fn truncate(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..bytes.len() / 2]).unwrap();
}

/// Flips one bit in the middle of a file.
fn flip(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x04;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn corrupt_files_are_reported_with_their_path() {
    let tmp = tempfile::tempdir().unwrap();
    // One cell split over 2 shards by instance: each shard leaves a finished part (a checkpoint).
    let path = tmp.path().join("one.toml");
    std::fs::write(
        &path,
        "[train]\nsteps = 100\nlog_every = 20\n[toy]\nmodel = \"relu-output\"\nn_features = 5\nn_hidden = 2\ndensity = [1.0, 0.3, 0.1, 0.03]\nbatch_size = 64\nevaluation_batch_size = 256\n[[cells]]\n\"train.seed\" = 1\n",
    )
    .unwrap();
    let reference = tmp.path().join("reference");
    ok(&["sweep", s(&path), "--out", s(&reference)]);
    let shards: Vec<PathBuf> = (0..2)
        .map(|k| tmp.path().join(format!("shard{k}")))
        .collect();
    for (k, d) in shards.iter().enumerate() {
        ok(&[
            "sweep",
            s(&path),
            "--out",
            s(d),
            "--shard",
            &format!("{k}/2"),
        ]);
    }
    let part = |d: &Path| {
        std::fs::read_dir(d.join("checkpoints"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path()
    };
    for (damage, expect) in [
        (truncate as fn(&Path), "torn file"),
        (flip, "checksum mismatch"),
    ] {
        let work: Vec<PathBuf> = shards
            .iter()
            .enumerate()
            .map(|(k, d)| {
                let w = tmp.path().join(format!("work-{expect}-{k}"));
                std::fs::create_dir_all(w.join("checkpoints")).unwrap();
                std::fs::copy(d.join("sweep.json"), w.join("sweep.json")).unwrap();
                std::fs::create_dir_all(w.join("cells")).unwrap();
                std::fs::copy(
                    part(d),
                    w.join("checkpoints").join(part(d).file_name().unwrap()),
                )
                .unwrap();
                w
            })
            .collect();
        let bad = part(&work[1]);
        damage(&bad);
        // merge discards nothing: the corrupt part is an error naming it (exit 1).
        let merged = tmp.path().join(format!("merged-{expect}"));
        let out = tms(&["merge", s(&merged), s(&work[0]), s(&work[1])]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(s(&bad)) && err.contains(expect), "{err}");
        assert!(!merged.join("results.csv").exists());
        // sweep discards it with a warning naming it, retrains that part, and ends identical.
        let out = ok(&["sweep", s(&path), "--out", s(&work[1]), "--shard", "1/2"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("warning: discarding checkpoint") && err.contains(s(&bad)),
            "{err}"
        );
        ok(&["merge", s(&merged), s(&work[0]), s(&work[1])]);
        assert_same_tree(&reference, &merged);
    }

    // A finished cell's files: a torn safetensors, bad JSON — errors naming the file, never used.
    let cell = std::fs::read_dir(reference.join("cells"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for (file, damage) in [
        ("model.safetensors", truncate as fn(&Path)),
        ("metrics.json", flip),
    ] {
        let copy = tmp.path().join(format!("copy-{file}"));
        let cells = copy.join("cells");
        std::fs::create_dir_all(cells.join(cell.file_name().unwrap())).unwrap();
        std::fs::copy(reference.join("sweep.json"), copy.join("sweep.json")).unwrap();
        for f in [
            "config.toml",
            "model.safetensors",
            "metrics.json",
            "loss.csv",
        ] {
            std::fs::copy(cell.join(f), cells.join(cell.file_name().unwrap()).join(f)).unwrap();
        }
        let bad = cells.join(cell.file_name().unwrap()).join(file);
        damage(&bad);
        let out = tms(&["sweep", s(&path), "--out", s(&copy)]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(s(&bad)) && err.contains("corrupt"), "{err}");
        let out = tms(&["merge", s(&tmp.path().join(format!("m-{file}"))), s(&copy)]);
        assert!(String::from_utf8_lossy(&out.stderr).contains(s(&bad)));
    }

    // A corrupt sweep.json: the directory is refused, named.
    let copy = tmp.path().join("copy-sweep-json");
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::write(
        copy.join("sweep.json"),
        "{\"format\": \"tms-sweep-1\", \"cel",
    )
    .unwrap();
    let out = tms(&["sweep", s(&path), "--out", s(&copy)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("corrupt"));
    let out = tms(&["merge", s(&tmp.path().join("m-json")), s(&copy)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(s(&copy.join("sweep.json"))), "{err}");
}

#[test]
fn bad_input_exits_2_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let base = "[train]\nsteps = 10\n[toy]\nmodel = \"relu-output\"\nn_features = 5\nn_hidden = 2\ndensity = 0.5\n";
    // (sweep text, words the message must contain)
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            format!("{base}[grid]\n\"toy.desnity\" = [0.1]\n"),
            vec!["toy.desnity", "did you mean `density`"],
        ),
        (
            format!("{base}[grid]\n\"tooy.density\" = [0.1]\n"),
            vec!["tooy.density", "did you mean `toy`"],
        ),
        (
            format!("{base}[gird]\n\"toy.density\" = [0.1]\n"),
            vec!["gird", "did you mean `grid`"],
        ),
        (
            format!("[sweep]\nchekpoint_every = 5\n{base}"),
            vec!["sweep.chekpoint_every", "did you mean `checkpoint_every`"],
        ),
        (
            format!("[sweep]\ncheckpoint_every = 0\n{base}"),
            vec!["sweep.checkpoint_every", "≥ 1"],
        ),
        (
            format!("{base}[grid]\n\"toy.density\" = [0.5, 1.5]\n"),
            vec!["toy.density", "[0, 1]", "1.5"],
        ),
        (
            format!("{base}[grid]\n\"toy.density\" = [0.0]\n"),
            vec!["toy.density", "0 everywhere"],
        ),
        (
            format!("{base}[grid]\n\"toy.n_hidden\" = [0, 2]\n"),
            vec!["toy.n_hidden", "≥ 1", "found 0"],
        ),
        (
            format!("{base}[grid]\n\"toy.n_features\" = [0]\n"),
            vec!["toy.n_features", "found 0"],
        ),
        (
            format!("{base}[grid]\n\"toy.n_hidden\" = [9]\n"),
            vec!["toy.n_hidden", "toy.n_features = 5"],
        ),
        (
            format!("{base}[grid]\n\"train.learning_rate\" = [-1.0]\n"),
            vec!["train.learning_rate", "> 0"],
        ),
        (
            format!("{base}[grid]\n\"toy.model\" = [\"lineer\"]\n"),
            vec!["toy.model", "did you mean `linear`"],
        ),
        (
            format!("{base}[grid]\n\"toy.n_hidden\" = [\"two\"]\n"),
            vec!["toy.n_hidden", "string"],
        ),
        (
            format!("{base}[grid]\n\"toy.density\" = 0.1\n"),
            vec!["grid.\"toy.density\"", "a list"],
        ),
        (
            format!("{base}[grid]\n\"toy.density\" = []\n"),
            vec!["non-empty"],
        ),
        (
            format!("{base}[grid]\ntoy.density = [0.1]\n"),
            vec!["quoted"],
        ),
        (
            format!("{base}[grid]\n\"train.seed\" = [1, 1]\n"),
            vec!["two cells with"],
        ),
        (
            format!("{base}[grid]\n\"train.seed\" = [1]\n[[cells]]\n\"train.seed\" = 2\n"),
            vec!["not both"],
        ),
        (
            format!("[sweep]\npreset = \"e2-rlu\"\n{base}"),
            vec!["sweep.preset", "did you mean `e2-relu`"],
        ),
        (
            format!("[sweep]\nbase = \"missing.toml\"\n{base}"),
            vec!["missing.toml"],
        ),
        (
            format!("[sweep]\nbase = \"a.toml\"\npreset = \"e1\"\n{base}"),
            vec!["not both"],
        ),
        (format!("{base}[grid\n"), vec!["syntax"]),
        (
            format!("{base}[grid]\n\"toy.density\" = [{{ from = 1.0, to = 0.05, count = 4, spacng = \"linear\" }}]\n"),
            vec!["toy.density.spacng", "did you mean `spacing`"],
        ),
        (
            format!("{base}[grid]\n\"toy.importance\" = [{{ decay = 0.9, scal = 2 }}]\n"),
            vec!["toy.importance.scal", "decay"],
        ),
        (
            format!("{}importance = {{ decay = 0.9, scal = 2 }}\n[grid]\n\"toy.importance\" = [1.0]\n", base),
            vec!["toy.importance.scal", "decay"],
        ),
        (
            format!("{base}[grid]\n\"attention.strenghts\" = [[1.0]]\n"),
            vec!["attention.strenghts", "did you mean `strengths`"],
        ),
        (
            format!("{base}[grid]\n\"toy.density\" = [{{ from = 1.0, to = 0.1, count = 0 }}]\n"),
            vec!["toy.density.count"],
        ),
    ];
    let mut tried = 0;
    for (i, (text, words)) in cases.iter().enumerate() {
        let path = tmp.path().join(format!("bad{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let out_dir = tmp.path().join(format!("out{i}"));
        let out = tms(&["sweep", s(&path), "--out", s(&out_dir)]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "case {i}: {text}\n{err}");
        assert!(
            err.contains(s(&path)) || words.contains(&"missing.toml"),
            "case {i}: no file name in\n{err}"
        );
        for w in words {
            assert!(err.contains(w), "case {i}: `{w}` not in\n{err}");
        }
        assert!(!out_dir.exists(), "case {i}: wrote {}", out_dir.display());
        tried += 1;
    }

    // Bad arguments and directories.
    let good = write_sweep(tmp.path(), "good", 20, 10, 16);
    let other = write_sweep(tmp.path(), "other", 30, 10, 16);
    let done = tmp.path().join("done");
    ok(&["sweep", s(&good), "--out", s(&done)]);
    let before = tree(&done);
    let stranger = tmp.path().join("stranger");
    std::fs::create_dir_all(&stranger).unwrap();
    std::fs::write(stranger.join("notes.txt"), "mine").unwrap();
    let fresh = tmp.path().join("fresh");
    let nowhere = tmp.path().join("nowhere");
    let arg_cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["sweep", s(&good), "--out", s(&fresh), "--shard", "4/4"],
            "--shard",
        ),
        (
            vec!["sweep", s(&good), "--out", s(&fresh), "--shard", "x"],
            "--shard",
        ),
        (
            vec!["sweep", s(&good), "--out", s(&fresh), "--shard", "1/0"],
            "--shard",
        ),
        (
            vec![
                "sweep",
                s(&good),
                "--out",
                s(&fresh),
                "--checkpoint-every",
                "0",
            ],
            "--checkpoint-every",
        ),
        (
            vec!["sweep", "no-such-sweep.toml", "--out", s(&fresh)],
            "no-such-sweep.toml",
        ),
        (
            vec!["sweep", s(&other), "--out", s(&done)],
            "holds a different sweep",
        ),
        (
            vec!["sweep", s(&good), "--out", s(&stranger)],
            "not a sweep directory",
        ),
        (
            vec!["merge", s(&fresh), s(&stranger)],
            "not a sweep directory",
        ),
        (vec!["merge", s(&fresh), s(&nowhere)], "no such directory"),
    ];
    for (args, word) in &arg_cases {
        let out = tms(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(word), "{args:?}: `{word}` not in\n{err}");
        assert!(!fresh.exists(), "{args:?} wrote {}", fresh.display());
        tried += 1;
    }
    assert!(
        tree(&done) == before,
        "a refused run changed {}",
        done.display()
    );
    assert_eq!(std::fs::read_dir(&stranger).unwrap().count(), 1);
    eprintln!("bad inputs tried: {tried}");
}

#[test]
fn sweep_cells_match_tms_train_and_resume_skips_done_cells() {
    let tmp = tempfile::tempdir().unwrap();
    let sweep = write_sweep(tmp.path(), "same", 60, 20, 32);
    let dir = tmp.path().join("dir");
    ok(&["sweep", s(&sweep), "--out", s(&dir)]);
    // A cell's run directory is exactly what `tms train` writes for its config.
    let cell = std::fs::read_dir(dir.join("cells"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let single = tmp.path().join("single");
    ok(&["train", s(&cell.join("config.toml")), "--out", s(&single)]);
    for f in [
        "config.toml",
        "model.safetensors",
        "metrics.json",
        "loss.csv",
    ] {
        assert!(
            std::fs::read(cell.join(f)).unwrap() == std::fs::read(single.join(f)).unwrap(),
            "{f}"
        );
    }
    // Running again trains nothing and changes nothing.
    let before = tree(&dir);
    let out = ok(&["sweep", s(&sweep), "--out", s(&dir)]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 trained now"));
    assert!(tree(&dir) == before);
    let csv = String::from_utf8(std::fs::read(dir.join("results.csv")).unwrap()).unwrap();
    assert!(
        csv.starts_with("cell,train.seed,index,status,evaluation_loss"),
        "{csv}"
    );
    assert_eq!(
        csv.lines().count(),
        1 + 3 * 2,
        "one row per cell × instance"
    );
}
