//! Checkpoints: every [`InstanceState`] of a piece of a sweep cell, in one checksummed binary file.
//!
//! A checkpoint holds all that is needed to continue training exactly — parameters, optimiser
//! moments and step, the training stream's four state words, step, history, status — so a sweep
//! resumed from one gives results bit-identical to an uninterrupted run. Floats are stored as their
//! little-endian bits, never printed, so nothing is rounded.
//!
//! ```text
//! magic      8 bytes  "TMSCKPT1"
//! length     u64      bytes of the payload
//! payload             see below
//! checksum   u64      FNV-1a 64 of the payload
//!
//! payload:
//!   config     u64    fingerprint (FNV-1a 64) of the cell's resolved config text
//!   start, end u64    the instance indices [start, end) this file covers
//!   count      u64    number of states (instances × replicas)
//!   per state: seed, instance, replica u64 · step u64 · status u8 (0 running, 1 finished,
//!              2 diverged + step u64 + loss f64) · rng state 4 × u64 · parameters (u64 len, f32…) ·
//!              optimiser step u64 · first moment (u64 len, f32…) · second moment (u64 len, f32…) ·
//!              history (u64 rows; per row: step u64, loss f64, observables (u64 len, f64…))
//! ```
//!
//! All integers and floats are little-endian. Decoding checks the magic, the length and the checksum
//! first, then every length against the bytes left, so a truncated, bit-flipped or foreign file is an
//! error, never a panic or a huge allocation. This module does no training and knows nothing of
//! sweeps; it only turns states into bytes and back.

use crate::output::{write_atomically, OutputError};
use std::ops::Range;
use std::path::Path;
use tms_engine::optim::OptimizerState;
use tms_engine::rng::{InstanceKey, StreamRng};
use tms_engine::train::{HistoryRow, InstanceState, Status};

/// First bytes of every checkpoint file.
pub const MAGIC: &[u8; 8] = b"TMSCKPT1";

/// The states of instances `instances` of one cell (every replica of each), at some step.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// [`fnv1a64`] of the cell's resolved config text: a checkpoint of another config is refused.
    pub config: u64,
    /// The instance indices covered, `[start, end)`.
    pub instances: Range<u64>,
    /// The states, instance by instance, replicas in order (the layout of `run::initial_states`).
    pub states: Vec<InstanceState>,
}

impl Checkpoint {
    /// Whether every state has stopped (finished or diverged).
    pub fn is_complete(&self) -> bool {
        self.states.iter().all(|s| s.status != Status::Running)
    }
}

/// Why bytes are not a valid checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

/// FNV-1a, 64 bits: the checksum of checkpoints and the fingerprint of configs and cells. Any change
/// of a single byte changes the hash (each step is a bijection of the running state).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The file's bytes.
pub fn encode(checkpoint: &Checkpoint) -> Vec<u8> {
    encode_states(checkpoint.config, &checkpoint.instances, &checkpoint.states)
}

