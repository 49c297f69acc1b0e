//! Value shapes the families share: an [`Axis`] (a number, a list, or a range — one instance per
//! value) and [`NumberListOrTable`], the deserialiser behind every "a number, a list of numbers or a
//! table" key. Its table is a struct that refuses unknown keys, so a typo inside an inline table
//! (`density = { from = 1.0, to = 0.05, count = 4, spacng = "linear" }`) is an error naming
//! `toy.density.spacng`, never silently ignored as an untagged enum would.

use crate::validate::{one_of, require, Invalid};
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::marker::PhantomData;

/// A per-instance axis: `0.1`, `[0.1, 0.01]` or `{ from = 1.0, to = 0.01, count = 5 }`.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Axis {
    /// One value.
    Single(f64),
    /// Explicit values.
    List(Vec<f64>),
    /// `count` values from `from` to `to` inclusive.
    Range {
        /// First value.
        from: f64,
        /// Last value.
        to: f64,
        /// Number of values (≥ 1).
        count: usize,
        /// `geometric` (default) or `linear`.
        spacing: String,
    },
}

/// The table form of an [`Axis`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AxisRange {
    from: f64,
    to: f64,
    count: usize,
    #[serde(default = "default_spacing")]
    spacing: String,
}

fn default_spacing() -> String {
    "geometric".into()
}

impl<'de> Deserialize<'de> for Axis {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(
            match NumberListOrTable::<AxisRange>::deserialize(deserializer, AXIS_EXPECTING)? {
                NumberListOrTable::Number(v) => Axis::Single(v),
                NumberListOrTable::List(v) => Axis::List(v),
                NumberListOrTable::Table(r) => Axis::Range {
                    from: r.from,
                    to: r.to,
                    count: r.count,
                    spacing: r.spacing,
                },
            },
        )
    }
}

const AXIS_EXPECTING: &str =
    "a number, a list of numbers or a range { from, to, count, spacing = \"geometric\" | \"linear\" }";

impl Axis {
    /// The axis' values.
    pub fn values(&self, key: &str) -> Result<Vec<f64>, Invalid> {
        match self {
            Axis::Single(v) => Ok(vec![*v]),
            Axis::List(v) => {
                require(!v.is_empty(), key, "a non-empty list", "[]")?;
                Ok(v.clone())
            }
            Axis::Range {
                from,
                to,
                count,
                spacing,
            } => {
                require(
                    *count >= 1 && *count <= 1_000_000,
                    &format!("{key}.count"),
                    "an integer in [1, 1000000]",
                    count,
                )?;
                let t = |k: usize| {
                    if *count == 1 {
                        0.0
                    } else {
                        k as f64 / (*count - 1) as f64
                    }
                };
                match spacing.as_str() {
                    "geometric" => {
                        require(
                            *from > 0.0 && *to > 0.0,
                            &format!("{key}.from"),
                            "positive ends for geometric spacing",
                            format!("{from} to {to}"),
                        )?;
                        Ok((0..*count).map(|k| from * (to / from).powf(t(k))).collect())
                    }
                    "linear" => Ok((0..*count).map(|k| from + (to - from) * t(k)).collect()),
                    other => Err(one_of(
                        &format!("{key}.spacing"),
                        &["geometric", "linear"],
                        other,
                    )),
                }
            }
        }
    }
}

/// A value written as a number, a list of numbers, or a table `T` (a struct that refuses unknown
/// keys). Serde's untagged enums would try each shape and drop the unknown keys of a table (and
/// the path of the error); this reads the TOML type and deserialises exactly one shape.
pub enum NumberListOrTable<T> {
    /// A number (an integer is taken as a float).
    Number(f64),
    /// A list of numbers.
    List(Vec<f64>),
    /// A table.
    Table(T),
}

impl<'de, T: Deserialize<'de>> NumberListOrTable<T> {
    /// Deserialises one of the three shapes; `expecting` says what is allowed in a type error.
    pub fn deserialize<D: Deserializer<'de>>(
        deserializer: D,
        expecting: &'static str,
    ) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ShapeVisitor {
            expecting,
            table: PhantomData,
        })
    }
}

struct ShapeVisitor<T> {
    expecting: &'static str,
    table: PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for ShapeVisitor<T> {
    type Value = NumberListOrTable<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(NumberListOrTable::Number(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(NumberListOrTable::Number(v as f64))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(NumberListOrTable::Number(v as f64))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        Vec::<f64>::deserialize(SeqAccessDeserializer::new(seq)).map(NumberListOrTable::List)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(NumberListOrTable::Table)
    }
}
