//! Residual (skip) connections: save the current tensor into a slot, add it
//! back later. Part of the dense family, on either numeric path.
//!
//! Validation records each slot's width when it is saved; an add (or the
//! classical squared-error layer) must read a slot saved with its own width.
//! Each slot's arena space is the widest tensor ever saved into it.

use super::{Io, Out, Plan};
use crate::error::{Error, Result};
use crate::format::{LayerDef, Rescale, MAX_SKIP_SLOTS};
use crate::quant::{rescale, saturate_i8};

/// A validated skip layer.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Skip {
    Save(u8),
    #[cfg(feature = "f32")]
    AddF32(u8),
    #[cfg(feature = "int8")]
    AddI8 {
        slot: u8,
        input: Rescale,
        skip: Rescale,
        output_zero_point: i8,
    },
}

/// What validation knows of the slots.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slots {
    /// Width of the tensor last saved into each slot (0: never saved).
    width: [usize; MAX_SKIP_SLOTS],
    /// Widest tensor saved into each slot.
    capacity: [usize; MAX_SKIP_SLOTS],
}

impl Slots {
    /// No slot saved yet.
    pub(crate) const fn new() -> Self {
        Slots {
            width: [0; MAX_SKIP_SLOTS],
            capacity: [0; MAX_SKIP_SLOTS],
        }
    }

    /// A slot index, checked.
    pub(crate) fn index(at: u32, slot: u8) -> Result<usize> {
        let s = usize::from(slot);
        if s < MAX_SKIP_SLOTS {
            Ok(s)
        } else {
            Err(Error::BadSkipSlot { layer: at })
        }
    }

    /// Check that `slot` holds a tensor of `width` values.
    pub(crate) fn check_read(&self, at: u32, slot: u8, width: usize) -> Result<()> {
        if self.width[Self::index(at, slot)?] != width {
            return Err(Error::BadSkipSlot { layer: at });
        }
        Ok(())
    }

    /// Element offsets of the slots in the slot area, and its total elements.
    pub(crate) fn layout(&self) -> ([u32; MAX_SKIP_SLOTS], usize) {
        let mut offsets = [0u32; MAX_SKIP_SLOTS];
        let mut offset = 0usize;
        for (o, &capacity) in offsets.iter_mut().zip(&self.capacity) {
            // At most MAX_SKIP_SLOTS x MAX_TENSOR elements: fits a u32.
            *o = offset as u32;
            offset += capacity;
        }
        (offsets, offset)
    }
}

/// Validate a skip definition (`None`: not a skip layer).
pub(crate) fn validate(
    at: u32,
    def: &LayerDef<'_>,
    plan: &mut Plan<'_, '_>,
) -> Option<Result<Skip>> {
    let width = plan.width;
    let layer = match *def {
        LayerDef::SaveSkip { slot } => Slots::index(at, slot).map(|s| {
            plan.slots.width[s] = width;
            plan.slots.capacity[s] = plan.slots.capacity[s].max(width);
            Skip::Save(slot)
        }),
        #[cfg(feature = "f32")]
        LayerDef::AddSkipF32 { slot } => plan
            .slots
            .check_read(at, slot, width)
            .map(|()| Skip::AddF32(slot)),
        #[cfg(feature = "int8")]
        LayerDef::AddSkipI8 {
            slot,
            input,
            skip,
            output_zero_point,
        } => (|| {
            plan.slots.check_read(at, slot, width)?;
            super::check_rescale(at, &input)?;
            super::check_rescale(at, &skip)?;
            Ok(Skip::AddI8 {
                slot,
                input,
                skip,
                output_zero_point,
            })
        })(),
        _ => return None,
    };
    Some(layer)
}

/// `rescale(q - zero_point)` of a Rescale.
#[cfg(feature = "int8")]
#[inline]
pub(crate) fn apply(r: &Rescale, q: i8) -> i32 {
    rescale(
        i32::from(q) - i32::from(r.zero_point),
        r.multiplier,
        r.shift,
    )
}

impl Skip {
    /// Short name for reports.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Skip::Save(_) => "save skip",
            #[cfg(feature = "f32")]
            Skip::AddF32(_) => "add skip f32",
            #[cfg(feature = "int8")]
            Skip::AddI8 { .. } => "add skip int8",
        }
    }

    /// Run on either path (`add` is the numeric path's residual add).
    pub(crate) fn run<T: Copy>(&self, io: Io<'_, T>) -> Result<Out> {
        if let Skip::Save(slot) = *self {
            let (x, saved) = io.x_and_slot(slot)?;
            saved.iter_mut().zip(x.iter()).for_each(|(s, &v)| *s = v);
        }
        Ok(Out::InPlace)
    }

    #[cfg(feature = "f32")]
    pub(crate) fn run_f32(&self, io: Io<'_, f32>) -> Result<Out> {
        match *self {
            Skip::AddF32(slot) => {
                let (x, saved) = io.x_and_slot(slot)?;
                x.iter_mut().zip(saved.iter()).for_each(|(v, &s)| *v += s);
                Ok(Out::InPlace)
            }
            _ => self.run(io),
        }
    }

    #[cfg(feature = "int8")]
    pub(crate) fn run_i8(&self, io: Io<'_, i8>) -> Result<Out> {
        match *self {
            Skip::AddI8 {
                slot,
                input,
                skip,
                output_zero_point,
            } => {
                let (x, saved) = io.x_and_slot(slot)?;
                for (v, &s) in x.iter_mut().zip(saved.iter()) {
                    let sum = apply(&input, *v).saturating_add(apply(&skip, s));
                    *v = saturate_i8(sum.saturating_add(i32::from(output_zero_point)));
                }
                Ok(Out::InPlace)
            }
            _ => self.run(io),
        }
    }
}
