//! Hostile input: limits (filled in by issue 9's work).
