//! Product search (placeholder, being written).
