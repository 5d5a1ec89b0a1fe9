"""The matcher's records: transactions, lookups and orphans (the matcher is core/src/matcher)."""
