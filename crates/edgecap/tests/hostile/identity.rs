//! Hostile input: identity (filled in by issue 9's work).
