//! The text of `p2pmon top`'s cells: bars in eighths of a cell, sparklines
//! on a fixed 0..100 % scale, percentages with one decimal. Plain strings of
//! an exact width, so the screen only places and colours them.

use std::collections::VecDeque;

/// Sparkline levels, lowest to highest; a space marks a gap (not online).
const SPARKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
/// Partial bar cells, in eighths.
const EIGHTHS: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];

/// The last `width` samples as a sparkline of exactly `width` cells, newest
/// on the right; 0..100 % on a fixed scale so peers compare at a glance.
pub fn sparkline(samples: &VecDeque<Option<f64>>, width: usize) -> String {
    let shown = samples.len().min(width);
    let mut line = " ".repeat(width - shown);
    for sample in samples.iter().skip(samples.len() - shown) {
        line.push(match sample {
            Some(value) if value.is_finite() => {
                let level = (value.clamp(0.0, 100.0) / 100.0 * 7.0).round() as usize;
                SPARKS[level.min(7)]
            }
            _ => ' ',
        });
    }
    line
}

/// A percentage as a bar of exactly `width` cells, in eighths of a cell.
pub fn bar(percent: Option<f64>, width: usize) -> String {
    let Some(percent) = percent.filter(|p| p.is_finite()) else {
        return " ".repeat(width);
    };
    let eighths = (percent.clamp(0.0, 100.0) / 100.0 * (width * 8) as f64).round() as usize;
    let mut line = "█".repeat(eighths / 8);
    if eighths % 8 > 0 {
        line.push(EIGHTHS[eighths % 8]);
    }
    let used = line.chars().count();
    line.push_str(&" ".repeat(width.saturating_sub(used)));
    line
}

/// "3.2%", or "-" when unknown.
pub fn percent_label(percent: Option<f64>) -> String {
    percent.map_or("-".to_string(), |v| format!("{v:.1}%"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_fill_in_eighths_and_keep_their_width() {
        assert_eq!(bar(Some(0.0), 10), " ".repeat(10));
        assert_eq!(bar(Some(100.0), 10), "█".repeat(10));
        assert_eq!(bar(Some(50.0), 4), "██  ");
        assert_eq!(bar(Some(5.0), 10), "▌         ");
        assert_eq!(bar(Some(250.0), 3), "███");
        assert_eq!(bar(None, 5), "     ");
        assert_eq!(bar(Some(f64::NAN), 2), "  ");
        for tenth in 0..=1000 {
            let cells = bar(Some(f64::from(tenth) / 10.0), 10);
            assert_eq!(cells.chars().count(), 10, "{tenth}");
        }
        assert_eq!(percent_label(Some(3.25)), "3.2%");
        assert_eq!(percent_label(None), "-");
    }

    #[test]
    fn sparklines_are_right_aligned_with_gaps_and_a_fixed_scale() {
        let samples: VecDeque<Option<f64>> =
            [Some(0.0), Some(100.0), None, Some(50.0), Some(f64::NAN)].into();
        assert_eq!(sparkline(&samples, 5), "▁█ ▅ ");
        assert_eq!(sparkline(&samples, 8), "   ▁█ ▅ ");
        // Narrower than the history: the newest samples.
        assert_eq!(sparkline(&samples, 2), "▅ ");
        assert_eq!(sparkline(&samples, 0), "");
        assert_eq!(sparkline(&VecDeque::new(), 3), "   ");
    }
}
