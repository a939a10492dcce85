//! The error type of xtask: a message for a person, saying what failed and what to do next.

use std::fmt::Display;

/// Every xtask step returns this; the message is printed as `error: <message>`.
pub type Result<T> = std::result::Result<T, String>;

/// Adds a description of what was being attempted to a lower-level error.
pub trait Context<T> {
    /// Wraps the error as `<what>: <error>`.
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| format!("{}: {e}", what()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_prefixes_the_message() {
        let failed: std::result::Result<(), &str> = Err("disk full");
        assert_eq!(failed.context(|| "writing x".to_string()), Err("writing x: disk full".to_string()));
    }
}
