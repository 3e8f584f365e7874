//! Which cargo features of the runtime a layer kind needs, and which this
//! build has.
//!
//! Each layer kind belongs to a numeric path (`f32`, `int8`, or neither for
//! the shape-only kinds such as [`LayerDef::SaveSkip`](super::LayerDef::SaveSkip))
//! and to a family: the dense family (dense, activations, tables, softmax,
//! skips) comes with its numeric path; `recurrent`, `attention` and
//! `classical`, `conv` and `seq2seq` are features of their own (`classical` is f32
//! only and turns `f32` on; `seq2seq` turns `recurrent` on). The loader rejects a kind this build leaves out with
//! [`Error::UnsupportedLayer`](crate::Error::UnsupportedLayer), naming the
//! feature; [`Features`] of a loaded model is the exact set it needs.

use core::fmt;

use super::Numeric;

/// A set of the runtime's layer-family features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Features(u8);

impl Features {
    /// Nothing.
    pub const NONE: Features = Features(0);
    /// The f32 numeric path (feature `f32`).
    pub const F32: Features = Features(1);
    /// The integer-only int8 path (feature `int8`).
    pub const INT8: Features = Features(2);
    /// Recurrent layers (feature `recurrent`).
    pub const RECURRENT: Features = Features(4);
    /// Token layers and attention (feature `attention`).
    pub const ATTENTION: Features = Features(8);
    /// Classical layers (feature `classical`, f32 only).
    pub const CLASSICAL: Features = Features(16);
    /// Convolutions and 2-D pooling (feature `conv`).
    pub const CONV: Features = Features(32);
    /// Encoder-decoder models' decoder (feature `seq2seq`, with `recurrent`).
    pub const SEQ2SEQ: Features = Features(64);

    /// Every layer feature: the runtime's default build.
    pub const EVERY: Features = Features(127);

    /// Every feature, in the order [`Features::names`] lists them.
    const ALL: [(Features, &'static str); 7] = [
        (Features::F32, "f32"),
        (Features::INT8, "int8"),
        (Features::RECURRENT, "recurrent"),
        (Features::ATTENTION, "attention"),
        (Features::CLASSICAL, "classical"),
        (Features::CONV, "conv"),
        (Features::SEQ2SEQ, "seq2seq"),
    ];

    /// The features this build of the runtime was compiled with.
    pub const BUILD: Features = Features(
        (cfg!(feature = "f32") as u8)
            | (cfg!(feature = "int8") as u8) << 1
            | (cfg!(feature = "recurrent") as u8) << 2
            | (cfg!(feature = "attention") as u8) << 3
            | (cfg!(feature = "classical") as u8) << 4
            | (cfg!(feature = "conv") as u8) << 5
            | (cfg!(feature = "seq2seq") as u8) << 6,
    );

    /// Both sets.
    pub const fn with(self, other: Features) -> Features {
        Features(self.0 | other.0)
    }

    /// The features in both sets.
    pub const fn and(self, other: Features) -> Features {
        Features(self.0 & other.0)
    }

    /// Whether every feature of `other` is in `self`.
    pub const fn contains(self, other: Features) -> bool {
        self.0 & other.0 == other.0
    }

    /// The numeric path's feature.
    pub const fn of_numeric(numeric: Numeric) -> Features {
        match numeric {
            Numeric::F32 => Features::F32,
            Numeric::Int8 => Features::INT8,
        }
    }

    /// What the layer kind with postcard tag `tag` (its index in
    /// [`LayerDef`](super::LayerDef), see [`LayerDef::tag`](super::LayerDef::tag))
    /// needs; nothing for tags past the last kind.
    pub const fn of_kind(tag: u32) -> Features {
        match tag {
            0 | 1 | 6 => Features::F32,
            2 | 3 | 4 | 7 => Features::INT8,
            5 => Features::NONE,
            8..=11 => Features::CLASSICAL.with(Features::F32),
            12 => Features::RECURRENT.with(Features::F32),
            13 => Features::RECURRENT.with(Features::INT8),
            14 | 23 | 24 => Features::ATTENTION,
            15 | 17 | 19 | 21 => Features::ATTENTION.with(Features::F32),
            16 | 18 | 20 | 22 => Features::ATTENTION.with(Features::INT8),
            25 => Features::CONV.with(Features::F32),
            26 => Features::CONV.with(Features::INT8),
            27 => Features::CONV,
            28 => Features::SEQ2SEQ
                .with(Features::RECURRENT)
                .with(Features::F32),
            29 => Features::SEQ2SEQ
                .with(Features::RECURRENT)
                .with(Features::INT8),
            _ => Features::NONE,
        }
    }

    /// The first feature of `self` that `build` lacks (families before
    /// numeric paths: the family is the more useful thing to name).
    pub fn missing_from(self, build: Features) -> Option<Features> {
        let lacking = self.0 & !build.0;
        // Bits above the numeric paths' first, then the paths; the lowest one.
        let family = lacking & !3;
        let bits = if family != 0 { family } else { lacking };
        (bits != 0).then_some(Features(bits & bits.wrapping_neg()))
    }

    /// The features' cargo names, numeric paths first.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Features::ALL
            .into_iter()
            .filter(move |(f, _)| self.contains(*f))
            .map(|(_, name)| name)
    }
}

/// The cargo feature list, e.g. `"int8", "recurrent"`.
impl fmt::Display for Features {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, name) in self.names().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "\"{name}\"")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_is_every_named_feature_and_the_default_build() {
        let union = Features::ALL
            .iter()
            .fold(Features::NONE, |u, &(f, _)| u.with(f));
        assert_eq!(union, Features::EVERY);
        assert_eq!(Features::EVERY.names().count(), Features::ALL.len());
        // The tests build the runtime with its default features.
        assert_eq!(Features::BUILD, Features::EVERY);
    }
}
