//! One-decimal rounding, the one copy every printer and the wire share: a
//! percentage or a number of seconds is shown, sent and served with one
//! decimal, rounded half away from zero (`f64::round`), so the wire, the
//! event lines and `/status` agree on the same figure.

/// `x` rounded to one decimal, half away from zero: 3.25 becomes 3.3 (not
/// what `{:.1}` prints for it, which rounds the exact binary value).
pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// `x` rounded to two decimals, likewise: for values finer than a percent
/// (a load per CPU) where they are shown as numbers (alerts).
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::{round1, round2};

    #[test]
    fn rounds_half_away_from_zero_to_one_decimal() {
        assert_eq!(round1(3.25), 3.3);
        assert_eq!(round1(3.24), 3.2);
        assert_eq!(round1(-0.05), -0.1);
        assert_eq!(round1(100.0), 100.0);
        assert_eq!(round1(0.04), 0.0);
        assert!(round1(f64::NAN).is_nan());
        assert_eq!(round2(0.525), 0.53);
        assert_eq!(round2(4.826_235), 4.83);
    }
}
