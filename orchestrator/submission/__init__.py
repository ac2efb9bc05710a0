"""Submission trees: the MLCommons v6.1 layout built from run folders, and preflight checks.

`layout` names every path of the tree, `system` describes a system (host facts + what the user
supplies), `documents` writes measurements.json, README.md and src/, `tree` plans and assembles a
tree atomically, `preflight` checks a run spec or a tree against the rules, `official` runs the
MLCommons checker itself.
"""
