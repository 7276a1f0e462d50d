"""Synth benchmark: the jsii floor, the full synth, the CLI, a 10x config and a broken config (docs/performance.md)."""
