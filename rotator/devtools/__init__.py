"""Tools for development and tests (pause points, …): never imported by the engine itself."""
