//! capture engine.
