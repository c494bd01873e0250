"""Settings taken from the paper (Winterbottom et al., Sci. Rep. 2022).

Kept apart from the trainer so that the CLI can show them as defaults without importing
torch and timm (every `artwatch` command would otherwise pay seconds of start-up).
"""

PAPER_LR = 10**-4.8  # Adam learning rate
