"""The Helix platform's stacks, composed from constructs_lib and driven by config/."""
