"""Development and test tools: the Vonage simulator, the demo, an OpenBao dev server, the crash
tests' pause points. Production code never imports them (only the CLI's demo/simulate commands
and the environment-driven pause points the CLI installs)."""
