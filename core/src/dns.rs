//! Placeholder: DNS header and question.
