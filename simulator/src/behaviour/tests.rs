//! End-to-end behaviour tests: changes in, actions applied to a small in-memory view.
