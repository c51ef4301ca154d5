"""A Vonage API simulator: rotator's only test double, shipped for tests, demos and dry runs.

Real HTTP on loopback, the contract of Vonage's published OpenAPI specs, and knobs for what the
real service does to clients: propagation delay, rate limits, latency and injected faults::

    with VonageSimulator(primary_api_key="abcd1234", primary_secret="Primary1Secret") as sim:
        httpx.get(f"{sim.api_url}/accounts/abcd1234/secrets", auth=("abcd1234", "Primary1Secret"))
"""

from rotator.devtools.simulator.faults import Fault, FaultAction
from rotator.devtools.simulator.records import CallRecord, SmsMessage
from rotator.devtools.simulator.seed import DEFAULT_SEED, load_seed
from rotator.devtools.simulator.simulator import VonageSimulator
from rotator.devtools.simulator.state import MAX_SECRETS, SimSecret, secret_problems

__all__ = [
    "DEFAULT_SEED",
    "MAX_SECRETS",
    "CallRecord",
    "Fault",
    "FaultAction",
    "SimSecret",
    "SmsMessage",
    "VonageSimulator",
    "load_seed",
    "secret_problems",
]
