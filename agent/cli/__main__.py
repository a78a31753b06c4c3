"""``python -m agent.cli``: the ``aiops`` command without the installed script."""

from agent.cli.main import main

if __name__ == "__main__":
    main()
