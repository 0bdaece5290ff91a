//! Hostile input: parsers (filled in by issue 9's work).
