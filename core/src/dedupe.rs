//! Placeholder: the duplicate filter.
