"""The research agent: a bounded loop over governed, allow-listed tools."""
