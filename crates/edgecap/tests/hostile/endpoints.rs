//! Hostile input: endpoints (filled in by issue 9's work).
