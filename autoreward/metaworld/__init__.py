"""Meta-World v3 manipulation: the env with its reward facts (``env``) and the analyzer hook
(``analysis``): what the Meta-World cards cannot express in YAML."""
