//! Axis ranges and the percentile axis the figures share.

/// A log axis range covering `[lo, hi]` in whole decades, so its ticks fall on powers of ten.
pub fn decades(lo: f64, hi: f64) -> (f64, f64) {
    // f64::MAX is what `min_positive` gives for no data.
    let lo = if lo > 0.0 && lo < f64::MAX { lo } else { 1e-3 };
    let hi = if hi.is_finite() && hi > lo { hi } else { lo };
    let a = 10f64.powf(lo.log10().floor());
    let mut b = 10f64.powf(hi.log10().ceil());
    if b <= a {
        b = a * 10.0;
    }
    (a, b)
}

/// The smallest positive value (`f64::MAX` when there is none, which [`decades`] handles).
pub fn min_positive(values: impl IntoIterator<Item = f64>) -> f64 {
    values
        .into_iter()
        .filter(|v| *v > 0.0)
        .fold(f64::MAX, f64::min)
}

/// The largest value, or 0.
pub fn max_of(values: impl IntoIterator<Item = f64>) -> f64 {
    values.into_iter().fold(0.0, f64::max)
}

/// A linear axis from 0 with a tenth of head room above `max` (0..1 when there is no data).
pub fn from_zero(max: f64) -> f64 {
    if max > 0.0 {
        max * 1.1
    } else {
        1.0
    }
}

/// Position of quantile `q` on the percentile axis, `log10(1/(1-q))`: 0 at q = 0, 1 at
/// 90%, 2 at 99%, 3 at 99.9%... so that each added nine gets the same room.
pub fn percentile_x(q: f64) -> f64 {
    (1.0 / (1.0 - q)).log10()
}

/// Label of a percentile-axis tick at `x`: 0%, 90%, 99%, 99.9%, ...
pub fn percentile_label(x: f64) -> String {
    if x.abs() < 1e-9 {
        return "0%".to_string();
    }
    let p = 100.0 * (1.0 - 10f64.powf(-x));
    let decimals = (x.ceil() as i32 - 2).clamp(0, 8) as usize;
    format!("{p:.decimals$}%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_axis() {
        assert_eq!(percentile_label(0.0), "0%");
        assert_eq!(percentile_label(1.0), "90%");
        assert_eq!(percentile_label(2.0), "99%");
        assert_eq!(percentile_label(3.0), "99.9%");
        assert_eq!(percentile_label(5.0), "99.999%");
        assert!((percentile_x(0.99) - 2.0).abs() < 1e-9);
    }

    #[test]
    fn ranges() {
        assert_eq!(decades(150.0, 2500.0), (100.0, 10000.0));
        assert_eq!(decades(100.0, 100.0), (100.0, 1000.0));
        assert_eq!(decades(f64::MAX, 0.0), (1e-3, 1e-2));
        assert_eq!(min_positive([0.0, 3.0, 2.0]), 2.0);
        assert_eq!(max_of([1.0, 3.0]), 3.0);
        assert_eq!(from_zero(0.0), 1.0);
        assert_eq!(from_zero(10.0), 11.0);
    }
}
