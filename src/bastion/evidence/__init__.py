"""Evidence: compliance reports from the ledger, legal clocks, response monitoring."""
