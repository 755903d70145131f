//! Numbers as the plots and the report print them: one function per kind of quantity, so
//! that a p50 reads the same in a picture, in `report.md` and in the terminal table.
//!
//! Durations keep three significant digits, the precision the histograms record
//! (HdrHistogram at 3 significant digits), trailing zeros included: `4.50 ms` says the
//! third digit is known. Axis ticks drop them (`2.5`, `20k`), where round numbers read best.

/// A duration given in microseconds: µs below a millisecond, ms below a second, s from
/// there, three significant digits (`45.2 µs`, `450 µs`, `4.50 ms`, `45.0 ms`, `1.23 s`);
/// `-` if not finite.
pub fn micros(us: f64) -> String {
    if !us.is_finite() {
        return "-".to_string();
    }
    // Decide the unit on the rounded value: 999.7 µs prints as 1.00 ms, not 1000 µs.
    let rounded = round_significant(us).abs();
    if rounded >= 1e6 {
        format!("{} s", significant(us / 1e6))
    } else if rounded >= 1e3 {
        format!("{} ms", significant(us / 1e3))
    } else {
        format!("{} µs", significant(us))
    }
}

/// A count or a rate with an SI suffix from 1000 on, at most two decimals after the
/// suffix's scaling (`20k`, `20.02k`, `1.5M`) and three significant digits below 1000
/// (`200`, `0.045`); `-` if not finite. Axis ticks and table cells alike.
pub fn si(v: f64) -> String {
    if !v.is_finite() {
        return "-".to_string();
    }
    let two_decimals = |x: f64| trim_zeros(format!("{x:.2}"));
    if v.abs() >= 999_995.0 {
        format!("{}M", two_decimals(v / 1e6))
    } else if v.abs() >= 999.995 {
        format!("{}k", two_decimals(v / 1e3))
    } else {
        plain(v)
    }
}

/// A plain number at three significant digits without trailing zeros (`12.5`, `0.045`,
/// `5`): axis ticks in ms, seconds of a window.
pub fn plain(x: f64) -> String {
    if !x.is_finite() {
        return "-".to_string();
    }
    trim_zeros(significant(x))
}

/// `v` with `digits` decimals, or `-` if not finite (per-request counts, batch sizes).
pub fn fixed(v: f64, digits: usize) -> String {
    if v.is_finite() {
        format!("{v:.digits$}")
    } else {
        "-".to_string()
    }
}

/// A ratio as `2.86x`, or `-` when unknown.
pub fn ratio(r: Option<f64>) -> String {
    match r {
        Some(r) if r.is_finite() => format!("{r:.2}x"),
        _ => "-".to_string(),
    }
}

/// Decimal places that show `x` at three significant digits (at most 6).
fn decimals(x: f64) -> usize {
    // `{:e}` rounds first, so 9.996 counts as 1.00e1 and gets one decimal, not two.
    let e = format!("{x:.2e}");
    let exp: i32 = e
        .rsplit('e')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (2 - exp).clamp(0, 6) as usize
}

/// `x` rounded to three significant digits (to decide a unit on what will be printed).
fn round_significant(x: f64) -> f64 {
    format!("{x:.2e}").parse().unwrap_or(x)
}

/// `x` at three significant digits, trailing zeros kept.
fn significant(x: f64) -> String {
    if x == 0.0 {
        return "0".to_string();
    }
    let d = decimals(x);
    format!("{x:.d$}")
}

fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_keep_three_significant_digits() {
        assert_eq!(micros(45.25), "45.2 µs");
        assert_eq!(micros(4.5), "4.50 µs");
        assert_eq!(micros(450.0), "450 µs");
        assert_eq!(micros(999.7), "1.00 ms");
        assert_eq!(micros(4500.0), "4.50 ms");
        assert_eq!(micros(45000.0), "45.0 ms");
        assert_eq!(micros(150_300.0), "150 ms");
        assert_eq!(micros(1_228_900.0), "1.23 s");
        assert_eq!(micros(999_700.0), "1.00 s");
        assert_eq!(micros(0.0), "0 µs");
        assert_eq!(micros(f64::NAN), "-");
    }

    #[test]
    fn rates_and_ticks() {
        assert_eq!(si(20000.0), "20k");
        assert_eq!(si(20018.0), "20.02k");
        assert_eq!(si(1500000.0), "1.5M");
        assert_eq!(si(999_999.0), "1M");
        assert_eq!(si(199.6), "200");
        assert_eq!(si(0.001), "0.001");
        assert_eq!(si(f64::INFINITY), "-");
    }

    #[test]
    fn plain_numbers() {
        assert_eq!(plain(0.045), "0.045");
        assert_eq!(plain(12.5), "12.5");
        assert_eq!(plain(5.0), "5");
        assert_eq!(plain(9.996), "10");
        assert_eq!(plain(0.0), "0");
        assert_eq!(fixed(2.174, 2), "2.17");
        assert_eq!(ratio(Some(2.857)), "2.86x");
        assert_eq!(ratio(None), "-");
    }
}
