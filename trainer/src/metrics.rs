//! The figures reports and `eval` give, computed from what a model (the
//! runtime, or the trainer's own forward pass) answered: classification
//! accuracy and the confusion matrix, cluster purity, and the rank of a
//! labelled anomaly among the peaks of a score.

/// Share of the rows of `outputs` (`rows x classes`, logits or
/// probabilities) whose largest value is at the label.
pub fn accuracy(outputs: &[f32], classes: usize, labels: &[usize]) -> f32 {
    let correct = outputs
        .chunks_exact(classes)
        .zip(labels)
        .filter(|(row, &label)| runtime::argmax(row) == label)
        .count();
    correct as f32 / labels.len().max(1) as f32
}

/// `confusion[true][predicted]` counts over `classes` classes (pairs out of
/// range are left out).
pub fn confusion(classes: usize, labels: &[usize], predicted: &[usize]) -> Vec<Vec<usize>> {
    let mut matrix = vec![vec![0usize; classes]; classes];
    for (&label, &guess) in labels.iter().zip(predicted) {
        if let Some(cell) = matrix.get_mut(label).and_then(|r| r.get_mut(guess)) {
            *cell += 1;
        }
    }
    matrix
}

/// Rank of the labelled anomaly among the score peaks (1 = the highest peak).
///
/// Peaks are picked greedily: windows in decreasing score order (ties: earlier
/// first), each kept as a peak unless its start is within `window` points of
/// an already kept peak (so one bump in the score counts once). The rank is
/// the position of the first kept peak whose window `[start, start + window)`
/// overlaps the labelled anomaly `[first, last]`; `None` if none does.
/// NaN scores sort last.
pub fn anomaly_rank(
    scores: &[f32],
    starts: &[usize],
    window: usize,
    anomaly: (usize, usize),
) -> Option<usize> {
    let mut order: Vec<usize> = (0..scores.len().min(starts.len())).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (scores[a], scores[b]);
        y.partial_cmp(&x)
            .unwrap_or_else(|| x.is_nan().cmp(&y.is_nan()))
            .then(a.cmp(&b))
    });
    let mut peaks: Vec<usize> = Vec::new();
    for i in order {
        let s = starts[i];
        if peaks.iter().any(|&p| p.abs_diff(s) < window) {
            continue;
        }
        peaks.push(s);
        if s <= anomaly.1 && anomaly.0 < s + window {
            return Some(peaks.len());
        }
    }
    None
}

/// Cluster purity: each cluster counts its most common true label; the sum over
/// clusters divided by the number of rows.
pub fn purity(clusters: &[usize], labels: &[usize]) -> f64 {
    let mut counts = std::collections::HashMap::<(usize, usize), usize>::new();
    for (&c, &l) in clusters.iter().zip(labels) {
        *counts.entry((c, l)).or_default() += 1;
    }
    let mut best = std::collections::HashMap::<usize, usize>::new();
    for (&(c, _), &n) in &counts {
        let b = best.entry(c).or_default();
        *b = (*b).max(n);
    }
    best.values().sum::<usize>() as f64 / labels.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_counts_each_bump_once() {
        // Two windows of a bump at 0..8 outscore the anomaly at 40.
        let starts = [0, 4, 8, 20, 40, 44];
        let scores = [0.9, 0.95, 0.1, 0.2, 0.8, 0.7];
        assert_eq!(anomaly_rank(&scores, &starts, 16, (42, 45)), Some(2));
        assert_eq!(anomaly_rank(&scores, &starts, 16, (4, 5)), Some(1));
        // Conservative: a window on the anomaly suppressed by a peak that does
        // not itself overlap the anomaly does not count.
        assert_eq!(anomaly_rank(&scores, &starts, 16, (1, 2)), None);
    }

    #[test]
    fn purity_of_perfect_and_mixed_clusters() {
        assert_eq!(purity(&[0, 0, 1, 1], &[3, 3, 5, 5]), 1.0);
        assert_eq!(purity(&[0, 0, 0, 0], &[3, 3, 5, 5]), 0.5);
    }
}
