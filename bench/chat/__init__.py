"""Chat benchmarks: `holmbot run` with both adapters, on the local Slack and Discord."""
