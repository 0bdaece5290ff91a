//! Hostile input: scopes (filled in by issue 9's work).
