"""config/ -> plan: read every input, check it, and resolve it into the one PlatformPlan the stacks render.

Plain Python: nothing here loads a jsii assembly, so every problem is reported before synthesis starts.
"""
