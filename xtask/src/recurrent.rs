//! Report lines for recurrent (sequence) models and causal transformers:
//! instructions per time step or token, state (or key/value cache) and arena
//! RAM, and the firmware's streaming example.

use crate::chip::ChipRun;

/// One line per run of a recurrent model, or `None` for other models.
pub fn describe(runs: &[ChipRun]) -> Option<String> {
    let lines: Vec<String> = runs
        .iter()
        .filter_map(|r| {
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
