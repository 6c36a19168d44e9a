"""Model catalogue (profiles), the offline forge of tiny models, and process-wide compat shims.

Kept import-light: importing this package must not import torch.
"""
