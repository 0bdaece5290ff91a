//! Hostile input: tls (filled in by issue 9's work).
