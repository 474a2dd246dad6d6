//! A string that never prints: API keys and other credentials.

use std::fmt;

/// A secret such as an API key. `Debug` and `Display` print `***`; the value is reachable only
/// through [`Secret::expose`], which makes every use easy to find in review.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value. Call only where it is sent (an auth header) or scrubbed.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty (an unset key).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Replaces every occurrence of this secret in `text` with `***`.
    ///
    /// Secrets shorter than 4 characters are left alone: replacing them would mangle ordinary
    /// text and they are not credentials anyone issues.
    pub fn scrub(&self, text: &str) -> String {
        if self.0.len() < 4 || !text.contains(self.0.as_str()) {
            return text.to_owned();
        }
        text.replace(self.0.as_str(), "***")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}
