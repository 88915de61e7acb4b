"""``python -m graphnas``: the command line (graphnas.cli)."""
from graphnas.cli import main

if __name__ == "__main__":
    main()
