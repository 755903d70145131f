//! The machine and build a run happens on, recorded with every result (the measurement rules: CPU
//! model, cores, kernel, rustc, git revision).

use std::time::SystemTime;

use super::summary::Environment;

/// Compiler that built this binary, baked in by `build.rs`.
pub const RUSTC_VERSION: &str = env!("RAFTBENCH_RUSTC_VERSION");

/// Git revision of the source this binary was built from (`-dirty` if modified), by `build.rs`.
pub const GIT_REVISION: &str = env!("RAFTBENCH_GIT_REVISION");

/// Describes this machine and build, with the current time as the start of the run.
pub fn capture() -> Environment {
    Environment {
        cpu: cpu_model(),
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        kernel: read_trimmed("/proc/sys/kernel/osrelease"),
        rustc: RUSTC_VERSION.to_string(),
        git_revision: GIT_REVISION.to_string(),
        profile: profile().to_string(),
        started: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        host: read_trimmed("/proc/sys/kernel/hostname"),
    }
}

/// `release` or `debug`, as the binary was compiled (debug builds make latencies meaningless).
pub fn profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| parse_cpu_model(&text))
        .unwrap_or_else(|| "unknown".to_string())
}

/// The first "model name" line of a /proc/cpuinfo text.
fn parse_cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_string())
    })
}

fn read_trimmed(path: &str) -> String {
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => s.trim().to_string(),
        _ => "unknown".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_model_is_the_first_model_name() {
        let text = "processor\t: 0\nvendor_id\t: X\nmodel name\t: Fast CPU @ 3GHz\n\nprocessor\t: 1\nmodel name\t: Other\n";
        assert_eq!(parse_cpu_model(text).as_deref(), Some("Fast CPU @ 3GHz"));
        assert_eq!(parse_cpu_model("processor : 0\n"), None);
    }

    #[test]
    fn capture_fills_every_field() {
        let env = capture();
        assert!(env.cores >= 1);
        assert!(!env.rustc.is_empty());
        assert!(!env.git_revision.is_empty());
        assert!(env.started.ends_with('Z'), "{}", env.started);
        assert!(humantime::parse_rfc3339(&env.started).is_ok());
    }
}
