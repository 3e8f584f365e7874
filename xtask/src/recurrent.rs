//! Report lines for recurrent (sequence) models, causal transformers and
//! encoder-decoders: instructions per time step, token or decoded step,
//! state (or key/value cache) and arena RAM, and the firmware's streaming
//! example.

use crate::chip::ChipRun;

/// One line per run of a recurrent model, or `None` for other models.
pub fn describe(runs: &[ChipRun]) -> Option<String> {
    let lines: Vec<String> = runs
        .iter()
        .filter_map(|r| {
            if let Some(f) = r.forecast {
                return Some(format!(
                    "  {} {}: {:.0} instructions/window = encode {:.0} + {} decoded steps x {:.0}, state {} B + arena {} B RAM",
                    r.numeric,
                    r.core.name(),
                    f.per_window,
                    f.encode_per_window,
                    f.horizon,
                    f.per_decoded_step,
                    r.state_bytes,
                    r.arena_bytes
                ));
            }
            let per_step = r.instructions_per_step?;
            let stream = r
                .stream
                .map(|(samples, changes)| {
                    format!(", streaming example: {samples} samples, answer changed {changes} times")
                })
                .unwrap_or_default();
            if r.causal_tokens > 0 {
                return Some(format!(
                    "  {} {}: {:.0} instructions/token through the key/value cache ({} tokens, context {}), cache {} B + arena {} B RAM",
                    r.numeric,
                    r.core.name(),
                    per_step,
                    r.steps,
                    r.causal_tokens,
                    r.state_bytes,
                    r.arena_bytes
                ));
            }
            Some(format!(
                "  {} {}: {:.0} instructions/step ({} steps, {} MACs/step), state {} B + arena {} B RAM{stream}",
                r.numeric,
                r.core.name(),
                per_step,
                r.steps,
                r.macs,
                r.state_bytes,
                r.arena_bytes
            ))
        })
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}
