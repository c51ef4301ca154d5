"""``python -m rotator`` and the ``rotator`` script (``rotator.__main__:main``): the collector
is paused (``rotator.startup.begin``) before the command line's own modules load, so nothing
they allocate is scanned while the command starts."""

from rotator import startup

startup.begin()

from rotator.cli import main  # noqa: E402

__all__ = ["main"]

if __name__ == "__main__":
    main()
