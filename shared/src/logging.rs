//! Logging set-up of both binaries (feature `runtime`): JSON lines or text, filtered by
//! `RUST_LOG` (default `info`), colours only on a terminal.

/// Installs the global tracing subscriber; `format` is `json` or `text`.
pub fn init(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    if format == "json" {
        tracing_subscriber::fmt().json().with_env_filter(filter).init();
    } else {
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
        tracing_subscriber::fmt().with_ansi(ansi).with_env_filter(filter).init();
    }
}
