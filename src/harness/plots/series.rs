//! Which points make one line of a figure, and how legends name points and knobs.

use serde::Serialize;

use super::super::summary::{PointSummary, RunSummary};

/// Points of one line: the same series and the same values of every swept knob but
/// `x_key`, labelled by the series and those values.
pub fn group_by_other_params<'a>(
    points: impl IntoIterator<Item = &'a PointSummary>,
    x_key: &str,
) -> Vec<(String, Vec<&'a PointSummary>)> {
    let mut groups: Vec<(String, Vec<&PointSummary>)> = Vec::new();
    for p in points {
        let others: Vec<String> = p
            .params
            .iter()
            .filter(|(k, _)| k.as_str() != x_key)
            .map(|(k, v)| format!("{}={}", short_knob(k), unquote(v)))
            .collect();
        let label = if others.is_empty() {
            p.series.clone()
        } else {
            format!("{} ({})", p.series, others.join(", "))
        };
        match groups.iter_mut().find(|(l, _)| *l == label) {
            Some((_, v)) => v.push(p),
            None => groups.push((label, vec![p])),
        }
    }
    groups
}

/// The open-loop points of every series sweeping the offered rate that also pass `keep`,
/// one group per line (as [`group_by_other_params`]), each sorted by offered rate: what
/// every plot against offered rate draws.
pub fn rate_groups(
    run: &RunSummary,
    keep: impl Fn(&PointSummary) -> bool,
) -> Vec<(String, Vec<&PointSummary>)> {
    let points = run.points.iter().filter(|p| {
        p.params.contains_key(super::RATE_KEY)
            && p.load == super::super::summary::LoadKind::OpenLoop
            && p.offered_rate > 0.0
            && keep(p)
    });
    let mut groups = group_by_other_params(points, super::RATE_KEY);
    for (_, g) in &mut groups {
        g.sort_by(|a, b| a.offered_rate.total_cmp(&b.offered_rate));
    }
    groups
}

/// A point as a legend shows it: its series and swept values, short knob names.
pub fn point_label(run: &RunSummary, name: &str) -> String {
    match run.points.iter().find(|p| p.name == name) {
        Some(p) if !p.params.is_empty() => {
            let params: Vec<String> = p
                .params
                .iter()
                .map(|(k, v)| format!("{}={}", short_knob(k), unquote(v)))
                .collect();
            format!("{}: {}", p.series, params.join(", "))
        }
        _ => name.to_string(),
    }
}

/// The last component of a knob path, which is what a legend has room for.
pub fn short_knob(k: &str) -> &str {
    k.rsplit('.').next().unwrap_or(k)
}

/// Swept values may be kept as TOML literals (`"eager"`); show them bare.
pub fn unquote(s: &str) -> &str {
    s.trim().trim_matches('"')
}

/// A configuration value as files spell it (`eager`, `quic`): its serde name, so that a
/// legend and a scenario file agree without a second table of names.
pub fn file_name_of<T: Serialize>(value: &T) -> String {
    match toml::Value::try_from(value) {
        Ok(toml::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".to_string(),
    }
}
