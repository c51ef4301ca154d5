"""CLI commands by feature area; ``rotator.cli`` registers them on its ``app``."""
