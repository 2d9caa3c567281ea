"""SceneBench: find moments in video by natural language, and measure which method finds them best.

Importing this package loads no model and no heavy optional dependency.
"""

__version__ = "0.1.0"
