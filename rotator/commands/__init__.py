"""CLI commands by feature area; each module registers its commands on ``rotator.cli.app``."""
