//! Seeded fault injection per cluster.
