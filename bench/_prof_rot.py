"""(temporary) profile N sequential rotations in-process: CPU per rotation, by function."""
import cProfile, os, pstats, sys, time
from bench._common import stack, sub_key
from rotator.config import load_config
from rotator import services as svc

n = int(sys.argv[1]); db = sys.argv[2]; out = sys.argv[3]
with stack(subaccounts=n, latency=0.0, rate_limit=None, database=db,
           config={"vonage": {"max_calls_per_second": 1000}}) as world:
    os.environ.update(world.env())
    config = load_config(world.config_file())
    s = svc.build(config)
    s.rotator.rotate(sub_key(1), actor="warm", reason="warm")
    prof = cProfile.Profile()
    c0 = time.process_time()
    prof.enable()
    for i in range(2, n + 1):
        s.rotator.rotate(sub_key(i), actor="bench", reason="prof")
    prof.disable()
    cpu = time.process_time() - c0
    print(f"{db}: {n-1} rotations, CPU {1000*cpu/(n-1):.1f} ms/rotation (profiled)")
    prof.dump_stats(out)
    s.vonage.close()