/// The file's bytes for borrowed states (no copy of the states needed to checkpoint).
pub fn encode_states(config: u64, instances: &Range<u64>, states: &[InstanceState]) -> Vec<u8> {
    let mut p = Vec::new();
    let u64s = |p: &mut Vec<u8>, v: u64| p.extend_from_slice(&v.to_le_bytes());
    let f32s = |p: &mut Vec<u8>, v: &[f32]| {
        p.extend_from_slice(&(v.len() as u64).to_le_bytes());
        for x in v {
            p.extend_from_slice(&x.to_le_bytes());
        }
    };
    u64s(&mut p, config);
    u64s(&mut p, instances.start);
    u64s(&mut p, instances.end);
    u64s(&mut p, states.len() as u64);
    for s in states {
        u64s(&mut p, s.key.seed);
        u64s(&mut p, s.key.instance);
        u64s(&mut p, s.key.replica);
        u64s(&mut p, s.step);
        match s.status {
            Status::Running => p.push(0),
            Status::Finished => p.push(1),
            Status::Diverged { step, loss } => {
                p.push(2);
                u64s(&mut p, step);
                p.extend_from_slice(&loss.to_le_bytes());
            }
        }
        for w in s.rng.state() {
            u64s(&mut p, w);
        }
        f32s(&mut p, &s.parameters);
        u64s(&mut p, s.optimizer.step);
        f32s(&mut p, &s.optimizer.first_moment);
        f32s(&mut p, &s.optimizer.second_moment);
        u64s(&mut p, s.history.len() as u64);
        for row in &s.history {
            u64s(&mut p, row.step);
            p.extend_from_slice(&row.loss.to_le_bytes());
            u64s(&mut p, row.observables.len() as u64);
            for v in &row.observables {
                p.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
    let mut out = Vec::with_capacity(p.len() + 24);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(p.len() as u64).to_le_bytes());
    out.extend_from_slice(&p);
    out.extend_from_slice(&fnv1a64(&p).to_le_bytes());
    out
}

/// A bounds-checked little-endian reader: every read fails cleanly past the end.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < n {
            return Err(DecodeError(format!(
                "truncated: {what} needs {n} bytes, {} left",
                self.bytes.len()
            )));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn u64(&mut self, what: &str) -> Result<u64, DecodeError> {
        let b = self.take(8, what)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    fn f64(&mut self, what: &str) -> Result<f64, DecodeError> {
        Ok(f64::from_bits(self.u64(what)?))
    }

    /// A length prefix for items of `size` bytes, checked against the bytes left.
    fn len(&mut self, size: usize, what: &str) -> Result<usize, DecodeError> {
        let n = self.u64(what)?;
        if n.saturating_mul(size as u64) > self.bytes.len() as u64 {
            return Err(DecodeError(format!(
                "{what}: length {n} exceeds the {} bytes left",
                self.bytes.len()
            )));
        }
        Ok(n as usize)
    }

    fn f32s(&mut self, what: &str) -> Result<Vec<f32>, DecodeError> {
        let n = self.len(4, what)?;
        Ok(self
            .take(n * 4, what)?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

/// Parses and checks a checkpoint file's bytes.
pub fn decode(bytes: &[u8]) -> Result<Checkpoint, DecodeError> {
    let mut r = Reader { bytes };
    if r.take(8, "magic")? != MAGIC {
        return Err(DecodeError("not a tms checkpoint (bad magic)".into()));
    }
    let length = r.u64("length")?;
    if length.saturating_add(8) != r.bytes.len() as u64 {
        return Err(DecodeError(format!(
            "torn file: header says {length} payload bytes + 8 checksum bytes, found {} bytes",
            r.bytes.len()
        )));
    }
    let payload = r.take(length as usize, "payload")?;
    let stored = r.u64("checksum")?;
    let actual = fnv1a64(payload);
    if stored != actual {
        return Err(DecodeError(format!(
            "checksum mismatch (stored {stored:016x}, computed {actual:016x})"
        )));
    }
    let mut r = Reader { bytes: payload };
    let config = r.u64("config fingerprint")?;
    let start = r.u64("first instance")?;
    let end = r.u64("end instance")?;
    // A state takes at least 8·4 + 1 + 8·4 + 8·5 bytes; bounds the allocation below.
    let count = r.len(105, "state count")?;
    let mut states = Vec::with_capacity(count);
    for _ in 0..count {
        let key = InstanceKey {
            seed: r.u64("seed")?,
            instance: r.u64("instance")?,
            replica: r.u64("replica")?,
        };
        let step = r.u64("step")?;
        let status = match r.take(1, "status")?[0] {
            0 => Status::Running,
            1 => Status::Finished,
            2 => Status::Diverged {
                step: r.u64("divergence step")?,
                loss: r.f64("divergence loss")?,
            },
            other => return Err(DecodeError(format!("unknown status tag {other}"))),
        };
        let mut words = [0u64; 4];
        for w in &mut words {
            *w = r.u64("rng state")?;
        }
        let parameters = r.f32s("parameters")?;
        let optimizer = OptimizerState {
            step: r.u64("optimiser step")?,
            first_moment: r.f32s("first moment")?,
            second_moment: r.f32s("second moment")?,
        };
        let rows = r.len(24, "history rows")?;
        let mut history = Vec::with_capacity(rows);
        for _ in 0..rows {
            let step = r.u64("history step")?;
            let loss = r.f64("history loss")?;
            let n = r.len(8, "observables")?;
            let observables = (0..n)
                .map(|_| r.f64("observable"))
                .collect::<Result<_, _>>()?;
            history.push(HistoryRow {
                step,
                loss,
                observables,
            });
        }
        states.push(InstanceState {
            key,
            parameters,
            optimizer,
            rng: StreamRng::from_state(words),
            step,
            history,
            status,
        });
    }
    if !r.bytes.is_empty() {
        return Err(DecodeError(format!(
            "{} unexpected bytes after the last state",
            r.bytes.len()
        )));
    }
    Ok(Checkpoint {
        config,
        instances: start..end,
        states,
    })
}

/// Writes a checkpoint of `states` atomically (temporary file, fsync, rename).
pub fn write(
    path: &Path,
    config: u64,
    instances: &Range<u64>,
    states: &[InstanceState],
) -> Result<(), OutputError> {
    write_atomically(path, &encode_states(config, instances, states))
}

/// Reads and checks a checkpoint; a torn or corrupt file is [`OutputError::Corrupt`] naming `path`.
pub fn read(path: &Path) -> Result<Checkpoint, OutputError> {
    let bytes = std::fs::read(path).map_err(|source| OutputError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode(&bytes).map_err(|e| OutputError::Corrupt {
        path: path.to_path_buf(),
        reason: e.0,
    })
}

/// Checks that `checkpoint` continues `fresh` (the states a new run would start from): same config
/// fingerprint, instances, keys and parameter counts, steps within `steps`. Returns what differs.
pub fn check_matches(
    checkpoint: &Checkpoint,
    config: u64,
    instances: &Range<u64>,
    fresh: &[InstanceState],
    steps: u64,
) -> Result<(), String> {
    if checkpoint.config != config {
        return Err("it belongs to a different config".into());
    }
    if &checkpoint.instances != instances {
        return Err(format!(
            "it covers instances {:?}, expected {instances:?}",
            checkpoint.instances
        ));
    }
    if checkpoint.states.len() != fresh.len() {
        return Err(format!(
            "it holds {} states, expected {}",
            checkpoint.states.len(),
            fresh.len()
        ));
    }
    for (s, f) in checkpoint.states.iter().zip(fresh) {
        let n = f.parameters.len();
        let moments_ok = |v: &Vec<f32>| v.is_empty() || v.len() == n;
        if s.key != f.key
            || s.parameters.len() != n
            || !moments_ok(&s.optimizer.first_moment)
            || !moments_ok(&s.optimizer.second_moment)
            || s.step > steps
            || (s.status == Status::Finished && s.step != steps)
        {
            return Err(format!(
                "its state of instance {} replica {} does not fit this config",
                s.key.instance, s.key.replica
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        let key = InstanceKey {
            seed: 3,
            instance: 5,
            replica: 1,
        };
        let mut rng = key.stream(tms_engine::rng::StreamPurpose::TrainingData);
        rng.next_word();
        Checkpoint {
            config: 42,
            instances: 5..6,
            states: vec![
                InstanceState {
                    key,
                    parameters: vec![1.5, -0.0, f32::MIN_POSITIVE],
                    optimizer: OptimizerState {
                        step: 7,
                        first_moment: vec![0.1, 0.2, 0.3],
                        second_moment: vec![0.4, 0.5, 0.6],
                    },
                    rng,
                    step: 7,
                    history: vec![HistoryRow {
                        step: 0,
                        loss: 0.25,
                        observables: vec![1.0, f64::NAN],
                    }],
                    status: Status::Diverged {
                        step: 7,
                        loss: f64::INFINITY,
                    },
                },
                InstanceState {
                    key: InstanceKey { replica: 2, ..key },
                    parameters: vec![2.0; 3],
                    optimizer: OptimizerState::default(),
                    rng: StreamRng::seed_from_u64(9),
                    step: 10,
                    history: vec![],
                    status: Status::Finished,
                },
            ],
        }
    }

    #[test]
    fn round_trips_bit_for_bit() {
        let c = sample();
        let bytes = encode(&c);
        let back = decode(&bytes).unwrap();
        // NaN ≠ NaN, so compare the re-encoded bytes.
        assert_eq!(encode(&back), bytes);
        assert_eq!(back.states[1], c.states[1]);
        assert!(back.is_complete());
    }

    #[test]
    fn every_truncation_and_every_byte_flip_is_detected() {
        let bytes = encode(&sample());
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "truncated to {len}");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(decode(&b).is_err(), "flip at byte {i}");
        }
    }
}
