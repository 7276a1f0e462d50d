"""Developer tools: the address snapshot (tools.snapshot) and the change review (tools.review)."""
