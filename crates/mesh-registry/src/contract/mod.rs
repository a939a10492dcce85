//! ODCS v3.1 data contracts (placeholder, being written).
