//! Signed client (placeholder).
