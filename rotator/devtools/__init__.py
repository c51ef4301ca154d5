"""Development and test tools: the Vonage simulator, the demo, an OpenBao dev server. Production code never imports them."""
