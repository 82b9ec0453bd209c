//! Consumer groups, sans-IO.
