//! Simulated cluster behaviour, configured by data (kwok-style stages).
