"""``python -m pathways.cli``: the `pathways` command."""

from pathways.cli import main

main()
