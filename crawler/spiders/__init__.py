"""One spider per auction-house style, plus `generic`, driven by per-source selectors."""
